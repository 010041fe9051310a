"""Opening the agent's SQLite files safely: 0600, WAL, fsync on commit, versioned schema, and a corrupt
file moved aside instead of crashing the agent.

Used by the state database (agent/state.py) and the local ticket store (exporters/tickets/local.py).

- The file is created 0600 before SQLite touches it (SQLite gives its -wal/-shm files the same mode).
- `journal_mode=WAL` + `synchronous=FULL`: a commit is on disk when `COMMIT` returns, and a process
  killed at any instruction leaves the last committed state (kill -9 and power loss).
- A file that is not a database, or fails `PRAGMA quick_check` (truncated, overwritten), is renamed
  to `<path>.corrupt-<unix time>` (with its -wal/-shm), logged with the reason, and a fresh one is
  created in its place.
- The schema version is `PRAGMA user_version`; `migrations[i]` brings version i to i + 1, each in one
  transaction together with the version bump. A file from a newer hostwarden is refused (never
  overwritten or moved aside: a downgrade must not lose data).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


class SchemaTooNew(Exception):
    """The file was written by a newer hostwarden (its schema version is above what this one knows)."""


class CorruptDatabase(Exception):
    pass


def _create_0600(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    st = os.stat(path)
    if st.st_mode & 0o077:
        os.chmod(path, 0o600)


def tighten_sidecars(path: str) -> None:
    """-wal/-shm: mode 0600, and (when we are root, e.g. the CLI run with sudo) owned by the database file's
    owner, so the agent running as its own user can still open them."""
    try:
        owner = os.stat(path)
    except FileNotFoundError:
        return
    for suffix in ("-wal", "-shm"):
        p = path + suffix
        try:
            st = os.stat(p)
            if st.st_mode & 0o077:
                os.chmod(p, 0o600)
            if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(p, owner.st_uid, owner.st_gid)
        except FileNotFoundError:
            pass


def connect(path: str, *, readonly: bool = False, immutable: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT), usable from several threads under a lock.
    `immutable`: read the main file without locking or the WAL (for a file in a read-only directory)."""
    if readonly:
        from urllib.parse import quote

        uri = f"file:{quote(path)}?mode=ro" + ("&immutable=1" if immutable else "")
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def is_corruption(e: BaseException) -> bool:
    """SQLITE_NOTADB / SQLITE_CORRUPT: the bytes are wrong. Not: permissions, locks, a full disk."""
    name = getattr(e, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT"))


def _check(conn: sqlite3.Connection) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        if not is_corruption(e):
            raise
        raise CorruptDatabase(str(e)) from None
    problems = [r[0] for r in rows if r[0] != "ok"]
    if problems:
        raise CorruptDatabase("; ".join(problems[:3]))


def _configure(conn: sqlite3.Connection) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as e:
        if not is_corruption(e):
            raise
        raise CorruptDatabase(str(e)) from None
    if str(mode).lower() != "wal":
        log.warning("SQLite refused WAL mode (journal_mode=%s); commits stay durable but slower", mode)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _refuse_newer(conn: sqlite3.Connection, latest: int, *, what: str, path: str) -> None:
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as e:
        if not is_corruption(e):
            raise
        raise CorruptDatabase(str(e)) from None
    if version > latest:
        raise SchemaTooNew(f"{what} {path} has schema version {version}, newer than this hostwarden "
                           f"understands ({latest}); refusing to touch it (was hostwarden downgraded?)")


def migrate(conn: sqlite3.Connection, migrations: Sequence[str], *, what: str, path: str) -> int:
    """Apply what is missing; returns the version reached. Each step is one transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    latest = len(migrations)
    if version > latest:
        raise SchemaTooNew(f"{what} {path} has schema version {version}, newer than this hostwarden "
                           f"understands ({latest}); refusing to touch it (was hostwarden downgraded?)")
    for v in range(version, latest):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _statements(migrations[v]):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if version > 0:
            log.info("%s %s: schema migrated from version %d to %d", what, path, v, v + 1)
    return latest


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def move_aside(path: str, reason: str, *, what: str) -> str:
    target = f"{path}.corrupt-{int(time.time())}"
    n = 0
    while os.path.exists(target):
        n += 1
        target = f"{path}.corrupt-{int(time.time())}.{n}"
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, target + suffix)
    log.error("%s %s is unreadable (%s); moved it to %s and started a fresh one", what, path, reason, target)
    return target


def open_database(path: str, migrations: Sequence[str], *, what: str) -> sqlite3.Connection:
    """Open (creating, checking, migrating) the SQLite file at `path`. Raises OSError/sqlite3.Error when the
    file cannot be used at all (permissions, read-only file system), SchemaTooNew for a newer schema."""
    for attempt in (1, 2):
        _create_0600(path)
        conn = connect(path)
        try:
            _refuse_newer(conn, len(migrations), what=what, path=path)  # before anything writes to the file
            _configure(conn)
            _check(conn)
            migrate(conn, migrations, what=what, path=path)
        except CorruptDatabase as e:
            conn.close()
            if attempt == 2:
                raise
            move_aside(path, str(e), what=what)
            continue
        except BaseException:
            conn.close()
            raise
        tighten_sidecars(path)
        return conn
    raise AssertionError("unreachable")


def copy_to_memory(path: str, migrations: Sequence[str], *, what: str) -> sqlite3.Connection:
    """Degraded mode: the file's content (when readable) in an in-memory database, so a read-only or
    unwritable state keeps its incidents while the agent runs. Nothing written survives a restart."""
    mem = connect(":memory:")
    error: Exception | None = None
    for immutable in (False, True):  # a WAL file in a read-only directory opens only as immutable
        try:
            src = connect(path, readonly=True, immutable=immutable)
            try:
                _check(src)
                src.backup(mem)
            finally:
                src.close()
            error = None
            break
        except (sqlite3.Error, CorruptDatabase, OSError) as e:
            error = e
            mem.close()
            mem = connect(":memory:")
    if error is not None:
        log.error("%s %s: cannot read it either (%s); starting empty", what, path, error)
    elif os.path.exists(path):
        log.info("%s %s: its content was copied into memory", what, path)
    migrate(mem, migrations, what=what, path=":memory:")
    return mem
