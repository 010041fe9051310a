"""Opening the agent's SQLite files safely: 0600, WAL, fsync on commit, versioned schema, and a corrupt
file moved aside instead of crashing the agent.

Used by the state database (agent/state.py) and the local ticket store (exporters/tickets/local.py).

- The file is created 0600 before SQLite touches it (SQLite gives its -wal/-shm files the same mode).
- `journal_mode=WAL` + `synchronous=FULL`: a commit is on disk when `COMMIT` returns, and a process
  killed at any instruction leaves the last committed state (kill -9 and power loss).
- A file that is not a database, or fails `PRAGMA quick_check` (truncated, overwritten), is renamed
  to `<path>.corrupt-<unix time>` (with its -wal/-shm), logged with the reason, and a fresh one is
  created in its place.
- One connection per file per process (`acquire`/`release`): every user of a file in this process shares
  one connection (and the lock that serialises it), opened once and closed when the last user releases
  it. Nothing else in the process ever opens or closes a descriptor of the file while that connection
  exists: closing *any* descriptor of a file drops *all* of the process's POSIX advisory locks on it
  (SQLite, "How To Corrupt An SQLite Database File" §2.2), after which another process (the CLI) believes
  it is the last user and deletes the WAL the agent still writes to. So the file is created 0600 with
  `os.open(O_CREAT | O_EXCL)` only when it does not exist yet (no connection can hold it then), and an
  existing file is only ever `chmod`ed by path.
- Checked against the rest of that list: the CLI and the agent meet through SQLite's own locking (WAL,
  a busy timeout of BUSY_TIMEOUT_MS instead of an error, never `locking_mode=EXCLUSIVE`); no connection
  crosses a `fork` (plugins are started with fork+exec, SQLite's descriptors are O_CLOEXEC and
  subprocess closes the rest); -wal/-shm are never deleted or renamed by us except together with a
  corrupt main file before any connection to it exists; `synchronous=FULL` (no unsafe pragmas).
- The schema version is `PRAGMA user_version`; `migrations[i]` brings version i to i + 1, each in one
  transaction together with the version bump. A file from a newer hostwarden is refused (never
  overwritten or moved aside: a downgrade must not lose data).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
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
    """Create the file 0600 if it does not exist; never opens an existing file (see the module docstring)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # someone's file: tighten it by path, without a descriptor
        st = os.stat(path)
        if st.st_mode & 0o077:
            os.chmod(path, 0o600)
        return
    os.close(fd)  # a new inode: no connection of this process can hold it


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


class SharedConnection:
    """The process's one connection to a database file, shared by every user in the process.
    Hold `lock` around every use of `conn` (statements and transactions)."""

    def __init__(self, key: str, path: str, conn: sqlite3.Connection) -> None:
        self.key = key
        self.path = path
        self.conn = conn
        self.lock = threading.RLock()
        self.refs = 1
        self.inode = _inode(path)


_registry_lock = threading.Lock()
_registry: dict[str, SharedConnection] = {}


def _key(path: str) -> str:
    return os.path.realpath(path)


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def acquire(path: str, migrations: Sequence[str], *, what: str) -> SharedConnection:
    """The process's connection to `path`: opened (created, checked, migrated) by the first user, shared
    by the next ones. Every `acquire` needs one `release`; the last closes the connection."""
    key = _key(path)
    with _registry_lock:
        shared = _registry.get(key)
        if shared is not None and shared.inode == _inode(path):
            shared.refs += 1
            return shared
        if shared is not None:  # the file was replaced (moved aside, deleted): a different file, a new connection
            del _registry[key]
        conn = open_database(path, migrations, what=what)
        shared = SharedConnection(key, path, conn)
        _registry[key] = shared
        return shared


def release(shared: SharedConnection) -> None:
    """Give up one reference; the last one closes the connection (and only then may the file be opened anew)."""
    with _registry_lock:
        if shared.refs <= 0:
            return
        shared.refs -= 1
        if shared.refs:
            return
        if _registry.get(shared.key) is shared:
            del _registry[shared.key]
        with shared.lock:
            try:
                shared.conn.close()
            except sqlite3.Error:
                pass


def open_files() -> dict[str, int]:
    """Files this process holds a connection to, with their number of users (tests, diagnostics)."""
    with _registry_lock:
        return {k: s.refs for k, s in _registry.items()}


def open_database(path: str, migrations: Sequence[str], *, what: str) -> sqlite3.Connection:
    """Open (creating, checking, migrating) the SQLite file at `path`. Raises OSError/sqlite3.Error when the
    file cannot be used at all (permissions, read-only file system), SchemaTooNew for a newer schema.
    Callers in the agent go through `acquire` (one connection per file per process)."""
    if _key(path) in _registry:
        raise RuntimeError(f"{what} {path} is already open in this process: use sqlitefile.acquire")
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
