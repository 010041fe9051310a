"""Silences in the state database, and the incident manager's hold/release step for them and maintenance.

The CLI (`hostwarden silence …`) and the agent are separate processes sharing the SQLite file: the CLI
writes `silences` rows, the agent reads the active ones whenever it decides on a ticket operation and at
every incident tick (one indexed query), so a silence applies at the next evaluation, without a restart,
and survives restarts and `kill -9` like every other row.

While an incident's alert is covered by a silence or a maintenance window (`silence.suppressed_by`), its
ticket operations are *held* (`incidents.held`, in order) instead of queued in the outbox, and
`incidents.silenced_by` names what holds them. When the cover ends (`Suppressor.tick`), the held
operations are reduced to what the ticket needs:
- the ticket was never opened (the alert fired inside the window): still firing → it opens now, once,
  with its SLA clock starting now; resolved meanwhile → nothing is sent, the incident stays in the
  history (and the report) with its `silenced` event;
- the ticket existed (the alert fired before the window): its updates were paused (a note said so); the
  notes that waited go out as one update, or the resolve when it resolved meanwhile.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from hostwarden.agent.core.priority import PriorityPolicy
from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.agent.core.units import human_duration
from hostwarden.agent.incidents.silence import (
    MaintenanceWindow,
    Matcher,
    Silence,
    Suppression,
    matches_everything,
    suppressed_by,
)
from hostwarden.agent.incidents.state import StateDB

log = logging.getLogger(__name__)

MAX_HELD = 200  # held operations per incident (older notes are dropped: the timeline keeps them)
MEMO_MAX = 20_000  # remembered label sets → decision, while the silences in effect stay the same

SILENCE_METRICS = metric_defs(
    MetricDef("hostwarden_alerts_silenced", "gauge",
              "Firing alerts covered by a silence or a maintenance window (evaluated and in ALERTS; no ticket "
              "operations)."),
    MetricDef("hostwarden_silences_active", "gauge", "Silences in effect now (`hostwarden silence list`)."),
)


# -- silences in the state database ---------------------------------------------------------------------------

def _row_to_silence(r: Mapping[str, Any]) -> Silence:
    return Silence(id=r["id"], matchers=tuple(Matcher(str(n), str(o), str(v)) for n, o, v in json.loads(r["matchers"])),
                   starts_at=float(r["starts_at"]), ends_at=float(r["ends_at"]), created_by=r["created_by"],
                   comment=r["comment"], created_at=float(r["created_at"]))


def add_silence(state: StateDB, matchers: list[Matcher], *, starts_at: float, ends_at: float, created_by: str,
                comment: str, now: float) -> Silence:
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if matches_everything(matchers):
        raise ValueError("these matchers match every alert (each matches the empty label value); "
                         "add one that names something, e.g. --match alertname=NAME")
    if ends_at <= starts_at:
        raise ValueError("the silence must end after it starts")
    sid = secrets.token_hex(4)
    with state.tx() as c:
        c.execute("INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (sid, json.dumps([[m.name, m.op, m.value] for m in matchers]), starts_at, ends_at, created_by,
                   comment, now))
    return Silence(sid, tuple(matchers), starts_at, ends_at, created_by, comment, now)


def list_silences(state: StateDB, *, now: float, include_expired: bool = False) -> list[Silence]:
    sql = "SELECT * FROM silences" + ("" if include_expired else " WHERE ends_at > ?") + " ORDER BY starts_at, id"
    return [_row_to_silence(r) for r in state.query(sql, () if include_expired else (now,))]


def silences_between(state: StateDB, since: float, until: float) -> list[Silence]:
    return [_row_to_silence(r) for r in state.query(
        "SELECT * FROM silences WHERE ends_at > ? AND starts_at < ? ORDER BY starts_at, id", (since, until))]


def expire_silence(state: StateDB, ident: str, now: float) -> Silence | None:
    """End a silence now (by id, or an unambiguous id prefix); None when there is no such unexpired silence.
    Raises ValueError for an ambiguous prefix."""
    with state.tx() as c:
        rows = c.execute("SELECT * FROM silences WHERE (id = ? OR id LIKE ? || '%') AND ends_at > ?",
                         (ident, ident, now)).fetchall()
        exact = [r for r in rows if r["id"] == ident]
        rows = exact or rows
        if len(rows) > 1:
            raise ValueError(f"silence id {ident!r} is ambiguous: {', '.join(r['id'] for r in rows)}")
        if not rows:
            return None
        r = rows[0]
        c.execute("UPDATE silences SET ends_at = ?, expired_at = ? WHERE id = ?",
                  (max(now, float(r["starts_at"])), now, r["id"]))
    return _row_to_silence({**dict(r), "ends_at": max(now, float(r["starts_at"]))})


def current_silences(c: sqlite3.Connection, now: float) -> list[Silence]:
    """The silences not yet over (active or pending): what the agent reads at each decision."""
    return [_row_to_silence(r) for r in c.execute("SELECT * FROM silences WHERE ends_at > ? ORDER BY starts_at, id",
                                                   (now,)).fetchall()]


# -- the incident manager's hold / release step ---------------------------------------------------------------

Enqueue = Callable[[sqlite3.Connection, dict[str, Any], str, str, float], None]
Event = Callable[[sqlite3.Connection, int, float, str, str], None]
SetFields = Callable[..., None]


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def describe(sup: Suppression) -> str:
    text = sup.label
    if sup.comment:
        text += f" ({' '.join(sup.comment.split())[:200]})"
    return text


class Suppressor:
    """Called by the IncidentManager: `hold()` before an operation is queued, `tick()` at each incident tick."""

    def __init__(self, windows: tuple[MaintenanceWindow, ...], *, external_labels: Mapping[str, str],
                 policy: PriorityPolicy, enqueue: Enqueue, event: Event, set_fields: SetFields) -> None:
        self.windows = windows
        self.external_labels = dict(external_labels)
        self.policy = policy
        self.enqueue = enqueue
        self.event = event
        self.set_fields = set_fields
        self._cache: tuple[int, float, list[Silence], list[MaintenanceWindow]] | None = None
        self._memo_key: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._memo: dict[tuple[tuple[str, str], ...], Suppression | None] = {}
        self._labels: dict[tuple[int, str, Any], dict[str, str]] = {}

    def _active(self, c: sqlite3.Connection, now: float) -> tuple[list[Silence], list[MaintenanceWindow]]:
        """The silences and windows in effect at `now` (one query per connection and instant)."""
        if self._cache is None or self._cache[:2] != (id(c), now):
            sil = [s for s in current_silences(c, now) if s.active(now)]
            self._cache = (id(c), now, sil, [w for w in self.windows if w.active(now)])
        return self._cache[2], self._cache[3]

    def labels(self, inc: Mapping[str, Any]) -> dict[str, str]:
        """The incident's alert labels with the external ones (parsed once per incident, firing and severity)."""
        key = (int(inc["id"]), str(inc["severity"]), inc["fired_at"])
        got = self._labels.get(key)
        if got is None:
            if len(self._labels) > MEMO_MAX:
                self._labels.clear()
            alert = _loads(inc["alert"], {})
            got = self._labels[key] = {**self.external_labels,
                                       **{str(k): str(v) for k, v in alert.get("labels", ())}}
        return got

    def covering(self, c: sqlite3.Connection, labels: Mapping[str, str], now: float) -> Suppression | None:
        """Memoised per label set while the same silences and windows are in effect (each tick re-checks every
        open incident: with many silences the regex matching would dominate)."""
        sil, wins = self._active(c, now)
        key = (tuple(s.id for s in sil), tuple(w.name for w in wins))
        if key != self._memo_key or len(self._memo) > MEMO_MAX:
            self._memo_key, self._memo = key, {}
        lk = tuple(sorted(labels.items()))
        if lk not in self._memo:
            self._memo[lk] = suppressed_by(labels, sil, wins, now)
        return self._memo[lk]

    def any_active(self, c: sqlite3.Connection, now: float) -> bool:
        sil, wins = self._active(c, now)
        return bool(sil or wins)

    def samples(self, state: StateDB, alerts: list[Any], now: float) -> list[Sample]:
        """`hostwarden_alerts_silenced` over the rule manager's active alerts (firing ones)."""
        n = 0
        try:
            with state.lock:
                c = state.connection
                sil, wins = self._active(c, now)
                if sil or wins:
                    for a in alerts:
                        if getattr(getattr(a, "state", None), "value", "") == "firing":
                            n += self.covering(c, {**self.external_labels, **dict(a.labels)}, now) is not None
        except sqlite3.Error as e:  # the gauge is best effort; decisions read the silences in their own transaction
            log.debug("silences not readable for the gauge: %s", e)
            sil = []
        return [Sample("hostwarden_alerts_silenced", (), float(n), now),
                Sample("hostwarden_silences_active", (), float(len(sil)), now)]

    # -- hold -------------------------------------------------------------------------------------------------
    def hold(self, c: sqlite3.Connection, inc: dict[str, Any], op: str, event: str, now: float) -> bool:
        """True when the operation was held back (not to be queued now)."""
        held = _loads(inc["held"], [])
        sup = self.covering(c, self.labels(inc), now)
        if sup is None:
            if not held and not inc["silenced_by"]:
                return False
            # the cover ended before the tick noticed: this operation joins the held ones and they are released
            # together (a resolve now of a ticket that never opened sends nothing; a paused one gets one resolve)
            held.append({"op": op, "event": event, "at": now})
            self.set_fields(c, inc, held=json.dumps(held))
            self.release(c, inc, now, ended="")
            return True
        first = not held
        held.append({"op": op, "event": event, "at": now})
        if len(held) > MAX_HELD:
            keep = [h for h in held if h["op"] != "update"]
            held = keep + [h for h in held if h["op"] == "update"][-(MAX_HELD - len(keep)):]
        fields: dict[str, Any] = {"held": json.dumps(held), "silenced_by": sup.label}
        if op == "open" and first:
            fields.update(ack_due=None, resolve_due=None)  # the SLA clock starts when the ticket opens
        self.set_fields(c, inc, **fields)
        if first and op in ("open", "reopen"):
            self.event(c, inc["id"], now, "silenced",
                       f"Silenced by {describe(sup)}: no ticket while it lasts; if the alert still fires when it "
                       f"ends, the ticket is {'opened' if op == 'open' else 'reopened'} then")
            log.info("incident %s silenced by %s: ticket %s held back", inc["fingerprint"], sup.label, op)
        elif first and not inc["silenced_by"]:
            self.event(c, inc["id"], now, "silenced", f"Silenced by {describe(sup)}: ticket updates paused")
        return True

    # -- tick -------------------------------------------------------------------------------------------------
    def tick(self, c: sqlite3.Connection, now: float) -> None:
        """Release what is no longer covered; pause the tickets of open incidents a new cover applies to."""
        for row in c.execute("SELECT * FROM incidents WHERE silenced_by != '' ORDER BY id").fetchall():
            inc = dict(row)
            sup = self.covering(c, self.labels(inc), now)
            if sup is None:
                self.release(c, inc, now, ended=inc["silenced_by"])
            elif sup.label != inc["silenced_by"]:
                self.set_fields(c, inc, silenced_by=sup.label)
        if not self.any_active(c, now):
            return
        rows = c.execute("SELECT * FROM incidents WHERE status = 'open' AND silenced_by = '' AND storm_id IS NULL "
                         "ORDER BY id").fetchall()
        for row in rows:
            inc = dict(row)
            sup = self.covering(c, self.labels(inc), now)
            if sup is None:
                continue
            until = f" until {_iso(sup.until)}" if sup.until is not None else ""
            text = (f"Silenced by {describe(sup)}{until}: the alert still fires; ticket updates are paused until "
                    f"it ends")
            self.set_fields(c, inc, silenced_by=sup.label)
            if inc["backend"] and not inc["muted"]:
                self.enqueue(c, inc, "update", text, now)  # the one note that says so
            self.event(c, inc["id"], now, "silenced", text)
            log.info("incident %s: %s started while it fires; ticket updates paused", inc["fingerprint"], sup.label)

    def release(self, c: sqlite3.Connection, inc: dict[str, Any], now: float, *, ended: str) -> None:
        held = _loads(inc["held"], [])
        label = ended or inc["silenced_by"] or "the silence"
        self.set_fields(c, inc, held="[]", silenced_by="")
        state_ops = [h for h in held if h["op"] in ("open", "reopen", "resolve")]
        notes = [h["event"] for h in held if h["op"] == "update" and h["event"]]
        first = state_ops[0]["op"] if state_ops else ""
        before = {"open": "none", "resolve": "open", "reopen": "resolved"}.get(first, "")
        after = "open" if inc["status"] == "open" else "resolved"
        since = float(held[0]["at"]) if held else now
        lasted = f" after {human_duration(now - since)}" if now > since else ""
        if before == "none":
            if after == "open":
                ack_due, resolve_due = self.policy.deadlines(inc["priority"], now)
                self.set_fields(c, inc, ack_due=ack_due, resolve_due=resolve_due)
                self.event(c, inc["id"], now, "unsilenced",
                           f"{label} ended{lasted} and the alert still fires: ticket opened now")
                self.enqueue(c, inc, "open", "", now)
                log.info("incident %s: %s ended while it fires; opening its ticket", inc["fingerprint"], label)
            else:
                self.event(c, inc["id"], now, "unsilenced",
                           f"{label} ended; the alert fired and cleared while silenced: no ticket")
            return
        summary = f"{label} ended{lasted}: ticket updates resume"
        if notes:
            summary += "\nWhile silenced:\n" + "\n".join(f"- {n}" for n in notes[-50:])
        self.event(c, inc["id"], now, "unsilenced", summary.split("\n", 1)[0])
        if not inc["backend"] or inc["muted"]:
            return
        if before == "open" and after == "resolved":
            resolved = [h["event"] for h in state_ops if h["op"] == "resolve"]
            self.enqueue(c, inc, "resolve", "\n".join([*resolved[-1:], summary]), now)
        elif before == "resolved" and after == "open":
            self.enqueue(c, inc, "reopen", summary, now)
        elif before == "" or before == after:
            self.enqueue(c, inc, "update", summary, now)


def _iso(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
