"""`local` backend: the embedded ticket store, so the agent opens tickets out of the box.

Tickets live in their own SQLite file (default `<state_dir>/tickets.db`, `tickets-<name>.db` for a local
backend with another name; 0600, WAL, fsync on commit), separate from the state database: to the
agent it is a ticket system like any other, found again by fingerprint after a crash.

Status: new → acknowledged → resolved → closed, and reopened (→ acknowledged/resolved …) when the
incident fires again within the reopen window. Each ticket has a priority, a category, SLA deadlines
(acknowledge by / resolve by), the diagnosis, and a timeline of events. People act on tickets with
`hostwarden tickets ack|comment|resolve|close ID`; the agent learns of it by polling (two-way sync).

Repeated deliveries are harmless: an operation's idempotency key is stored with what it created, so a
retried `open` returns the ticket the first attempt made and a retried note is not written twice.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hostwarden.agent.core import sqlitefile
from hostwarden.agent.core.incident import Incident, PermanentError, RemoteStatus, TicketRef, TransientError
from hostwarden.agent.core.units import human_duration
from hostwarden.exporters.tickets.base import BackendConfig, idempotency_key, register

log = logging.getLogger(__name__)

WHAT = "local ticket store"
STATUSES: tuple[str, ...] = ("new", "acknowledged", "resolved", "closed", "reopened")
OPEN_STATUSES: tuple[str, ...] = ("new", "acknowledged", "reopened")
POLL_SECONDS = 10.0  # reading a local file is cheap: people's actions reach the incident within seconds

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        category TEXT NOT NULL DEFAULT '',
        severity TEXT NOT NULL DEFAULT '',
        rule TEXT NOT NULL DEFAULT '',
        host TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL DEFAULT '[]',
        diagnosis TEXT NOT NULL DEFAULT '',
        storm_of TEXT NOT NULL DEFAULT '[]',
        opened_at REAL NOT NULL,
        acknowledged_at REAL,
        acknowledged_by TEXT NOT NULL DEFAULT '',
        resolved_at REAL,
        closed_at REAL,
        reopen_count INTEGER NOT NULL DEFAULT 0,
        ack_due REAL,
        resolve_due REAL,
        status_changed_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        open_key TEXT UNIQUE
    );
    CREATE INDEX tickets_by_fp ON tickets (fingerprint, id);
    CREATE INDEX tickets_by_status ON tickets (status);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT 'hostwarden',
        op_key TEXT UNIQUE
    );
    CREATE INDEX events_by_ticket ON events (ticket_id, id)
    """,
)


class TicketNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    pass


def default_path(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, "tickets.db" if name == "local" else f"tickets-{name}.db")


class TicketStore:
    """The SQLite ticket store: used by the backend (agent process) and by the CLI (people)."""

    def __init__(self, path: str) -> None:
        self.path = path
        # the process's one connection to the file, shared with any other store on it (a reload builds the
        # new backend while the old one still runs: both use this connection, never a second descriptor)
        self._shared: sqlitefile.SharedConnection | None = sqlitefile.acquire(path, MIGRATIONS, what=WHAT)
        self._lock = self._shared.lock
        self._conn = self._shared.conn

    def close(self) -> None:
        """Release the file (idempotent); the connection closes with its last user in the process."""
        shared, self._shared = self._shared, None
        if shared is not None:
            sqlitefile.release(shared)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- reading ------------------------------------------------------------------------------------------
    def list(self, statuses: Iterable[str] | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM tickets"
        params: list[Any] = []
        wanted = list(statuses or ())
        if wanted:
            sql += f" WHERE status IN ({', '.join('?' * len(wanted))})"
            params = wanted
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", params).fetchall()
        return [_ticket_dict(r) for r in rows]

    def get(self, ticket_id: int) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
            if row is None:
                raise TicketNotFound(f"no ticket {ticket_id} in {self.path}")
            events = self._conn.execute("SELECT at, kind, text, author FROM events WHERE ticket_id = ? ORDER BY id",
                                        (ticket_id,)).fetchall()
        out = _ticket_dict(row)
        out["events"] = [dict(e) for e in events]
        return out

    def find(self, fingerprint: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT id FROM tickets WHERE fingerprint = ? ORDER BY id DESC LIMIT 1",
                                     (fingerprint,)).fetchone()
        return int(row["id"]) if row else None

    def statuses(self, ids: Iterable[int]) -> dict[int, tuple[str, float, str]]:
        """id -> (status, when it last changed, who acknowledged it)."""
        wanted = list(ids)
        if not wanted:
            return {}
        with self._lock:
            rows = self._conn.execute(f"SELECT id, status, status_changed_at, acknowledged_by FROM tickets WHERE id "
                                      f"IN ({', '.join('?' * len(wanted))})", wanted).fetchall()
        return {int(r["id"]): (r["status"], float(r["status_changed_at"]), r["acknowledged_by"]) for r in rows}

    # -- writing (the agent) -----------------------------------------------------------------------------
    def create(self, incident: Incident, *, key: str, now: float) -> int:
        with self._tx() as c:
            if key:
                row = c.execute("SELECT id FROM tickets WHERE open_key = ?", (key,)).fetchone()
                if row is not None:
                    return int(row["id"])
            a = incident.alert
            cur = c.execute(
                "INSERT INTO tickets (fingerprint, title, status, priority, category, severity, rule, host, labels,"
                " diagnosis, storm_of, opened_at, reopen_count, ack_due, resolve_due, status_changed_at, updated_at,"
                " open_key) VALUES (?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (incident.fingerprint, incident.title, incident.priority, incident.category, a.severity, a.rule,
                 incident.host, json.dumps([list(p) for p in incident.labels]), incident.diagnosis,
                 json.dumps(list(incident.storm_of)), incident.opened_at, incident.reopen_count,
                 incident.extra_fields.get("ack_due"), incident.extra_fields.get("resolve_due"), now, now, key or None))
            tid = int(cur.lastrowid or 0)
            c.execute("INSERT INTO events (ticket_id, at, kind, text) VALUES (?, ?, 'opened', ?)",
                      (tid, incident.opened_at, _last_text(incident, "opened") or f"Opened: {incident.title}"))
            return tid

    def record(self, ticket_id: int, incident: Incident, *, kind: str, text: str, key: str, now: float,
               status: str | None = None) -> None:
        """One automated event (update/resolve/reopen): the ticket's fields follow the incident snapshot."""
        with self._tx() as c:
            if key and c.execute("SELECT 1 FROM events WHERE op_key = ?", (key,)).fetchone():
                return  # this operation was already applied (a retried delivery)
            row = c.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
            if row is None:
                raise TicketNotFound(f"local ticket {ticket_id} does not exist")
            at = incident.timeline[-1].at if incident.timeline else now
            fields: dict[str, Any] = {"priority": incident.priority, "severity": incident.alert.severity,
                                      "title": incident.title, "updated_at": now}
            if incident.storm_of:
                fields["storm_of"] = json.dumps(list(incident.storm_of))
            for due in ("ack_due", "resolve_due"):  # an escalation brings the new priority's deadlines
                if incident.extra_fields.get(due) is not None:
                    fields[due] = incident.extra_fields[due]
            if status is not None and status != row["status"]:
                fields.update(status=status, status_changed_at=now)
                if status == "resolved":
                    fields["resolved_at"] = incident.resolved_at or at
                if status == "closed":
                    fields["closed_at"] = now
                if status == "reopened":
                    fields.update(resolved_at=None, closed_at=None, acknowledged_at=None, acknowledged_by="",
                                  reopen_count=max(int(row["reopen_count"]) + 1, incident.reopen_count),
                                  ack_due=incident.extra_fields.get("ack_due"),
                                  resolve_due=incident.extra_fields.get("resolve_due"))
            sets = ", ".join(f"{k} = ?" for k in fields)
            c.execute(f"UPDATE tickets SET {sets} WHERE id = ?", (*fields.values(), ticket_id))
            c.execute("INSERT INTO events (ticket_id, at, kind, text, op_key) VALUES (?, ?, ?, ?, ?)",
                      (ticket_id, at, kind, text, key or None))

    # -- writing (people, through the CLI) -------------------------------------------------------------------
    def act(self, ticket_id: int, action: str, *, by: str, now: float, text: str = "") -> dict[str, Any]:
        """ack | comment | resolve | close, as a person. Raises TicketNotFound / InvalidTransition."""
        with self._tx() as c:
            row = c.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
            if row is None:
                raise TicketNotFound(f"no ticket {ticket_id}")
            status = row["status"]
            fields: dict[str, Any] = {"updated_at": now}
            if action == "ack":
                if status not in ("new", "reopened"):
                    raise InvalidTransition(f"ticket {ticket_id} is {status}; only new or reopened tickets can be "
                                            f"acknowledged")
                fields.update(status="acknowledged", acknowledged_at=now, acknowledged_by=by, status_changed_at=now)
                text = text or f"Acknowledged by {by}"
            elif action == "resolve":
                if status in ("resolved", "closed"):
                    raise InvalidTransition(f"ticket {ticket_id} is already {status}")
                fields.update(status="resolved", resolved_at=now, status_changed_at=now)
                text = text or f"Resolved by {by}"
            elif action == "close":
                if status == "closed":
                    raise InvalidTransition(f"ticket {ticket_id} is already closed")
                fields.update(status="closed", closed_at=now, status_changed_at=now)
                if row["resolved_at"] is None:
                    fields["resolved_at"] = now
                text = text or f"Closed by {by}"
            elif action == "comment":
                if not text.strip():
                    raise InvalidTransition("a comment needs text")
            else:
                raise ValueError(f"unknown action {action!r}")
            sets = ", ".join(f"{k} = ?" for k in fields)
            c.execute(f"UPDATE tickets SET {sets} WHERE id = ?", (*fields.values(), ticket_id))
            c.execute("INSERT INTO events (ticket_id, at, kind, text, author) VALUES (?, ?, ?, ?, ?)",
                      (ticket_id, now, {"ack": "acknowledged", "comment": "comment", "resolve": "resolved",
                                        "close": "closed"}[action], text, by))
        return self.get(ticket_id)


def _ticket_dict(r: Any) -> dict[str, Any]:
    d = dict(r)
    d.pop("open_key", None)
    d["labels"] = dict(json.loads(d.get("labels") or "[]"))
    d["storm_of"] = json.loads(d.get("storm_of") or "[]")
    return d


def _last_text(incident: Incident, kind: str) -> str:
    for e in reversed(incident.timeline):
        if e.kind == kind:
            return e.text
    return ""


@dataclass(frozen=True)
class LocalConfig(BackendConfig):
    path: str | None = None  # default: <state_dir>/tickets.db (tickets-<name>.db unless the name is `local`)
    rate_limit: float = 500.0  # a local file: no need to hold back
    burst: int = 500


@register("local")
class LocalBackend:
    Config = LocalConfig
    poll_interval = POLL_SECONDS

    def __init__(self, config: LocalConfig, *, state_dir: str | None = None, check_only: bool = False,
                 **_context: Any) -> None:
        self.config = config
        self.name = config.name
        self.path = config.path or default_path(state_dir or ".", config.name)
        self._store: TicketStore | None = None
        self._open_error = ""
        if not check_only:
            try:
                self._store = TicketStore(self.path)
            except (OSError, sqlite3.Error) as e:  # the agent keeps running; operations wait in the outbox
                self._open_error = str(e)
                log.error("local ticket store %s cannot be opened (%s); ticket operations wait in the outbox",
                          self.path, e)

    @property
    def store(self) -> TicketStore:
        """The store, opened on first use; TransientError while it cannot be opened (retried by the outbox)."""
        if self._store is None:
            try:
                self._store = TicketStore(self.path)
            except (OSError, sqlite3.Error) as e:
                raise TransientError(f"cannot open the local ticket store {self.path}: {e}") from None
            if self._open_error:
                log.info("local ticket store %s opened", self.path)
                self._open_error = ""
        return self._store

    def close(self) -> None:
        """Release the store (the agent calls it when a reload replaced this backend, and at stop)."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def _id(self, ref: TicketRef) -> int:
        try:
            return int(ref.id)
        except ValueError:
            raise PermanentError(f"{ref.id!r} is not a local ticket id") from None

    def find(self, fingerprint: str) -> TicketRef | None:
        try:
            tid = self.store.find(fingerprint)
        except sqlite3.OperationalError as e:
            raise TransientError(f"local ticket store {self.path}: {e}") from None
        return TicketRef(self.name, str(tid)) if tid is not None else None

    def open(self, incident: Incident) -> TicketRef:
        try:
            tid = self.store.create(incident, key=idempotency_key(), now=time.time())
        except sqlite3.OperationalError as e:  # disk full, locked: retried
            raise TransientError(f"local ticket store {self.path}: {e}") from None
        log.info("local ticket #%d opened for %s (%s)", tid, incident.fingerprint, incident.title)
        return TicketRef(self.name, str(tid))

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        self._record(ref, incident, kind="updated", text=event)

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        if incident.timeline and incident.timeline[-1].kind == "retired":  # its check left the configuration
            self._record(ref, incident, kind="closed", text=incident.timeline[-1].text, status="closed")
            return
        text = _last_text(incident, "resolved")
        if not text and incident.resolved_at is not None:
            text = f"Resolved after {human_duration(incident.resolved_at - incident.alert.active_since)}"
        self._record(ref, incident, kind="resolved", text=text or "Resolved", status="resolved")

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        text = _last_text(incident, "reopened") or "Firing again: reopened"
        self._record(ref, incident, kind="reopened", text=text, status="reopened")

    def _record(self, ref: TicketRef, incident: Incident, *, kind: str, text: str, status: str | None = None) -> None:
        try:
            self.store.record(self._id(ref), incident, kind=kind, text=text, key=idempotency_key(), now=time.time(),
                              status=status)
        except TicketNotFound as e:
            raise PermanentError(str(e)) from None
        except sqlite3.OperationalError as e:
            raise TransientError(f"local ticket store {self.path}: {e}") from None

    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]:
        wanted = {self._id(r): r for r in refs}
        try:
            found = self.store.statuses(wanted)
        except sqlite3.OperationalError as e:
            raise TransientError(f"local ticket store {self.path}: {e}") from None
        out = []
        for tid, ref in wanted.items():
            if tid not in found:
                out.append(RemoteStatus(ref, "missing"))
                continue
            status, changed, acked_by = found[tid]
            state = {"new": "open", "reopened": "open"}.get(status, status)
            out.append(RemoteStatus(ref, state, assignee=acked_by if state == "acknowledged" else "",  # type: ignore[arg-type]
                                    changed_at=changed))
        return out

    def preview(self, incident: Incident) -> dict[str, Any]:
        """What `open` would store (for `hostwarden tickets preview`)."""
        from hostwarden.exporters.tickets import render

        return {"path": self.path, "title": render.render_title(incident), "status": "new",
                "priority": incident.priority, "category": incident.category,
                "ack_due": incident.extra_fields.get("ack_due"),
                "resolve_due": incident.extra_fields.get("resolve_due"),
                "body": render.render_body(incident, "plain")}
