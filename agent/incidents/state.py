"""The state database: alert states, incidents ↔ tickets, their timeline, and the ticket outbox.

One SQLite file (`<state_dir>/state.db`, mode 0600, WAL, `synchronous=FULL`). Every decision is
committed before anything acts on it: the incident manager commits the incident row and its outbox
rows in one transaction, and the outbox worker only ever reads committed rows. See
docs/incidents.md ("Crash safety") for the ordering argument.

When the file cannot be written (read-only file system, permissions, a full disk) the agent keeps running
on an in-memory copy (`degraded`), and says so loudly; a corrupt file is moved aside (agent/sqlitefile).
When the cause was a full disk, the file is tried again at most every RECOVER_EVERY seconds (at the start
of a write transaction); once it can be written, the in-memory copy is written back to it (one SQLite
backup, atomic) and the agent is durable again without a restart.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hostwarden.agent.core import sqlitefile

log = logging.getLogger(__name__)

WHAT = "state database"
RECOVER_EVERY = 10.0  # seconds between attempts to leave the in-memory copy after a full disk

# migrations[i] takes schema version i to i + 1 (PRAGMA user_version).
MIGRATIONS: tuple[str, ...] = (
    # 1: alert states, incidents, their timeline, the outbox
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE alert_state (key TEXT PRIMARY KEY, row TEXT NOT NULL);
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        backend TEXT NOT NULL,
        rule TEXT NOT NULL,
        title TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        category TEXT NOT NULL DEFAULT '',
        severity TEXT NOT NULL DEFAULT '',
        priority TEXT NOT NULL,
        status TEXT NOT NULL,
        alert TEXT NOT NULL,
        labels TEXT NOT NULL,
        diagnosis TEXT NOT NULL DEFAULT '',
        opened_at REAL NOT NULL,
        fired_at REAL NOT NULL,
        acknowledged_at REAL,
        resolved_at REAL,
        reopen_count INTEGER NOT NULL DEFAULT 0,
        ticket_id TEXT,
        ticket_url TEXT NOT NULL DEFAULT '',
        flapping INTEGER NOT NULL DEFAULT 0,
        is_storm INTEGER NOT NULL DEFAULT 0,
        storm_id INTEGER REFERENCES incidents(id),
        pending_events TEXT NOT NULL DEFAULT '[]',
        last_update_at REAL,
        ack_due REAL,
        resolve_due REAL,
        ack_breached INTEGER NOT NULL DEFAULT 0,
        resolve_breached INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX incidents_by_fp ON incidents (fingerprint, id);
    CREATE INDEX incidents_by_status ON incidents (status);
    CREATE TABLE incident_events (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX incident_events_by_incident ON incident_events (incident_id, id);
    CREATE INDEX incident_events_by_time ON incident_events (at);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        backend TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        op TEXT NOT NULL,
        payload TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL DEFAULT 'pending',
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at REAL,
        next_attempt_at REAL,
        last_error TEXT NOT NULL DEFAULT '',
        done_at REAL
    );
    CREATE INDEX outbox_by_queue ON outbox (status, backend, fingerprint, id)
    """,
    # 2: two-way sync: what the ticket system last said, and the "closed by a person" mute
    """
    ALTER TABLE incidents ADD COLUMN remote_state TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN remote_changed_at REAL;
    ALTER TABLE incidents ADD COLUMN muted INTEGER NOT NULL DEFAULT 0
    """,
    # 3: silences (`hostwarden silence`), ticket operations held back by a silence or maintenance window,
    # incidents routed to several backends (one ticket each), the check history (availability)
    """
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expired_at REAL
    );
    CREATE INDEX silences_by_end ON silences (ends_at);
    ALTER TABLE incidents ADD COLUMN silenced_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN held TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE incidents ADD COLUMN extra_backends TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX incidents_silenced ON incidents (silenced_by) WHERE silenced_by != '';
    CREATE TABLE incident_tickets (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        backend TEXT NOT NULL,
        ticket_id TEXT NOT NULL,
        ticket_url TEXT NOT NULL DEFAULT '',
        recorded_at REAL NOT NULL,
        PRIMARY KEY (incident_id, backend)
    );
    CREATE TABLE check_history (
        id INTEGER PRIMARY KEY,
        check_name TEXT NOT NULL,
        at REAL NOT NULL,
        up INTEGER NOT NULL
    );
    CREATE INDEX check_history_by_check ON check_history (check_name, at)
    """,
    # 4: two-way sync with every backend of a route: what each ticket system last said about its own ticket
    """
    ALTER TABLE incident_tickets ADD COLUMN remote_state TEXT NOT NULL DEFAULT '';
    ALTER TABLE incident_tickets ADD COLUMN remote_changed_at REAL;
    CREATE INDEX incident_tickets_by_ticket ON incident_tickets (backend, ticket_id)
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class DeliveryStats:
    """Counters shared by the outbox worker (writes) and the incident manager's self-metrics (reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.operations: dict[tuple[str, str, str], int] = {}
        self.errors: dict[str, int] = {}
        self.unexpected: dict[str, int] = {}  # backend -> unexpected exceptions (bugs, unmapped library errors)
        self.integrity_errors = 0  # state database writes rejected as invalid (not: disk full, locked)
        self.dropped_transitions = 0  # alert transitions given up after MAX_ATTEMPTS integrity errors

    def count_unexpected(self, backend: str) -> None:
        with self._lock:
            self.unexpected[backend] = self.unexpected.get(backend, 0) + 1

    def count_integrity(self, *, dropped: bool = False) -> None:
        with self._lock:
            self.integrity_errors += 1
            self.dropped_transitions += int(dropped)

    def count(self, backend: str, op: str, result: str) -> None:
        with self._lock:
            key = (backend, op, result)
            self.operations[key] = self.operations.get(key, 0) + 1
            if result != "success":
                self.errors[backend] = self.errors.get(backend, 0) + 1

    def snapshot(self) -> tuple[dict[tuple[str, str, str], int], dict[str, int]]:
        with self._lock:
            return dict(self.operations), dict(self.errors)


class StateDB:
    def __init__(self, path: str) -> None:
        self.path = path
        self.degraded = False
        self.lock = threading.RLock()
        self.stats = DeliveryStats()
        self.write_errors = 0
        self._last_write_error = ""
        self._saved_alert_rows: dict[str, str] | None = None
        self._recover_at: float | None = None  # degraded by a full disk: when to try the file again (monotonic)
        self._shared: sqlitefile.SharedConnection | None = None  # the process's connection to the file
        if path == ":memory:":  # tests and previews: nothing survives, nothing is written to disk
            self._conn = sqlitefile.connect(":memory:")
            sqlitefile.migrate(self._conn, MIGRATIONS, what=WHAT, path=path)
            return
        try:
            self._use(sqlitefile.acquire(path, MIGRATIONS, what=WHAT))
        except sqlitefile.SchemaTooNew:
            raise
        except (OSError, sqlite3.Error, sqlitefile.CorruptDatabase) as e:
            self._degrade(e)
        if not self.degraded:
            try:
                with self.tx() as c:
                    c.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            except sqlite3.OperationalError as e:  # a read-only file opens fine and fails on the first write
                self._release()
                self._degrade(e)

    def _use(self, shared: sqlitefile.SharedConnection) -> None:
        """Work on the process's shared connection to the file, under its lock (one lock per file)."""
        self._shared = shared
        self._conn = shared.conn
        self.lock = shared.lock

    def _release(self) -> None:
        if self._shared is not None:
            sqlitefile.release(self._shared)
            self._shared = None

    def _degrade(self, e: BaseException) -> None:
        recoverable = _disk_full(e) and not _wal_has_content(self.path)
        until = f"there is space again (tried every {RECOVER_EVERY:g}s)" if recoverable else "this is fixed"
        log.error("%s %s cannot be written (%s): running on an in-memory copy; incidents and the outbox "
                  "will NOT survive a restart until %s", WHAT, self.path, e, until)
        self.degraded = True
        self.write_errors += 1
        self._conn = sqlitefile.copy_to_memory(self.path, MIGRATIONS, what=WHAT)
        if recoverable:
            self._recover_at = time.monotonic() + RECOVER_EVERY

    def _maybe_recover(self) -> None:
        """Degraded by a full disk: write the in-memory copy back to the file once that works (call with the lock)."""
        if self._recover_at is None or time.monotonic() < self._recover_at:
            return
        self._recover_at = time.monotonic() + RECOVER_EVERY
        try:
            shared = sqlitefile.acquire(self.path, MIGRATIONS, what=WHAT)
        except (OSError, sqlite3.Error, sqlitefile.CorruptDatabase, sqlitefile.SchemaTooNew) as e:
            log.debug("%s %s still cannot be written: %s", WHAT, self.path, e)
            return
        try:
            with shared.lock:
                self._conn.backup(shared.conn)  # the file's content (copied at start) plus everything since
        except sqlite3.Error as e:
            sqlitefile.release(shared)
            log.debug("%s %s: writing the in-memory copy back failed: %s", WHAT, self.path, e)
            return
        self._conn.close()
        if shared.refs == 1:  # we are its only user: keep the lock our callers hold (we run inside tx())
            shared.lock = self.lock
        self._use(shared)
        self.degraded = False
        self._recover_at = None
        self._saved_alert_rows = None
        log.info("%s %s can be written again: the in-memory copy was written back; incidents and the outbox "
                 "survive a restart again", WHAT, self.path)

    # -- transactions ---------------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT); committed (fsynced) when the block exits."""
        with self.lock:
            if self.degraded:
                self._maybe_recover()
            conn = self._conn
            changes = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(e, sqlite3.OperationalError):
                    self._note_write_error(e)
                raise
            wrote = conn.total_changes != changes
        # a transaction that changed nothing commits even on a full disk: only a real write says it is over
        if self._last_write_error and wrote:
            log.info("%s writable again", WHAT)
            self._last_write_error = ""

    def _note_write_error(self, e: sqlite3.Error) -> None:
        self.write_errors += 1
        msg = str(e)
        if msg != self._last_write_error:
            log.error("%s %s: write failed: %s", WHAT, self.path, msg)
            self._last_write_error = msg

    @property
    def connection(self) -> sqlite3.Connection:
        """For reads spanning several statements: hold `self.lock` while using it."""
        return self._conn

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Give the file back (the process's connection closes with its last user). Idempotent."""
        with self.lock:
            if self._shared is not None:
                self._release()
                return
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    # -- alert states (RuleManager.export_state rows) ----------------------------------------------------
    def save_alert_states(self, rows: list[dict]) -> None:
        """Replace the stored alert states with `rows`; only changed rows are written, nothing when none changed.
        A failed write (disk full) is logged once and retried with the next call."""
        encoded: dict[str, str] = {}
        for row in rows:
            text = json.dumps(row, sort_keys=True, default=str)
            encoded[_row_key(row, text)] = text
        previous = self._saved_alert_rows
        if previous is None:
            previous = {r["key"]: r["row"] for r in self.query("SELECT key, row FROM alert_state")}
        gone = [k for k in previous if k not in encoded]
        changed = [(k, v) for k, v in encoded.items() if previous.get(k) != v]
        if not gone and not changed:
            self._saved_alert_rows = encoded
            return
        try:
            with self.tx() as c:
                c.executemany("DELETE FROM alert_state WHERE key = ?", [(k,) for k in gone])
                c.executemany("INSERT OR REPLACE INTO alert_state (key, row) VALUES (?, ?)", changed)
        except sqlite3.OperationalError:
            self._saved_alert_rows = None
            return
        self._saved_alert_rows = encoded

    def load_alert_states(self) -> list[dict]:
        out = []
        for r in self.query("SELECT key, row FROM alert_state ORDER BY key"):
            try:
                out.append(json.loads(r["row"]))
            except ValueError:
                log.warning("%s: dropping an unreadable alert state row %s", WHAT, r["key"])
        return out


def _disk_full(e: BaseException) -> bool:
    """A full disk (or quota) — the cause that goes away by itself — as opposed to permissions, a read-only
    file system or corruption. SQLite reports it as SQLITE_FULL, or SQLITE_IOERR_* when allocating -shm/-wal."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    name = getattr(e, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_FULL", "SQLITE_IOERR"))


def _wal_has_content(path: str) -> bool:
    """A -wal file with frames may hold commits the in-memory copy could not read (opened `immutable`):
    writing the copy back would drop them, so such a file is left for a restart."""
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


_IDENTITY_KEYS = ("group", "rule", "signature", "occurrence", "labels", "fingerprint")
# rows written since groups are keyed by (file, name) also carry "file"; older rows keep their key


def _row_key(row: dict, text: str) -> str:
    """Rows of the same alert keep their key while their state changes (an update, not delete + insert)."""
    identity = [row.get(k) for k in _IDENTITY_KEYS] + ([row["file"]] if "file" in row else [])
    basis = json.dumps(identity, sort_keys=True, default=str) if "rule" in row else text
    return hashlib.sha256(basis.encode()).hexdigest()[:24]
