"""`hostwarden report`: what the incidents of a period add up to, from the state database.

An incident can fire several times (reopened within the reopen window); each firing is one
*occurrence*, from its `opened`/`reopened` event to its `resolved` event, acknowledged by the first
`acknowledged` event in between (two-way sync with the ticket system). Counted per occurrence that
started in the period:
- counts by rule, category, priority and backend;
- MTTA (mean time to acknowledge, acknowledged occurrences) and MTTR (mean time to resolve); an
  occurrence closed because its check was removed from the configuration (`retired`) ends there but
  counts in neither MTTR nor resolve-SLA breaches (nothing was fixed);
- SLA breaches against the priority's targets: acknowledged late (or still unacknowledged past the
  deadline while open), resolved late (or still open past the deadline);
- availability per check (incidents carrying a `check` label): the share of the period without a
  firing occurrence of that check's alerts (overlaps counted once).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from hostwarden.agent.core.priority import PriorityPolicy
from hostwarden.agent.core.units import human_duration
from hostwarden.agent.incidents.state import StateDB


@dataclass
class Occurrence:
    incident_id: int
    rule: str
    category: str
    priority: str
    backend: str
    check: str
    start: float
    ack: float | None = None
    end: float | None = None
    retired: bool = False  # ended because its check was removed from the configuration: no MTTR, no SLA


@dataclass
class _Group:
    count: int = 0
    open: int = 0
    ttr: list[float] = field(default_factory=list)
    tta: list[float] = field(default_factory=list)

    def add(self, o: Occurrence) -> None:
        self.count += 1
        if o.end is None:
            self.open += 1
        elif not o.retired:
            self.ttr.append(o.end - o.start)
        if o.ack is not None:
            self.tta.append(o.ack - o.start)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "open": self.open, "mtta_seconds": _mean(self.tta),
                "mttr_seconds": _mean(self.ttr)}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def occurrences(state: StateDB, since: float) -> list[Occurrence]:
    with state.lock:
        c = state.connection
        incidents = {r["id"]: dict(r) for r in c.execute(
            "SELECT id, rule, category, priority, backend, labels, is_storm FROM incidents "
            "WHERE id IN (SELECT incident_id FROM incident_events WHERE at >= ?) OR status = 'open'", (since,))}
        events = c.execute("SELECT incident_id, at, kind FROM incident_events WHERE kind IN ('opened', 'reopened', "
                           "'acknowledged', 'resolved', 'retired') ORDER BY incident_id, id").fetchall()
    out: list[Occurrence] = []
    current: dict[int, Occurrence] = {}
    for e in events:
        inc = incidents.get(e["incident_id"])
        if inc is None or inc["is_storm"]:
            continue
        iid, at, kind = e["incident_id"], float(e["at"]), e["kind"]
        if kind in ("opened", "reopened"):
            labels = dict(json.loads(inc["labels"] or "[]"))
            o = Occurrence(iid, inc["rule"], inc["category"] or "-", inc["priority"], inc["backend"] or "-",
                           labels.get("check", ""), at)
            current[iid] = o
            out.append(o)
        elif iid in current:
            o = current[iid]
            if kind == "acknowledged" and o.ack is None and o.end is None:
                o.ack = at
            elif kind in ("resolved", "retired") and o.end is None:
                o.end, o.retired = at, kind == "retired"
    return [o for o in out if o.start >= since or o.end is None or o.end >= since]


def build_report(state: StateDB, *, since: float, now: float, policy: PriorityPolicy,
                 checks: list[str] | None = None) -> dict[str, Any]:
    occ = [o for o in occurrences(state, since) if o.start >= since]
    total = _Group()
    by: dict[str, dict[str, _Group]] = {"rule": {}, "category": {}, "priority": {}, "backend": {}}
    ack_breaches = resolve_breaches = 0
    for o in occ:
        total.add(o)
        for key, value in (("rule", o.rule), ("category", o.category), ("priority", o.priority),
                           ("backend", o.backend)):
            by[key].setdefault(value, _Group()).add(o)
        ack_due, resolve_due = policy.deadlines(o.priority, o.start)
        if (o.ack is not None and o.ack > ack_due) or (o.ack is None and o.end is None and now > ack_due):
            ack_breaches += 1
        if not o.retired and ((o.end is not None and o.end > resolve_due) or (o.end is None and now > resolve_due)):
            resolve_breaches += 1
    storms = state.query("SELECT COUNT(*) AS n FROM incidents WHERE is_storm = 1 AND opened_at >= ?", (since,))
    return {
        "since": since, "until": now,
        "incidents": total.as_dict(),
        "storms": int(storms[0]["n"]),
        "sla_breaches": {"acknowledge": ack_breaches, "resolve": resolve_breaches},
        "by_rule": {k: g.as_dict() for k, g in sorted(by["rule"].items())},
        "by_category": {k: g.as_dict() for k, g in sorted(by["category"].items())},
        "by_priority": {k: g.as_dict() for k, g in sorted(by["priority"].items())},
        "by_backend": {k: g.as_dict() for k, g in sorted(by["backend"].items())},
        "availability": availability(occurrences(state, since), since=since, now=now, checks=checks or []),
    }


def availability(occ: list[Occurrence], *, since: float, now: float, checks: list[str]) -> dict[str, Any]:
    period = max(now - since, 1e-9)
    spans: dict[str, list[tuple[float, float]]] = {name: [] for name in checks}
    for o in occ:
        if o.check:
            spans.setdefault(o.check, []).append((max(o.start, since), min(o.end if o.end is not None else now, now)))
    out = {}
    for name, intervals in sorted(spans.items()):
        down = 0.0
        last_end = since
        for start, end in sorted(intervals):
            start = max(start, last_end)
            if end > start:
                down += end - start
                last_end = end
        out[name] = {"availability_ratio": max(0.0, 1.0 - down / period), "down_seconds": down,
                     "incidents": len(intervals)}
    return out


def _fmt(seconds: float | None) -> str:
    return human_duration(seconds) if seconds is not None else "-"


def render_text(rep: dict[str, Any]) -> str:
    fmt_t = "%Y-%m-%d %H:%M UTC"
    lines = [f"hostwarden report: {time.strftime(fmt_t, time.gmtime(rep['since']))} → "
             f"{time.strftime(fmt_t, time.gmtime(rep['until']))}"]
    inc = rep["incidents"]
    lines.append(f"Incidents: {inc['count']} ({inc['open']} open)" +
                 (f", {rep['storms']} storm ticket(s)" if rep["storms"] else ""))
    lines.append(f"MTTA: {_fmt(inc['mtta_seconds'])}   MTTR: {_fmt(inc['mttr_seconds'])}")
    sla = rep["sla_breaches"]
    lines.append(f"SLA breaches: acknowledge {sla['acknowledge']}, resolve {sla['resolve']}")
    for key, title in (("by_rule", "rule"), ("by_category", "category"), ("by_priority", "priority"),
                       ("by_backend", "backend")):
        groups = rep[key]
        if not groups:
            continue
        width = max(len(title), *(len(k) for k in groups))
        lines.append("")
        lines.append(f"{title.ljust(width)}  {'count':>5}  {'open':>4}  {'MTTA':>8}  {'MTTR':>8}")
        for name, g in groups.items():
            lines.append(f"{name.ljust(width)}  {g['count']:>5}  {g['open']:>4}  {_fmt(g['mtta_seconds']):>8}  "
                         f"{_fmt(g['mttr_seconds']):>8}")
    if rep["availability"]:
        lines.append("")
        lines.append("Availability (checks)")
        for name, a in rep["availability"].items():
            lines.append(f"  {name}: {a['availability_ratio'] * 100:.3f}%  ({a['incidents']} incident(s), "
                         f"{_fmt(a['down_seconds'])} down)")
    return "\n".join(lines) + "\n"
