"""The outbox worker: delivers committed ticket operations to the backends, in order, exactly as often as needed.

- Order: one queue per (backend, fingerprint); only the oldest pending row of a queue is attempted, so
  open → update → resolve → reopen arrive in the order they were decided.
- Unexpected exceptions (a bug, an unmapped library error, an SQLite integrity error): logged at error
  naming the incident, counted (`hostwarden_ticket_unexpected_errors_total`), retried like a transient
  error, and dead-lettered after MAX_UNEXPECTED_ATTEMPTS, so one bad operation cannot block its queue.
- Transient errors (TransientError): the row is retried with exponential backoff
  and jitter (1 s doubling to 5 min, "equal jitter"); the backend as a whole pauses too, so a receiver
  that is down costs one attempt per backoff step, not one per queued row. `Retry-After` (429/503) pauses
  the backend for exactly that long. Durations use the monotonic clock.
- Permanent errors (PermanentError): the row is dead-lettered with the error and one log line;
  `hostwarden tickets retry ID` re-queues it. Later rows of the same incident wait behind a dead `open`
  (they need its ticket), rows of other incidents go on.
- Rate limit: a token bucket per backend (`rate_limit` per second, `burst`) queues, never drops.
- Dedup: before `open`, `find(fingerprint)`: a ticket that exists but is not known to belong to another
  incident is adopted instead of opening a second one (a crash between "created" and "recorded", or a
  state database that was lost). Every delivery runs with the row's idempotency key set
  (`exporters.tickets.base.idempotency_key()`), the same on every retry.
- Two-way sync: backends that implement `poll(refs)` are polled every `poll_interval` (or their own
  `poll_interval` attribute) for the tickets of open incidents; see incidents.apply_remote_statuses.

One thread per backend, so a slow backend never delays another.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hostwarden.agent.core.incident import Incident, PermanentError, TicketRef, TransientError, incident_from_dict
from hostwarden.agent.core.secrets import redact
from hostwarden.agent.incidents.manager import apply_remote_statuses
from hostwarden.agent.incidents.state import StateDB
from hostwarden.exporters.tickets.base import (
    TicketBackend,
    get_backend_class,
    reset_idempotency_key,
    set_idempotency_key,
)

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
MAX_IDLE_WAIT = 5.0  # re-read the outbox at least this often (rows re-queued by `tickets retry`)
HEADS_PER_SCAN = 1000
MAX_UNEXPECTED_ATTEMPTS = 5  # an operation failing with an unexpected exception this often is dead-lettered
PRUNE_DONE_AFTER = 7 * 86400.0
PRUNE_EVERY = 600.0


class BackendInitError(Exception):
    """A configured backend could not be built (a secret that cannot be read, a bad option)."""


def backoff(attempt: int, rnd: float) -> float:
    """Delay before attempt `attempt + 1` (attempt ≥ 1): base·2^(attempt-1) capped, half of it jittered."""
    d = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** min(max(attempt - 1, 0), 30)))
    return d / 2 + rnd * d / 2


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = max(rate, 1e-6)
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.at = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one will be available."""
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class _Backend:
    name: str
    backend: TicketBackend
    bucket: TokenBucket
    timeout: float
    failures: int = 0
    paused_until: float = 0.0
    failing_since_error: str = ""
    next_poll: float = 0.0
    poll_interval: float = 300.0
    poll_error: str = ""
    due: dict[int, float] = field(default_factory=dict)  # row id -> monotonic time of its next attempt
    unexpected: dict[int, int] = field(default_factory=dict)  # row id -> unexpected exceptions so far
    wake: threading.Event = field(default_factory=threading.Event)


def _config_of(backend: Any) -> Any:
    return getattr(backend, "config", None)


class OutboxWorker:
    """`clock`: monotonic seconds for backoff, Retry-After, rate limits and polling (never persisted);
    `wall`: the timestamps written for people (`tickets outbox`). `sleep` is accepted for the agent's
    contract; waiting is done on an Event so `wake()` and `stop()` cut it short."""

    def __init__(self, state: StateDB, backends: dict[str, TicketBackend], *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time, poll_interval: float = 300.0,
                 rng: Callable[[], float] = random.random) -> None:
        self.state = state
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.rng = rng
        now = clock()
        self._b: dict[str, _Backend] = {}
        for name, b in backends.items():
            cfg = _config_of(b)
            own_poll = getattr(b, "poll_interval", None)
            self._b[name] = _Backend(
                name=name, backend=b,
                bucket=TokenBucket(float(getattr(cfg, "rate_limit", 1.0)), int(getattr(cfg, "burst", 10)), now),
                timeout=float(getattr(cfg, "timeout", 10.0)),
                poll_interval=float(own_poll) if own_poll else float(poll_interval), next_poll=now)
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._drain_deadline: float | None = None
        self._unknown_logged: set[str] = set()
        self._last_prune = -PRUNE_EVERY

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        rows = self.state.query("SELECT backend, COUNT(*) AS n FROM outbox WHERE status = 'pending' GROUP BY backend")
        for r in rows:
            log.info("outbox: %d ticket operation(s) waiting for backend %s", r["n"], r["backend"])
            if r["backend"] not in self._b:
                log.warning("outbox: backend %s is no longer configured; its %d operation(s) stay queued",
                            r["backend"], r["n"])
        for name in self._b:
            t = threading.Thread(target=self._loop, args=(name,), name=f"outbox-{name}", daemon=True)
            self._threads.append(t)
            t.start()

    def wake(self) -> None:
        for b in self._b.values():
            b.wake.set()

    def stop(self, drain_timeout: float) -> None:
        """Keep delivering what is due for up to `drain_timeout` seconds, let in-flight calls finish, return.
        Whatever is left stays in the outbox for the next start."""
        self._drain_deadline = self.clock() + max(0.0, drain_timeout)
        self._stopping.set()
        self.wake()
        grace = max((b.timeout for b in self._b.values()), default=0.0)
        for t in self._threads:
            remaining = self._drain_deadline - self.clock()
            t.join(timeout=max(0.0, remaining) + min(grace, 30.0) + 1.0)
            if t.is_alive():
                log.warning("outbox: %s still busy after the drain timeout; its operation is retried at the next start",
                            t.name)
        self._threads = []
        left = self.state.query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"]
        if left:
            log.info("outbox: %d ticket operation(s) left queued for the next start", left)

    def _loop(self, name: str) -> None:
        b = self._b[name]
        while True:
            now = self.clock()
            if self._stopping.is_set() and self._drain_deadline is not None and now >= self._drain_deadline:
                return
            try:
                self.run_once(now, backend=name)
                if not self._stopping.is_set():
                    self._poll_backend(b, self.clock())
                if name == next(iter(self._b)):
                    self._maybe_prune(self.clock())
            except sqlite3.OperationalError as e:  # state database unwritable (disk full …): back off, try again
                log.debug("outbox %s: state database error: %s", name, e)
                b.paused_until = max(b.paused_until, self.clock() + 5.0)
            except sqlite3.Error as e:  # integrity/corruption: not a passing condition, say so
                self.state.stats.count_integrity()
                log.error("outbox %s: state database error: %s: %s", name, type(e).__name__, e)
                b.paused_until = max(b.paused_until, self.clock() + 5.0)
            except Exception:
                log.exception("outbox %s: unexpected error", name)
                b.paused_until = max(b.paused_until, self.clock() + 5.0)
            wait = self._next_wait(b, self.clock())
            if self._stopping.is_set():
                assert self._drain_deadline is not None
                if wait is None or self.clock() + wait >= self._drain_deadline:
                    return  # nothing more can be delivered before the deadline
            b.wake.wait(MAX_IDLE_WAIT if wait is None else min(max(wait, 0.0), MAX_IDLE_WAIT))
            b.wake.clear()

    def _next_wait(self, b: _Backend, now: float) -> float | None:
        """Seconds until something of this backend may be deliverable; None when nothing is queued."""
        heads = self._heads(b.name)
        if not heads:
            return None
        t = max(min(b.due.get(int(r["id"]), 0.0) for r in heads), b.paused_until)
        if b.bucket.tokens < 1.0:
            t = max(t, b.bucket.at + (1.0 - b.bucket.tokens) / b.bucket.rate)
        return t - now

    # -- delivery ---------------------------------------------------------------------------------------------------
    def _heads(self, backend: str) -> list[sqlite3.Row]:
        return self.state.query(
            "SELECT o.* FROM outbox o WHERE o.status = 'pending' AND o.backend = ? "
            "AND o.id = (SELECT MIN(p.id) FROM outbox p WHERE p.status = 'pending' AND p.backend = o.backend "
            "            AND p.fingerprint = o.fingerprint) "
            "AND NOT EXISTS (SELECT 1 FROM outbox d WHERE d.status = 'dead' AND d.op = 'open' "
            "                AND d.incident_id = o.incident_id AND d.id < o.id) "
            "ORDER BY o.id LIMIT ?", (backend, HEADS_PER_SCAN))

    def run_once(self, now: float, backend: str | None = None) -> int:
        """Deliver every operation that is due at `now` (monotonic seconds), as far as the rate limits allow.
        Returns how many operations were delivered (successfully)."""
        names = [backend] if backend is not None else list(self._b)
        if backend is None:
            for r in self.state.query("SELECT DISTINCT backend FROM outbox WHERE status = 'pending'"):
                if r["backend"] not in self._b and r["backend"] not in self._unknown_logged:
                    self._unknown_logged.add(r["backend"])
                    log.warning("outbox: operations for backend %s wait: no such backend is configured", r["backend"])
        delivered = 0
        for name in names:
            b = self._b.get(name)
            if b is not None:
                delivered += self._run_backend(b, now)
        return delivered

    def _run_backend(self, b: _Backend, now: float) -> int:
        n = 0
        while b.paused_until <= now:
            progressed = False
            for row in self._heads(b.name):
                if b.due.get(int(row["id"]), 0.0) > now:
                    continue
                if b.bucket.take(now) > 0:
                    return n  # rate limit: the rest waits for tokens
                if self._deliver(b, row, now):
                    n += 1
                    progressed = True
                if b.paused_until > now or (self._stopping.is_set() and self._past_deadline()):
                    return n
            if not progressed:
                break
        return n

    def _past_deadline(self) -> bool:
        return self._drain_deadline is not None and self.clock() >= self._drain_deadline

    def _deliver(self, b: _Backend, row: sqlite3.Row, now: float) -> bool:
        rid, op = int(row["id"]), row["op"]
        payload = json.loads(row["payload"])
        incident = incident_from_dict(payload["incident"])
        inc_rows = self.state.query("SELECT * FROM incidents WHERE id = ?", (row["incident_id"],))
        inc_row = dict(inc_rows[0]) if inc_rows else None
        ref = self._ref(b.name, inc_row)
        if op != "open" and ref is None:
            self.state.stats.count(b.name, op, "permanent")
            self._dead(b, row, "no ticket reference: the incident's open operation never succeeded")
            return False
        if op == "update" and inc_row is not None and inc_row["muted"]:
            self._finish(rid, "skipped", incident_id=None, ref=None)
            return True
        incident = _with_ref(incident, ref)
        token = set_idempotency_key(row["idempotency_key"])
        started = self.clock()
        try:
            if op == "open":
                ref = self._open(b, incident, int(row["incident_id"]))
            elif op == "update":
                b.backend.update(ref, incident, payload.get("event", ""))  # type: ignore[arg-type]
            elif op == "resolve":
                b.backend.resolve(ref, incident)  # type: ignore[arg-type]
            elif op == "reopen":
                b.backend.reopen(ref, incident)  # type: ignore[arg-type]
            else:
                raise PermanentError(f"unknown outbox operation {op!r}")
        except PermanentError as e:
            self.state.stats.count(b.name, op, "permanent")
            self._dead(b, row, str(e))
            return False
        except TransientError as e:  # backoff counts from the end of the attempt (a timeout can outlast a step)
            self._transient(b, row, now + max(0.0, self.clock() - started), str(e), e.retry_after)
            return False
        except Exception as e:  # a bug or an unmapped library error: retried a few times, then dead-lettered
            return self._unexpected(b, row, now + max(0.0, self.clock() - started), e)
        finally:
            reset_idempotency_key(token)
        self.state.stats.count(b.name, op, "success")
        b.unexpected.pop(rid, None)
        try:
            self._finish(rid, "done", incident_id=int(row["incident_id"]) if op == "open" else None, ref=ref,
                         backend=b.name)
        except sqlite3.OperationalError:
            raise  # disk full: the loop backs off; the retried delivery is deduplicated by its idempotency key
        except sqlite3.Error as e:
            self.state.stats.count_integrity()
            log.error("tickets backend %s: %s for incident %s (outbox #%d) was delivered but cannot be recorded: "
                      "%s: %s; dead-lettering it", b.name, op, row["fingerprint"], rid, type(e).__name__, e)
            self._dead(b, row, f"delivered, but recording it failed: {type(e).__name__}: {e}")
            return False
        if b.failures:
            log.info("tickets backend %s: delivering again after %d failed attempt(s)", b.name, b.failures)
            b.failures, b.failing_since_error = 0, ""
        b.due.pop(rid, None)
        if op == "open" and ref is not None:
            log.info("ticket %s opened in %s for incident %s: %s", ref.id, b.name, incident.fingerprint,
                     incident.title)
        else:
            log.debug("ticket %s: %s delivered to %s", ref.id if ref else "?", op, b.name)
        return True

    def _ref(self, backend: str, inc_row: dict[str, Any] | None) -> TicketRef | None:
        """The incident's ticket in `backend`: the primary's is on the incident row, others' in incident_tickets."""
        if inc_row is None:
            return None
        if backend == inc_row["backend"] and inc_row["ticket_id"]:
            return TicketRef(backend, inc_row["ticket_id"], inc_row["ticket_url"] or "")
        rows = self.state.query("SELECT ticket_id, ticket_url FROM incident_tickets WHERE incident_id = ? AND "
                                "backend = ?", (inc_row["id"], backend))
        return TicketRef(backend, rows[0]["ticket_id"], rows[0]["ticket_url"] or "") if rows else None

    def _open(self, b: _Backend, incident: Incident, incident_id: int) -> TicketRef:
        found = b.backend.find(incident.fingerprint)
        if found is not None:
            other = self.state.query("SELECT id FROM incidents WHERE backend = ? AND ticket_id = ? AND id != ? "
                                     "UNION SELECT incident_id FROM incident_tickets WHERE backend = ? AND "
                                     "ticket_id = ? AND incident_id != ? LIMIT 1",
                                     (b.name, found.id, incident_id, b.name, found.id, incident_id))
            if not other:
                log.info("tickets backend %s already has ticket %s for %s: recording it instead of opening another",
                         b.name, found.id, incident.fingerprint)
                self._reopen_if_closed(b, found, incident)
                return found
        return b.backend.open(incident)

    def _reopen_if_closed(self, b: _Backend, ref: TicketRef, incident: Incident) -> None:
        poll = getattr(b.backend, "poll", None)
        if not callable(poll):
            return
        statuses = poll([ref])
        if any(s.state in ("resolved", "closed") for s in statuses):
            log.info("tickets backend %s: adopted ticket %s was %s; reopening it", b.name, ref.id, statuses[0].state)
            b.backend.reopen(ref, incident)

    def _finish(self, rid: int, status: str, *, incident_id: int | None, ref: TicketRef | None,
                backend: str = "") -> None:
        wall = self.wall()
        with self.state.tx() as c:
            c.execute("UPDATE outbox SET status = ?, done_at = ?, attempts = attempts + 1, last_attempt_at = ?, "
                      "next_attempt_at = NULL WHERE id = ?", (status, wall, wall, rid))
            if incident_id is not None and ref is not None:
                backend = backend or ref.backend
                c.execute("UPDATE incidents SET ticket_id = ?, ticket_url = ? WHERE id = ? AND backend = ?",
                          (ref.id, ref.url, incident_id, backend))
                c.execute("INSERT OR REPLACE INTO incident_tickets (incident_id, backend, ticket_id, ticket_url, "
                          "recorded_at) VALUES (?, ?, ?, ?, ?)", (incident_id, backend, ref.id, ref.url, wall))
                c.execute("INSERT INTO incident_events (incident_id, at, kind, text) VALUES (?, ?, 'ticket', ?)",
                          (incident_id, wall, f"ticket {ref.id} in {ref.backend}" + (f" {ref.url}" if ref.url else "")))

    def _transient(self, b: _Backend, row: sqlite3.Row, now: float, error: str, retry_after: float | None) -> None:
        error = redact(error)  # a server may echo our credentials in its error body: never store them
        rid, op = int(row["id"]), row["op"]
        self.state.stats.count(b.name, op, "transient")
        attempts = int(row["attempts"]) + 1
        b.failures += 1
        if retry_after is not None:  # the server said when: that replaces our own guess
            delay = retry_after
            b.paused_until = now + retry_after
        else:
            delay = backoff(attempts, self.rng())
            b.paused_until = max(b.paused_until, now + backoff(b.failures, self.rng()))
        b.due[rid] = now + delay
        with self.state.tx() as c:
            c.execute("UPDATE outbox SET attempts = ?, last_attempt_at = ?, next_attempt_at = ?, last_error = ? "
                      "WHERE id = ?", (attempts, self.wall(), self.wall() + delay, error[:2000], rid))
        if b.failures == 1 or error != b.failing_since_error:
            log.warning("tickets backend %s: %s failed (%s); retrying in %.1fs%s", b.name, op, error, delay,
                        " (Retry-After)" if retry_after is not None else " with backoff")
            b.failing_since_error = error

    def _unexpected(self, b: _Backend, row: sqlite3.Row, now: float, e: Exception) -> bool:
        """An exception no backend should raise: logged at error naming the incident, counted, retried with
        backoff, and dead-lettered after MAX_UNEXPECTED_ATTEMPTS so it cannot block its incident's queue."""
        rid = int(row["id"])
        n = b.unexpected.get(rid, 0) + 1
        b.unexpected[rid] = n
        self.state.stats.count_unexpected(b.name)
        error = f"{type(e).__name__}: {e}"
        log.error("tickets backend %s: %s for incident %s (outbox #%d) raised an unexpected %s (attempt %d of %d)",
                  b.name, row["op"], row["fingerprint"], rid, error, n, MAX_UNEXPECTED_ATTEMPTS,
                  exc_info=(type(e), e, e.__traceback__) if n == 1 else None)
        if isinstance(e, sqlite3.OperationalError):  # the backend's own database is busy or full: transient
            self._transient(b, row, now, error, None)
            return False
        if isinstance(e, sqlite3.Error):
            self.state.stats.count_integrity()
        if n >= MAX_UNEXPECTED_ATTEMPTS:
            b.unexpected.pop(rid, None)
            self.state.stats.count(b.name, row["op"], "permanent")
            self._dead(b, row, f"unexpected error {n} times: {error}")
            return False
        self._transient(b, row, now, error, None)
        return False

    def _dead(self, b: _Backend, row: sqlite3.Row, error: str) -> None:
        error = redact(error)
        rid = int(row["id"])
        b.due.pop(rid, None)
        with self.state.tx() as c:
            c.execute("UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_attempt_at = ?, "
                      "next_attempt_at = NULL, last_error = ? WHERE id = ?", (self.wall(), error[:2000], rid))
        log.error("tickets backend %s: %s for incident %s dead-lettered (outbox #%d): %s; "
                  "`hostwarden tickets retry %d` queues it again", b.name, row["op"], row["fingerprint"], rid, error,
                  rid)

    # -- two-way sync ----------------------------------------------------------------------------------------------
    def poll_once(self, now: float) -> int:
        """Poll every backend whose poll is due at `now` (monotonic); returns how many incidents changed."""
        return sum(self._poll_backend(b, now) for b in self._b.values())

    def _poll_backend(self, b: _Backend, now: float) -> int:
        poll = getattr(b.backend, "poll", None)
        if not callable(poll) or now < b.next_poll:
            return 0
        b.next_poll = now + b.poll_interval
        # the tickets of open incidents in this backend, whether it is their route's first backend or another one
        rows = self.state.query(
            "SELECT ticket_id, ticket_url FROM (SELECT id, ticket_id, ticket_url FROM incidents WHERE backend = ? "
            "AND status = 'open' AND ticket_id IS NOT NULL AND storm_id IS NULL UNION SELECT i.id, t.ticket_id, "
            "t.ticket_url FROM incident_tickets t JOIN incidents i ON i.id = t.incident_id WHERE t.backend = ? "
            "AND i.backend != ? AND i.status = 'open' AND i.storm_id IS NULL) ORDER BY id LIMIT 1000",
            (b.name, b.name, b.name))
        if not rows:
            return 0
        refs = [TicketRef(b.name, r["ticket_id"], r["ticket_url"] or "") for r in rows]
        try:
            statuses = poll(refs)
        except (TransientError, PermanentError, OSError) as e:
            if str(e) != b.poll_error:
                log.warning("tickets backend %s: polling ticket states failed: %s", b.name, e)
                b.poll_error = str(e)
            return 0
        b.poll_error = ""
        return apply_remote_statuses(self.state, list(statuses), self.wall())

    def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        with self.state.tx() as c:
            c.execute("DELETE FROM outbox WHERE status IN ('done', 'skipped') AND done_at < ?",
                      (self.wall() - PRUNE_DONE_AFTER,))


def _with_ref(incident: Incident, ref: TicketRef | None) -> Incident:
    if ref is None:
        return incident
    from dataclasses import replace

    return replace(incident, ticket_ref=ref)


# -- building backends, and the outbox as the CLI sees it ----------------------------------------------------------

def build_backends(config: Any, *, state_dir: str, check_only: bool = False) -> dict[str, TicketBackend]:
    """One instance per configured backend. Constructors get `state_dir` and `check_only` when they accept
    them (as keyword arguments or **kwargs). Raises BackendInitError naming the backend."""
    out: dict[str, TicketBackend] = {}
    for cfg in getattr(config, "backends", ()):
        cls = get_backend_class(cfg.type)
        if cls is None:
            raise BackendInitError(f"backend {cfg.name!r}: unknown type {cfg.type!r}")
        params = inspect.signature(cls).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        context = {k: v for k, v in (("state_dir", state_dir), ("check_only", check_only))
                   if takes_any or k in params}
        try:
            inst = cls(cfg, **context)
        except Exception as e:
            raise BackendInitError(f"backend {cfg.name!r} ({cfg.type}): {e}") from e
        if getattr(inst, "config", None) is None:
            try:
                inst.config = cfg
            except AttributeError:
                pass
        out[cfg.name] = inst
    return out


def list_outbox(state: StateDB, *, include_done: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
    statuses = ("pending", "dead", "done", "skipped") if include_done else ("pending", "dead")
    rows = state.query(f"SELECT id, incident_id, backend, fingerprint, op, idempotency_key, status, created_at, "
                       f"attempts, last_attempt_at, next_attempt_at, last_error, done_at FROM outbox "
                       f"WHERE status IN ({', '.join('?' * len(statuses))}) ORDER BY id LIMIT ?", (*statuses, limit))
    return [dict(r) for r in rows]


def retry(state: StateDB, row_id: int) -> bool:
    """Re-queue a dead-lettered operation; False when there is no dead row with that id."""
    with state.tx() as c:
        cur = c.execute("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL "
                        "WHERE id = ? AND status = 'dead'", (row_id,))
        return cur.rowcount == 1
