"""IncidentManager: alert transitions → incidents → outbox rows. Pure bookkeeping; never network I/O.

One incident per alert fingerprint at a time. Every decision and the outbox rows it produces are
committed in one SQLite transaction before `handle()` returns; the outbox worker delivers them.

- firing → open a ticket, or reopen the fingerprint's last one when it resolved less than
  `reopen_window` ago on the same backend (`0s`: never reopen);
- escalated / de-escalated → a note and the new priority; flapping start → one note, then silence
  until flapping stops (one more note);
- resolved → the resolve operation with the duration (or a note, `on_resolve: comment`);
- notes are coalesced: at most one update per incident per `update_interval` (`tick()` sends what waited);
- storm: when `storm_threshold` incidents were opened within `storm_window` on a backend, further
  ones join one storm ticket that lists them (updated by `tick()`, resolved when all have resolved);
- SLA: acknowledge/resolve deadlines per priority, breaches recorded once by `tick()`;
- a ticket a person closed while the alert fires gets nothing more until the alert resolves and fires
  anew (two-way sync, `apply_remote_statuses`).

Replayed transitions (after a crash between this commit and the rule manager's state save) are
recognised and ignored: firing for an open incident, resolved for a resolved one, a severity it
already has.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from hostwarden.agent.core.alert import SEVERITY_ORDER, Alert, AlertState, alert_from_dict, alert_to_dict, fingerprint
from hostwarden.agent.core.incident import Incident, RemoteStatus, TicketRef, TimelineEntry, incident_to_dict
from hostwarden.agent.core.priority import PRIORITIES
from hostwarden.agent.core.samples import Labels, MetricDef, Sample, labels_of, metric_defs
from hostwarden.agent.core.units import format_duration, human_duration
from hostwarden.agent.incidents.silence import MaintenanceWindow
from hostwarden.agent.incidents.state import StateDB
from hostwarden.agent.incidents.suppress import Suppressor
from hostwarden.exporters.tickets.config import TicketsConfig
from hostwarden.rules.alerts import AlertTransition, TransitionKind

log = logging.getLogger(__name__)

STORM_RULE = "HostwardenAlertStorm"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_TIMELINE = 50
MAX_BACKLOG = 10_000
MAX_ATTEMPTS = 5  # a transition the state database rejects as invalid this often is dropped (logged, counted)
MAX_STORM_LISTED = 200

INCIDENT_METRICS = metric_defs(
    MetricDef("hostwarden_incidents_open", "gauge", "Incidents currently open (firing), storm tickets excluded."),
    MetricDef("hostwarden_outbox_pending", "gauge", "Ticket operations waiting in the outbox.", ("backend",)),
    MetricDef("hostwarden_outbox_oldest_age_seconds", "gauge",
              "Age of the oldest ticket operation waiting in the outbox (0 when none).", ("backend",)),
    MetricDef("hostwarden_outbox_dead", "gauge",
              "Ticket operations dead-lettered after a permanent error (see `hostwarden tickets outbox`).",
              ("backend",)),
    MetricDef("hostwarden_ticket_operations_total", "counter", "Ticket operations attempted, by result.",
              ("backend", "op", "result")),
    MetricDef("hostwarden_ticket_errors_total", "counter", "Ticket operations that failed (transient or permanent).",
              ("backend",)),
    MetricDef("hostwarden_state_write_errors_total", "counter", "Writes to the state database that failed."),
    MetricDef("hostwarden_state_integrity_errors_total", "counter",
              "State database operations rejected as invalid (constraint, corruption), not a full or locked disk."),
    MetricDef("hostwarden_incident_transitions_dropped_total", "counter",
              "Alert transitions given up after repeated integrity errors (each logged at error with its incident)."),
    MetricDef("hostwarden_ticket_unexpected_errors_total", "counter",
              "Unexpected exceptions from a ticket backend (logged at error; dead-lettered after a few attempts).",
              ("backend",)),
    MetricDef("hostwarden_state_degraded", "gauge",
              "1 while the state database runs on an in-memory copy (its file could not be opened or written: "
              "read-only or full disk); decisions are not durable until it is 0 again."),
)


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


class IncidentManager:
    def __init__(self, config: TicketsConfig, *, state: StateDB, hostname: str, external_labels: dict[str, str],
                 diagnose: Callable[[Alert, float], str] | None = None,
                 windows: tuple[MaintenanceWindow, ...] = ()) -> None:
        self.config = config
        self.state = state
        self.hostname = hostname
        self.external_labels = dict(external_labels)
        self.diagnose = diagnose
        self.runbook_base_url = ""  # web.runbook_base_url: relative runbook_url annotations are resolved against it
        self.policy = config.policy()
        self._backlog: list[tuple[AlertTransition, float]] = []
        self._attempts: dict[tuple[str, str, float], int] = {}  # transitions rejected as invalid, by attempt
        self._logs: list[tuple[int, str, tuple[object, ...]]] = []  # decisions to log once committed
        self._new_storms: dict[int, float] = {}  # storm incidents created in the current handle() batch
        # silences (state database) and maintenance windows (config): ticket operations held, then released
        self.suppress = Suppressor(windows, external_labels=self.external_labels, policy=self.policy,
                                   enqueue=self._enqueue_now, event=self._event, set_fields=self._set)

    # -- public API ------------------------------------------------------------------------------------------
    def handle(self, transitions: list[AlertTransition], now: float, *,
               diagnoses: dict[str, str] | None = None) -> None:
        """Record the decisions for `transitions` and their outbox rows; committed when this returns.
        If the state database cannot be written (disk full), the transitions are kept in memory and
        retried with the next call or tick. `diagnoses` (fingerprint -> text): computed beforehand by
        `diagnose_batch`, outside whatever lock the caller holds around this call."""
        batch = self._backlog + [(t, now) for t in transitions if t.kind is not TransitionKind.PENDING]
        if not batch:
            return
        if diagnoses is None:
            diagnoses = self._diagnose_new([t for t, _ in batch], now)
        self._logs = []
        try:
            with self.state.tx() as c:
                self._new_storms = {}
                for t, t_now in batch:
                    self._apply(c, t, t_now, diagnoses)
                for storm_id, t_now in self._new_storms.items():  # opened with every member of this batch listed
                    storm = dict(c.execute("SELECT * FROM incidents WHERE id = ?", (storm_id,)).fetchone())
                    self._enqueue(c, storm, "open", "", t_now)
        except sqlite3.OperationalError:
            if len(batch) > MAX_BACKLOG:
                log.error("incident backlog over %d transitions while the state database is unwritable; "
                          "dropping the oldest %d", MAX_BACKLOG, len(batch) - MAX_BACKLOG)
            self._backlog = batch[-MAX_BACKLOG:]
            return
        except sqlite3.Error:  # integrity/corruption: find the transition(s) at fault, the others go on
            self._handle_one_by_one(batch, diagnoses)
            return
        self._backlog = []
        self._emit_logs()

    def _handle_one_by_one(self, batch: list[tuple[AlertTransition, float]], diagnoses: dict[str, str]) -> None:
        """Each transition in its own transaction: one the database rejects (not a full or locked disk) is
        logged at error naming its incident, counted, retried, and dropped after MAX_ATTEMPTS."""
        keep: list[tuple[AlertTransition, float]] = []
        for i, (t, t_now) in enumerate(batch):
            self._logs = []
            try:
                with self.state.tx() as c:
                    self._new_storms = {}
                    self._apply(c, t, t_now, diagnoses)
                    for storm_id, s_now in self._new_storms.items():
                        storm = dict(c.execute("SELECT * FROM incidents WHERE id = ?", (storm_id,)).fetchone())
                        self._enqueue(c, storm, "open", "", s_now)
            except sqlite3.OperationalError:
                keep.extend(batch[i:])  # the disk, not the data: everything from here waits
                break
            except sqlite3.Error as e:
                key = (t.alert.fingerprint, t.kind.value, t.at)
                n = self._attempts.get(key, 0) + 1
                self._attempts[key] = n
                dropped = n >= MAX_ATTEMPTS
                self.state.stats.count_integrity(dropped=dropped)
                log.error("incident %s (%s): the state database rejected its %s transition: %s: %s (attempt %d of "
                          "%d%s)", t.alert.fingerprint, t.alert.rule, t.kind.value, type(e).__name__, e, n,
                          MAX_ATTEMPTS, "; dropped" if dropped else "")
                if dropped:
                    self._attempts.pop(key, None)
                else:
                    keep.append((t, t_now))
                continue
            self._emit_logs()
        self._backlog = keep[-MAX_BACKLOG:]

    def tick(self, now: float) -> None:
        """Send coalesced updates that are due, maintain storm tickets, record SLA breaches."""
        if self._backlog:
            self.handle([], now)
        self._logs = []
        try:
            with self.state.tx() as c:
                self.suppress.tick(c, now)
                self._flush_due(c, now)
                self._maintain_storms(c, now)
                self._check_sla(c, now)
        except sqlite3.OperationalError:  # a full or locked disk: counted by the state database, tried next tick
            return
        except sqlite3.Error as e:
            self.state.stats.count_integrity()
            log.error("incident tick: the state database rejected the update: %s: %s", type(e).__name__, e)
            return
        self._emit_logs()

    def carry_over(self, old: IncidentManager) -> None:
        """A reload replaced `old` with this manager: keep what it held in memory (transitions not yet committed)."""
        self._backlog = list(old._backlog) + self._backlog
        self._attempts = {**old._attempts, **self._attempts}

    def retire_checks(self, names: set[str], now: float) -> int:
        """Checks removed from (or disabled in) the configuration: their open incidents are closed as such —
        event `retired`, not `resolved` (nothing was fixed: kept out of MTTR) — and their tickets closed with
        that reason. The alerts' own resolution that follows is then ignored. Returns how many."""
        if not names:
            return 0
        self._logs = []
        n = 0
        with self.state.tx() as c:
            rows = [dict(r) for r in c.execute("SELECT * FROM incidents WHERE status = 'open' AND is_storm = 0")]
            for inc in rows:
                check = dict(_loads(inc["labels"], [])).get("check", "")
                if check not in names:
                    continue
                text = f"Closed: check {check} was removed from the configuration (not a fix; not counted in MTTR)"
                was_muted = bool(inc["muted"])
                self._set(c, inc, status="resolved", resolved_at=now, pending_events="[]", last_update_at=now,
                          muted=0, flapping=0)
                self._event(c, inc["id"], now, "retired", text)
                self._log(logging.INFO, "incident %s closed: check %s was removed from the configuration",
                          inc["fingerprint"], check)
                n += 1
                if not was_muted and inc["storm_id"] is None and inc["backend"]:
                    self._enqueue(c, inc, "resolve", text, now)
        self._emit_logs()
        return n

    def _log(self, level: int, msg: str, *args: object) -> None:
        """Log a decision made inside a transaction: written once it is committed, so a transaction that
        fails (disk full) and is retried logs nothing until it succeeds, and then once."""
        self._logs.append((level, msg, args))

    def _emit_logs(self) -> None:
        logs, self._logs = self._logs, []
        for level, msg, args in logs:
            log.log(level, msg, *args)

    def is_silenced(self, alert: Alert, now: float) -> bool:
        """Whether a silence or maintenance window covers `alert` at `now` (remediation's hook: no action runs
        for a silenced alert)."""
        with self.state.lock:
            labels = {**self.external_labels, **dict(alert.labels)}
            return self.suppress.covering(self.state.connection, labels, now) is not None

    def firing_incidents(self) -> list[Incident]:
        """Snapshots of every open incident that has its own ticket (for backends that re-send while firing)."""
        with self.state.lock:
            c = self.state.connection
            rows = c.execute("SELECT * FROM incidents WHERE status = 'open' AND storm_id IS NULL "
                             "AND NOT (silenced_by != '' AND ticket_id IS NULL) ORDER BY id").fetchall()
            return [snapshot(c, dict(r)) for r in rows]

    def self_samples(self, now: float) -> list[Sample]:
        out: list[Sample] = []
        row = self.state.query("SELECT COUNT(*) AS n FROM incidents WHERE status = 'open' AND is_storm = 0")
        out.append(Sample("hostwarden_incidents_open", (), float(row[0]["n"]), now))
        backends = {b.name for b in self.config.backends}
        pending: dict[str, tuple[int, float]] = {}
        for r in self.state.query("SELECT backend, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox "
                                  "WHERE status = 'pending' GROUP BY backend"):
            pending[r["backend"]] = (int(r["n"]), float(r["oldest"]))
        dead = {r["backend"]: int(r["n"]) for r in self.state.query(
            "SELECT backend, COUNT(*) AS n FROM outbox WHERE status = 'dead' GROUP BY backend")}
        for name in sorted(backends | set(pending) | set(dead)):
            lab = labels_of(backend=name)
            n, oldest = pending.get(name, (0, now))
            out.append(Sample("hostwarden_outbox_pending", lab, float(n), now))
            out.append(Sample("hostwarden_outbox_oldest_age_seconds", lab, max(0.0, now - oldest) if n else 0.0, now))
            out.append(Sample("hostwarden_outbox_dead", lab, float(dead.get(name, 0)), now))
        ops, errors = self.state.stats.snapshot()
        for (backend, op, result), n in sorted(ops.items()):
            out.append(Sample("hostwarden_ticket_operations_total", labels_of(backend=backend, op=op, result=result),
                              float(n), now))
        for name in sorted(backends | set(errors)):
            out.append(Sample("hostwarden_ticket_errors_total", labels_of(backend=name), float(errors.get(name, 0)),
                              now))
        out.append(Sample("hostwarden_state_write_errors_total", (), float(self.state.write_errors), now))
        stats = self.state.stats
        out.append(Sample("hostwarden_state_integrity_errors_total", (), float(stats.integrity_errors), now))
        out.append(Sample("hostwarden_incident_transitions_dropped_total", (), float(stats.dropped_transitions), now))
        for name in sorted(backends | set(stats.unexpected)):
            out.append(Sample("hostwarden_ticket_unexpected_errors_total", labels_of(backend=name),
                              float(stats.unexpected.get(name, 0)), now))
        out.append(Sample("hostwarden_state_degraded", (), 1.0 if self.state.degraded else 0.0, now))
        return out

    def preview(self, alert: Alert, now: float) -> tuple[str | None, Incident]:
        """The backend and the incident snapshot a firing `alert` would open, without recording anything."""
        alert = self._with_runbook(alert)
        labels = self._label_map(alert)
        backend = self.config.route_for(labels)
        priority = self.policy.priority(alert.severity, self._category(alert), labels)
        ack_due, resolve_due = self.policy.deadlines(priority, now)
        diagnosis = self._run_diagnosis(alert, now)
        inc = Incident(fingerprint=alert.fingerprint, alert=alert, title=self._title(alert), priority=priority,
                       category=self._category(alert), host=self._host(alert), labels=self._incident_labels(alert),
                       opened_at=now, diagnosis=diagnosis,
                       timeline=(TimelineEntry(now, "opened", self._opened_text(alert)),),
                       extra_fields={"ack_due": ack_due, "resolve_due": resolve_due})
        return backend, inc

    # -- derived values ------------------------------------------------------------------------------------
    def _label_map(self, alert: Alert) -> dict[str, str]:
        return {**self.external_labels, **dict(alert.labels)}

    def _host(self, alert: Alert) -> str:
        return alert.label("host") or self.external_labels.get("host") or self.hostname

    def _category(self, alert: Alert) -> str:
        return alert.category or alert.label("category")

    def _incident_labels(self, alert: Alert) -> Labels:
        merged = {**self.external_labels, **dict(alert.identity)}
        return labels_of(merged)

    def _title(self, alert: Alert) -> str:
        """One line, no control characters (label values are untrusted), at most 250 characters."""
        summary = alert.annotation("summary")
        if not summary.strip():
            extra = [f"{k}={v}" for k, v in alert.identity if k not in ("host", "alertname", "severity")]
            summary = f"{alert.rule} on {self._host(alert)}" + (f" ({', '.join(extra)})" if extra else "")
        return " ".join(_CONTROL.sub(" ", summary).split())[:250]

    def _value_text(self, alert: Alert) -> str:
        text = f"value {alert.value:.6g}"
        return text + (f", threshold {alert.threshold}" if alert.threshold else "")

    def _opened_text(self, alert: Alert) -> str:
        return f"{alert.rule} {alert.severity} on {self._host(alert)} ({self._value_text(alert)})"

    def diagnose_batch(self, transitions: list[AlertTransition], now: float) -> dict[str, str]:
        """The diagnoses `handle` would compute for `transitions` (time-bounded; call it without locks)."""
        return self._diagnose_new(list(transitions), now)

    def foreign_host(self, alert: Alert) -> str:
        """Why `alert` is not about this host ('' when it is): it came through the Alertmanager receiver,
        or its `host` label names another host. Such alerts get no local diagnosis."""
        if alert.source.startswith("alertmanager "):
            return "it arrived through the Alertmanager receiver (it is about another host's data)"
        host = alert.label("host")
        mine = {self.hostname, self.external_labels.get("host", "")} - {""}
        if host and host not in mine:
            return f"it is about host {host!r}, not this host ({self.hostname})"
        return ""

    def _run_diagnosis(self, alert: Alert, now: float) -> str:
        if self.diagnose is None:
            return ""
        why = self.foreign_host(alert)
        if why:
            return f"No local diagnosis: {why}; inspecting this machine would describe the wrong host."
        try:
            return self.diagnose(alert, now)
        except Exception as e:  # diagnosis is best effort: never lose the incident over it
            log.warning("diagnosis for %s failed: %s: %s", alert.fingerprint, type(e).__name__, e)
            return f"(diagnosis failed: {type(e).__name__}: {e})"

    def _diagnose_new(self, batch: list[AlertTransition], now: float) -> dict[str, str]:
        """Diagnose alerts about to open (or reopen) a ticket, outside the transaction; storm members skipped."""
        firing = [t for t in batch if t.kind is TransitionKind.FIRING]
        if not firing or self.diagnose is None:
            return {}
        open_fps = {r["fingerprint"] for r in self.state.query("SELECT fingerprint FROM incidents WHERE status = "
                                                               "'open'")}
        recent = self.state.query("SELECT COUNT(*) AS n FROM incidents WHERE is_storm = 0 AND opened_at > ?",
                                  (now - float(self.config.storm_window),))[0]["n"]
        budget = max(0, self.config.storm_threshold - int(recent))
        out: dict[str, str] = {}
        for t in firing:
            fp = t.alert.fingerprint
            if fp in open_fps or fp in out:
                continue
            if budget <= 0:
                break
            budget -= 1
            out[fp] = self._run_diagnosis(self._with_runbook(t.alert), now)
        return out

    def _with_runbook(self, alert: Alert) -> Alert:
        """`alert` with its relative runbook_url resolved against `runbook_base_url` (agent/incidents/runbooks)."""
        from hostwarden.agent.incidents.runbooks import resolve_alert

        return resolve_alert(alert, self.runbook_base_url)

    # -- applying one transition ------------------------------------------------------------------------------
    def _latest(self, c: sqlite3.Connection, fp: str) -> dict[str, Any] | None:
        row = c.execute("SELECT * FROM incidents WHERE fingerprint = ? ORDER BY id DESC LIMIT 1", (fp,)).fetchone()
        return dict(row) if row else None

    def _apply(self, c: sqlite3.Connection, t: AlertTransition, now: float, diagnoses: dict[str, str]) -> None:
        if self.runbook_base_url:  # the incident keeps its runbook link absolute
            from hostwarden.agent.incidents.runbooks import resolve_transition

            t = resolve_transition(t, self.runbook_base_url)
        inc = self._latest(c, t.alert.fingerprint)
        is_open = inc is not None and inc["status"] == "open"
        kind = t.kind
        if kind is TransitionKind.FIRING or (not is_open and kind in (TransitionKind.ESCALATED,
                                                                        TransitionKind.DEESCALATED)):
            if is_open:
                assert inc is not None
                if inc["severity"] != t.alert.severity:
                    self._severity_change(c, inc, t, now)
                return
            self._fire(c, inc, t, now, diagnoses.get(t.alert.fingerprint))
            return
        if not is_open:
            return  # resolved/flapping for an incident we do not have open: nothing to do (or a replay)
        assert inc is not None
        if kind in (TransitionKind.ESCALATED, TransitionKind.DEESCALATED):
            if inc["severity"] != t.alert.severity:
                self._severity_change(c, inc, t, now)
        elif kind is TransitionKind.RESOLVED:
            self._resolve(c, inc, t, now)
        elif kind is TransitionKind.FLAPPING_START:
            if not inc["flapping"]:
                self._set(c, inc, flapping=1, alert=json.dumps(alert_to_dict(t.alert)))
                self._note(c, inc, t.at, "flapping", f"Flapping: state changes too often; no further updates until "
                                                    f"it settles ({self._value_text(t.alert)})", now, force=True)
        elif kind is TransitionKind.FLAPPING_STOP and inc["flapping"]:
            self._set(c, inc, flapping=0, alert=json.dumps(alert_to_dict(t.alert)))
            self._note(c, inc, t.at, "flapping", f"Stopped flapping; now {t.alert.severity} "
                                                f"({self._value_text(t.alert)})", now, force=True)

    def _fire(self, c: sqlite3.Connection, prev: dict[str, Any] | None, t: AlertTransition, now: float,
              diagnosis: str | None) -> None:
        alert = t.alert
        labels = self._label_map(alert)
        backend = self.config.route_for(labels) or ""
        window = float(self.config.reopen_window)
        if (prev is not None and backend and prev["backend"] == backend and window > 0
                and prev["storm_id"] is None and prev["resolved_at"] is not None
                and t.at - float(prev["resolved_at"]) < window):
            self._reopen(c, prev, t, now, diagnosis)
            return
        storm = self._storm_for(c, backend, alert, t.at, now) if backend else None
        priority = self.policy.priority(alert.severity, self._category(alert), labels)
        start = alert.fired_at if alert.fired_at is not None else t.at
        ack_due, resolve_due = self.policy.deadlines(priority, start)
        if diagnosis is None:
            diagnosis = "" if storm is not None else self._run_diagnosis(alert, now)
        cur = c.execute(
            "INSERT INTO incidents (fingerprint, backend, rule, title, host, category, severity, priority, status, "
            "alert, labels, diagnosis, opened_at, fired_at, ack_due, resolve_due, storm_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.fingerprint, backend, alert.rule, self._title(alert), self._host(alert), self._category(alert),
             alert.severity, priority, json.dumps(alert_to_dict(alert)),
             json.dumps([list(p) for p in self._incident_labels(alert)]), diagnosis, start, start, ack_due,
             resolve_due, storm["id"] if storm else None))
        inc = dict(c.execute("SELECT * FROM incidents WHERE id = ?", (cur.lastrowid,)).fetchone())
        extra = self.config.routes_for(labels)[1:]
        if extra:  # a route to several backends: one ticket in each (incident_tickets), one outbox queue each
            self._set(c, inc, extra_backends=json.dumps(extra))
        self._event(c, inc["id"], t.at, "opened", self._opened_text(alert))
        if storm is not None:
            text = f"+ {self._title(alert)} [{alert.severity}] ({alert.fingerprint})"
            if storm["id"] in self._new_storms:
                self._event(c, storm["id"], t.at, "storm", text)  # listed in the storm ticket when it opens
            else:
                self._note(c, storm, t.at, "storm", text, now)
            self._log(logging.INFO, "incident %s (%s) joined storm incident %d", alert.fingerprint, alert.rule,
                      storm["id"])
            return
        if backend:
            self._enqueue(c, inc, "open", "", now)
        self._log(logging.INFO, "incident %s opened: %s [%s, %s]%s", alert.fingerprint, inc["title"], alert.severity,
                  priority, f" → {backend}" if backend else " (no ticket backend)")

    def _reopen(self, c: sqlite3.Connection, inc: dict[str, Any], t: AlertTransition, now: float,
                diagnosis: str | None) -> None:
        alert = t.alert
        labels = self._label_map(alert)
        priority = self.policy.priority(alert.severity, self._category(alert), labels)
        start = alert.fired_at if alert.fired_at is not None else t.at
        ack_due, resolve_due = self.policy.deadlines(priority, start)
        gap = t.at - float(inc["resolved_at"])
        count = int(inc["reopen_count"]) + 1
        self._set(c, inc, status="open", reopen_count=count, fired_at=start, resolved_at=None, acknowledged_at=None,
                  severity=alert.severity, priority=priority, alert=json.dumps(alert_to_dict(alert)),
                  title=self._title(alert), ack_due=ack_due, resolve_due=resolve_due, ack_breached=0,
                  resolve_breached=0, muted=0, flapping=0, remote_state="", remote_changed_at=None,
                  pending_events="[]", last_update_at=None,
                  **({"diagnosis": diagnosis} if diagnosis else {}))
        text = (f"Firing again {human_duration(gap)} after it resolved ({self._value_text(alert)}); "
                f"reopened (#{count})")
        self._event(c, inc["id"], t.at, "reopened", text)
        if inc["backend"]:
            self._enqueue(c, inc, "reopen", text, now)
        self._log(logging.INFO, "incident %s reopened (%d): %s", inc["fingerprint"], count, inc["title"])

    def _severity_change(self, c: sqlite3.Connection, inc: dict[str, Any], t: AlertTransition, now: float) -> None:
        alert = t.alert
        old = inc["severity"]
        priority = self.policy.priority(alert.severity, self._category(alert), self._label_map(alert))
        up = SEVERITY_ORDER.get(alert.severity, 0) > SEVERITY_ORDER.get(old, 0)
        kind = "escalated" if up else "deescalated"
        fields: dict[str, Any] = {}
        # the new priority's targets, counted from when the incident fired; none while a silence holds the ticket
        # back (its SLA clock starts when the silence ends, from the priority it has then)
        if priority != inc["priority"] and inc["ack_due"] is not None:
            ack_due, resolve_due = self.policy.deadlines(priority, float(inc["fired_at"]))
            fields = {"ack_due": ack_due, "resolve_due": resolve_due}
        self._set(c, inc, severity=alert.severity, priority=priority, alert=json.dumps(alert_to_dict(alert)),
                  title=self._title(alert), **fields)
        text = f"{'Escalated' if up else 'De-escalated'} {old} → {alert.severity}, priority {priority} " \
               f"({self._value_text(alert)})"
        if inc["flapping"] or inc["storm_id"] is not None:
            self._event(c, inc["id"], t.at, kind, text)  # recorded, not sent: flapping, or part of a storm ticket
            return
        self._note(c, inc, t.at, kind, text, now)
        self._log(logging.INFO, "incident %s %s: %s → %s", inc["fingerprint"], kind, old, alert.severity)

    def _resolve(self, c: sqlite3.Connection, inc: dict[str, Any], t: AlertTransition, now: float,
                 reason: str = "") -> None:
        alert = t.alert
        end = alert.resolved_at if alert.resolved_at is not None else t.at
        duration = max(0.0, end - float(inc["fired_at"]))
        waiting = _loads(inc["pending_events"], [])
        was_muted = bool(inc["muted"])
        text = reason or f"Resolved after {human_duration(duration)} ({self._value_text(alert)})"
        if reason:
            text = f"Resolved after {human_duration(duration)}: {reason}"
        if waiting:
            text += "\nSince the last update:\n" + "\n".join(f"- {e['text']}" for e in waiting)
        self._set(c, inc, status="resolved", resolved_at=end, alert=json.dumps(alert_to_dict(alert)),
                  pending_events="[]", last_update_at=now, muted=0, flapping=0)
        cause, remediated = ("", False) if inc["is_storm"] else resolution_cause(c, inc)
        if remediated:  # said on the ticket where remediation took part; always recorded for the report
            text += f"\nCause: {cause}"
        self._event(c, inc["id"], end, "resolved", text)
        if cause:
            self._event(c, inc["id"], end, "resolution", cause)
        self._log(logging.INFO, "incident %s resolved after %s: %s", inc["fingerprint"], human_duration(duration),
                  inc["title"])
        if was_muted or inc["storm_id"] is not None or not inc["backend"]:
            return  # closed by a person (nothing more until it fires anew), or part of a storm ticket
        cfg = self.config.backend(inc["backend"])
        on_resolve = cfg.on_resolve if cfg is not None else "resolve"
        self._enqueue(c, inc, "resolve" if on_resolve == "resolve" else "update", text, now)

    # -- remediation (agent.incidents.remediator) -------------------------------------------------------------
    def record_remediation(self, fingerprint: str, at: float, kind: str, text: str, now: float) -> bool:
        """An attempt, result or refusal on the fingerprint's latest incident (and its ticket while open)."""
        try:
            with self.state.tx() as c:
                inc = self._latest(c, fingerprint)
                if inc is None:
                    return False
                if inc["status"] == "open":
                    self._note(c, inc, at, kind, text, now, urgent=True)
                else:  # an action's result arriving after the alert cleared still belongs on the ticket
                    self._event(c, inc["id"], at, kind, text)
                    if inc["backend"] and inc["storm_id"] is None and not inc["muted"]:
                        self._enqueue(c, inc, "update", text, now)
        except sqlite3.Error:
            return False
        return True

    def raise_priority(self, fingerprint: str, at: float, text: str, now: float) -> tuple[str, str] | None:
        """Remediation exhausted: the open incident's priority one step up (P3 → P2; P1 stays), noted."""
        try:
            with self.state.tx() as c:
                inc = self._latest(c, fingerprint)
                if inc is None or inc["status"] != "open":
                    return None
                old = inc["priority"]
                new = PRIORITIES[max(0, PRIORITIES.index(old) - 1)] if old in PRIORITIES else old
                self._set(c, inc, priority=new)
                self._note(c, inc, at, "remediation_exhausted", f"{text}; priority {old} → {new}", now, urgent=True)
        except sqlite3.Error:
            return None
        log.warning("incident %s: remediation exhausted; priority %s → %s", fingerprint, old, new)
        return old, new

    def remediation_history(self, since: float) -> tuple[dict[str, tuple[float, ...]], dict[str, float]]:
        """For a restarted agent: when remediation actions started since `since` (per fingerprint), and the
        open incidents whose current occurrence is already exhausted (fingerprint → the occurrence's start)."""
        attempts: dict[str, list[float]] = {}
        for r in self.state.query("SELECT i.fingerprint AS fp, e.at AS at FROM incident_events e JOIN incidents i "
                                  "ON i.id = e.incident_id WHERE e.kind = 'remediation' AND e.at >= ? ORDER BY e.at",
                                  (since,)):
            attempts.setdefault(r["fp"], []).append(float(r["at"]))
        exhausted = {r["fp"]: float(r["fired_at"]) for r in self.state.query(
            "SELECT i.fingerprint AS fp, i.fired_at AS fired_at FROM incidents i WHERE i.status = 'open' AND EXISTS "
            "(SELECT 1 FROM incident_events e WHERE e.incident_id = i.id AND e.kind = 'remediation_exhausted' AND "
            "e.id > (SELECT COALESCE(MAX(o.id), 0) FROM incident_events o WHERE o.incident_id = i.id AND o.kind IN "
            "('opened', 'reopened')))")}
        return {fp: tuple(v) for fp, v in attempts.items()}, exhausted

    # -- storms ---------------------------------------------------------------------------------------------------
    def _storm_for(self, c: sqlite3.Connection, backend: str, alert: Alert, at: float,
                   now: float) -> dict[str, Any] | None:
        """The storm incident a new incident joins, or None when it opens its own ticket."""
        window = float(self.config.storm_window)
        recent = c.execute("SELECT COUNT(*) AS n FROM incidents WHERE backend = ? AND is_storm = 0 AND opened_at > ?",
                           (backend, at - window)).fetchone()["n"]
        if int(recent) < self.config.storm_threshold:
            return None
        storm_fp = fingerprint(STORM_RULE, labels_of(backend=backend, host=self.hostname))
        storm = self._latest(c, storm_fp)
        if storm is not None and storm["status"] == "open":
            return storm
        identity = labels_of(backend=backend, host=self.hostname)
        storm_alert = Alert(rule=STORM_RULE, group="hostwarden", identity=identity,
                            labels=labels_of(alertname=STORM_RULE, backend=backend, host=self.hostname,
                                             severity=alert.severity),
                            state=AlertState.FIRING, severity=alert.severity, value=float(int(recent) + 1),
                            active_since=at, fired_at=at, category=self._category(alert),
                            threshold=f"> {self.config.storm_threshold} incidents in {format_duration(window)}",
                            annotations=(("summary", f"Alert storm on {self.hostname}: more than "
                                                     f"{self.config.storm_threshold} incidents within "
                                                     f"{format_duration(window)}"),))
        t = AlertTransition(storm_alert, TransitionKind.FIRING, at)
        self._fire_storm(c, storm, t, backend, now)
        storm = self._latest(c, storm_fp)
        assert storm is not None
        return storm

    def _fire_storm(self, c: sqlite3.Connection, prev: dict[str, Any] | None, t: AlertTransition, backend: str,
                    now: float) -> None:
        window = float(self.config.reopen_window)
        if prev is not None and prev["backend"] == backend and window > 0 and prev["resolved_at"] is not None \
                and t.at - float(prev["resolved_at"]) < window:
            self._reopen(c, prev, t, now, None)
            return
        alert = t.alert
        priority = self.policy.priority(alert.severity, alert.category, dict(alert.labels))
        ack_due, resolve_due = self.policy.deadlines(priority, t.at)
        cur = c.execute(
            "INSERT INTO incidents (fingerprint, backend, rule, title, host, category, severity, priority, status, "
            "alert, labels, opened_at, fired_at, ack_due, resolve_due, is_storm) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, 1)",
            (alert.fingerprint, backend, alert.rule, self._title(alert), self.hostname, alert.category,
             alert.severity, priority, json.dumps(alert_to_dict(alert)),
             json.dumps([list(p) for p in self._incident_labels(alert)]), t.at, t.at, ack_due, resolve_due))
        inc = dict(c.execute("SELECT * FROM incidents WHERE id = ?", (cur.lastrowid,)).fetchone())
        self._event(c, inc["id"], t.at, "opened", alert.annotation("summary"))
        self._new_storms[inc["id"]] = now  # its open is queued at the end of the batch (handle)
        self._log(logging.WARNING, "alert storm on backend %s: more than %d incidents within %s; further incidents "
                  "are grouped in storm incident %d", backend, self.config.storm_threshold,
                  format_duration(float(self.config.storm_window)), inc["id"])

    def _maintain_storms(self, c: sqlite3.Connection, now: float) -> None:
        storms = c.execute("SELECT * FROM incidents WHERE is_storm = 1 AND status = 'open'").fetchall()
        for row in storms:
            storm = dict(row)
            counts = c.execute("SELECT SUM(status = 'open') AS open, COUNT(*) AS total FROM incidents "
                               "WHERE storm_id = ?", (storm["id"],)).fetchone()
            if int(counts["open"] or 0) > 0:
                continue
            alert = alert_from_dict(_loads(storm["alert"], {}))
            t = AlertTransition(alert, TransitionKind.RESOLVED, now)
            self._resolve(c, storm, t, now, reason=f"all {int(counts['total'] or 0)} grouped incidents resolved")

    # -- notes, coalescing, SLA -------------------------------------------------------------------------------------
    def _note(self, c: sqlite3.Connection, inc: dict[str, Any], at: float, kind: str, text: str, now: float,
              *, force: bool = False, urgent: bool = False) -> None:
        """Record an event; queue it for the ticket unless muted, flapping (except the flapping notes) or in a storm.
        Sent at once when the last update is `update_interval` old, else coalesced by tick(). `urgent` (what
        remediation did, bounded by its plan's `max`) is sent at once with whatever waited before it."""
        self._event(c, inc["id"], at, kind, text)
        if inc["muted"] or inc["storm_id"] is not None or not inc["backend"]:
            return
        if inc["flapping"] and not force:
            return
        waiting = _loads(inc["pending_events"], [])
        waiting.append({"at": at, "kind": kind, "text": text})
        self._set(c, inc, pending_events=json.dumps(waiting))
        last = inc["last_update_at"]
        if urgent or last is None or now - float(last) >= float(self.config.update_interval):
            self._flush(c, inc, now)

    def _flush(self, c: sqlite3.Connection, inc: dict[str, Any], now: float) -> None:
        waiting = _loads(inc["pending_events"], [])
        if not waiting:
            return
        text = waiting[0]["text"] if len(waiting) == 1 else "\n".join(f"- {e['text']}" for e in waiting)
        self._set(c, inc, pending_events="[]", last_update_at=now)
        self._enqueue(c, inc, "update", text, now)

    def _flush_due(self, c: sqlite3.Connection, now: float) -> None:
        rows = c.execute("SELECT * FROM incidents WHERE status = 'open' AND pending_events != '[]' AND muted = 0 "
                         "AND (last_update_at IS NULL OR last_update_at <= ?)",
                         (now - float(self.config.update_interval),)).fetchall()
        for row in rows:
            self._flush(c, dict(row), now)

    def _check_sla(self, c: sqlite3.Connection, now: float) -> None:
        rows = c.execute("SELECT * FROM incidents WHERE status = 'open' AND storm_id IS NULL AND "
                         "((ack_breached = 0 AND acknowledged_at IS NULL AND ack_due < ?) OR "
                         "(resolve_breached = 0 AND resolve_due < ?))", (now, now)).fetchall()
        for row in rows:
            inc = dict(row)
            target = self.policy.targets(inc["priority"])
            if not inc["ack_breached"] and inc["acknowledged_at"] is None and inc["ack_due"] < now:
                self._set(c, inc, ack_breached=1)
                self._event(c, inc["id"], float(inc["ack_due"]), "sla_breach",
                            f"Not acknowledged within {human_duration(target.acknowledge)} ({inc['priority']})")
                self._log(logging.WARNING, "incident %s: %s acknowledge target (%s) missed", inc["fingerprint"],
                          inc["priority"], human_duration(target.acknowledge))
            if not inc["resolve_breached"] and inc["resolve_due"] < now:
                self._set(c, inc, resolve_breached=1)
                self._event(c, inc["id"], float(inc["resolve_due"]), "sla_breach",
                            f"Not resolved within {human_duration(target.resolve)} ({inc['priority']})")
                self._log(logging.WARNING, "incident %s: %s resolve target (%s) missed", inc["fingerprint"],
                          inc["priority"], human_duration(target.resolve))

    # -- rows, events, outbox ---------------------------------------------------------------------------------------
    @staticmethod
    def _set(c: sqlite3.Connection, inc: dict[str, Any], **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        c.execute(f"UPDATE incidents SET {sets} WHERE id = ?", (*fields.values(), inc["id"]))
        inc.update(fields)

    @staticmethod
    def _event(c: sqlite3.Connection, incident_id: int, at: float, kind: str, text: str) -> None:
        c.execute("INSERT INTO incident_events (incident_id, at, kind, text) VALUES (?, ?, ?, ?)",
                  (incident_id, at, kind, text))

    def _enqueue(self, c: sqlite3.Connection, inc: dict[str, Any], op: str, event: str, now: float) -> None:
        if self.suppress.hold(c, inc, op, event, now):
            return  # silenced or in a maintenance window: held, released when that ends (suppress.py)
        self._enqueue_now(c, inc, op, event, now)

    def _enqueue_now(self, c: sqlite3.Connection, inc: dict[str, Any], op: str, event: str, now: float) -> None:
        snap = snapshot(c, inc)
        payload = json.dumps({"incident": incident_to_dict(snap), "event": event}, default=str)
        for backend in [inc["backend"], *_loads(inc.get("extra_backends"), [])]:
            bop = op
            if op == "resolve" and backend != inc["backend"]:
                cfg = self.config.backend(backend)
                bop = "update" if cfg is not None and cfg.on_resolve != "resolve" else op
            c.execute("INSERT INTO outbox (incident_id, backend, fingerprint, op, payload, idempotency_key, "
                      "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (inc["id"], backend, inc["fingerprint"], bop, payload, f"hw-{uuid.uuid4().hex}", now))


def snapshot(c: sqlite3.Connection, inc: dict[str, Any]) -> Incident:
    """The Incident a backend sees, built from an incidents row (timeline: the last MAX_TIMELINE events)."""
    events = c.execute("SELECT at, kind, text FROM incident_events WHERE incident_id = ? ORDER BY id DESC LIMIT ?",
                       (inc["id"], MAX_TIMELINE)).fetchall()
    storm_of: tuple[str, ...] = ()
    diagnosis = inc["diagnosis"]
    if inc["is_storm"]:
        members = c.execute("SELECT fingerprint, title, status, severity FROM incidents WHERE storm_id = ? "
                            "ORDER BY id", (inc["id"],)).fetchall()
        storm_of = tuple(m["fingerprint"] for m in members)
        listed = [f"{m['fingerprint']}  {m['status']:<8}  {m['severity']:<8}  {m['title']}"
                  for m in members[:MAX_STORM_LISTED]]
        if len(members) > MAX_STORM_LISTED:
            listed.append(f"… and {len(members) - MAX_STORM_LISTED} more")
        diagnosis = f"{len(members)} incidents grouped in this storm ticket:\n" + "\n".join(listed)
    ref = TicketRef(inc["backend"], inc["ticket_id"], inc["ticket_url"] or "") if inc["ticket_id"] else None
    title = inc["title"]
    if inc["is_storm"]:
        title = f"Alert storm on {inc['host']}: {len(storm_of)} grouped incidents"
    return Incident(
        fingerprint=inc["fingerprint"], alert=alert_from_dict(_loads(inc["alert"], {})), title=title,
        priority=inc["priority"], category=inc["category"], host=inc["host"],
        labels=tuple((str(k), str(v)) for k, v in _loads(inc["labels"], [])), opened_at=float(inc["opened_at"]),
        diagnosis=diagnosis, ticket_ref=ref, acknowledged_at=inc["acknowledged_at"],
        resolved_at=inc["resolved_at"], reopen_count=int(inc["reopen_count"]),
        timeline=tuple(TimelineEntry(float(e["at"]), e["kind"], e["text"]) for e in reversed(events)),
        storm_of=storm_of,
        extra_fields={"ack_due": inc["ack_due"], "resolve_due": inc["resolve_due"], "incident_id": inc["id"]},
    )


def resolution_cause(c: sqlite3.Connection, inc: dict[str, Any]) -> tuple[str, bool]:
    """Why the current occurrence resolved: "resolved after remediation" (an action ran and remediation was
    not exhausted), "resolved by a person" (acknowledged, or the ticket closed by a person), else
    "resolved by itself"; and whether remediation took part (anything recorded, dry runs included)."""
    start = c.execute("SELECT MAX(id) AS id FROM incident_events WHERE incident_id = ? AND kind IN "
                      "('opened', 'reopened')", (inc["id"],)).fetchone()["id"] or 0
    kinds = {r["kind"] for r in c.execute("SELECT DISTINCT kind FROM incident_events WHERE incident_id = ? AND "
                                          "id > ?", (inc["id"], start))}
    remediated = any(k.startswith("remediation") for k in kinds)
    if "remediation" in kinds and "remediation_exhausted" not in kinds:
        return "resolved after remediation", remediated
    if inc["muted"] or kinds & {"acknowledged", "closed_by_person"}:
        return "resolved by a person", remediated
    return "resolved by itself", remediated


def apply_remote_statuses(state: StateDB, statuses: list[RemoteStatus], now: float) -> int:
    """Two-way sync: what people did in the ticket system. Returns how many incidents changed.

    - acknowledged (or assigned) → the incident is acknowledged (its MTTA), once per occurrence;
    - resolved/closed/missing while the incident is open → muted: no more notes, no reopen, no resolve
      until the alert resolves and fires anew. A status older than the current occurrence, or seen while
      our own operations are still queued for the incident, is the echo of our own doing and ignored.

    A route with several backends has a ticket in each: what a person does in any of them counts (the first
    acknowledgement is the incident's; closing one mutes the incident's updates in all of them).
    """
    changed = 0
    with state.tx() as c:
        for st in statuses:
            primary = True
            rows = c.execute("SELECT * FROM incidents WHERE backend = ? AND ticket_id = ? ORDER BY id DESC LIMIT 1",
                             (st.ref.backend, st.ref.id)).fetchall()
            if not rows:  # a ticket in another backend of the incident's route
                primary = False
                rows = c.execute("SELECT i.*, t.remote_state AS t_state, t.remote_changed_at AS t_changed_at "
                                 "FROM incident_tickets t JOIN incidents i ON i.id = t.incident_id "
                                 "WHERE t.backend = ? AND t.ticket_id = ? ORDER BY i.id DESC LIMIT 1",
                                 (st.ref.backend, st.ref.id)).fetchall()
                if not rows:
                    continue
            inc = dict(rows[0])
            last = (inc["remote_state"], inc["remote_changed_at"]) if primary else (inc["t_state"],
                                                                                     inc["t_changed_at"])
            at = st.changed_at if st.changed_at is not None else now
            if last == (st.state, st.changed_at):
                continue
            closing = st.state in ("resolved", "closed", "missing")
            if closing and inc["status"] == "open" and c.execute(
                    "SELECT 1 FROM outbox WHERE incident_id = ? AND backend = ? AND status = 'pending' LIMIT 1",
                    (inc["id"], st.ref.backend)).fetchone():
                continue  # our own operations are still on their way: judge again once they are delivered
            if primary:
                c.execute("UPDATE incidents SET remote_state = ?, remote_changed_at = ? WHERE id = ?",
                          (st.state, st.changed_at, inc["id"]))
            else:
                c.execute("UPDATE incident_tickets SET remote_state = ?, remote_changed_at = ? "
                          "WHERE incident_id = ? AND backend = ?", (st.state, st.changed_at, inc["id"], st.ref.backend))
            if inc["status"] != "open" or at < float(inc["fired_at"]):
                continue  # about an earlier occurrence, or the echo of our own resolve
            if st.state == "acknowledged" and inc["acknowledged_at"] is None:
                c.execute("UPDATE incidents SET acknowledged_at = ? WHERE id = ?", (at, inc["id"]))
                c.execute("INSERT INTO incident_events (incident_id, at, kind, text) VALUES (?, ?, 'acknowledged', ?)",
                          (inc["id"], at, f"Acknowledged in {st.ref.backend}" + (f" by {st.assignee}"
                                                                                  if st.assignee else "")))
                log.info("incident %s acknowledged in %s (ticket %s)", inc["fingerprint"], st.ref.backend, st.ref.id)
                changed += 1
            elif closing and not inc["muted"]:
                c.execute("UPDATE incidents SET muted = 1, pending_events = '[]' WHERE id = ?", (inc["id"],))
                c.execute("INSERT INTO incident_events (incident_id, at, kind, text) "
                          "VALUES (?, ?, 'closed_by_person', ?)",
                          (inc["id"], at, f"Ticket {st.state} in {st.ref.backend} while the alert still fires; no "
                                          f"further updates until it resolves and fires again"))
                log.info("incident %s: ticket %s was %s by a person while firing; muted until it fires anew",
                         inc["fingerprint"], st.ref.id, st.state)
                changed += 1
    return changed
