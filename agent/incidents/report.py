"""`hostwarden report`: what the incidents of a period add up to, from the state database.

An incident can fire several times (reopened within the reopen window); each firing is one
*occurrence*, from its `opened`/`reopened` event to its `resolved` event, acknowledged by the first
`acknowledged` event in between (two-way sync with the ticket system). Counted per occurrence that
started in the period:
- counts by rule, category, priority and backend;
- MTTA (time to acknowledge, acknowledged occurrences) and MTTR (time to resolve): mean, median and
  p90 (linear interpolation between the closest ranks, numpy's default). The clock starts when the
  ticket could first be seen: at the occurrence's start, or when the silence or maintenance window
  that held its ticket back ended (`unsilenced` event);
- SLA breaches against the priority's targets, in total and per priority: acknowledged late (or
  still unacknowledged past the deadline while open), resolved late (or still open past the deadline);
- occurrences that fired and cleared inside a silence (no ticket) are counted as incidents but not in
  MTTA/MTTR/SLA (`silenced_without_ticket`);
- availability per check: from the check history (`check_history`: up/down transitions the agent
  records), up / (up + down) over the period, time before the first known state not counted; a check
  without history falls back to its incidents (`check` label): the share of the period without a
  firing occurrence (overlaps counted once);
- the noisiest rules (most occurrences, most flapping episodes) as tuning candidates;
- silenced and maintenance time: the union of the silences' spans and of the maintenance windows'
  active time within the period.
- remediation: actions run, refused, exhausted; what resolved each occurrence (after remediation, by
  itself, by a person), the auto-fix rate and the MTTR with and without remediation;
- an occurrence closed because its check was removed from the configuration (`retired`) ends there but
  counts in neither MTTR nor resolve-SLA breaches (nothing was fixed);
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from hostwarden.agent.core.priority import PriorityPolicy
from hostwarden.agent.core.units import human_duration
from hostwarden.agent.incidents import history
from hostwarden.agent.incidents.silence import MaintenanceWindow, union_seconds
from hostwarden.agent.incidents.state import StateDB

NOISIEST = 10


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
    silenced: bool = False  # held back by a silence or maintenance window at some point
    clock_start: float | None = None  # when its ticket could first be seen (end of the silence), else start
    no_ticket: bool = False  # fired and cleared inside a silence
    retired: bool = False  # ended because its check was removed from the configuration: no MTTR, no SLA
    cause: str = ""  # "resolved after remediation" | "resolved by itself" | "resolved by a person" ("" before)

    @property
    def since(self) -> float:
        return self.clock_start if self.clock_start is not None else self.start


def percentile(xs: list[float], p: int) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), `p` in whole percent; None for no values.
    Integer arithmetic for the rank, so whole-second inputs give exact results."""
    if not xs:
        return None
    v = sorted(xs)
    lo, rem = divmod((len(v) - 1) * p, 100)
    if rem == 0:
        return float(v[lo])
    return v[lo] + (v[lo + 1] - v[lo]) * rem / 100


def _stats(xs: list[float], prefix: str) -> dict[str, float | None]:
    return {f"{prefix}_seconds": _mean(xs), f"{prefix}_median_seconds": percentile(xs, 50),
            f"{prefix}_p90_seconds": percentile(xs, 90)}


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
        elif not o.no_ticket and not o.retired:
            self.ttr.append(max(0.0, o.end - o.since))
        if o.ack is not None and not o.no_ticket:
            self.tta.append(max(0.0, o.ack - o.since))

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "open": self.open, **_stats(self.tta, "mtta"), **_stats(self.ttr, "mttr")}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def occurrences(state: StateDB, since: float) -> list[Occurrence]:
    with state.lock:
        c = state.connection
        incidents = {r["id"]: dict(r) for r in c.execute(
            "SELECT id, rule, category, priority, backend, labels, is_storm FROM incidents "
            "WHERE id IN (SELECT incident_id FROM incident_events WHERE at >= ?) OR status = 'open'", (since,))}
        events = c.execute("SELECT incident_id, at, kind, text FROM incident_events WHERE kind IN "
                           "('opened', 'reopened', 'acknowledged', 'resolved', 'retired', 'silenced', 'unsilenced', "
                           "'resolution') "
                           "ORDER BY incident_id, id").fetchall()
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
            elif kind == "silenced" and o.end is None:
                o.silenced = True
            elif kind == "unsilenced" and o.silenced:
                if "no ticket" in e["text"]:
                    o.no_ticket = True
                elif "ticket opened now" in e["text"]:
                    o.clock_start = at
            elif kind == "resolution" and not o.cause:
                o.cause = e["text"]
    return [o for o in out if o.start >= since or o.end is None or o.end >= since]


def _sla(o: Occurrence, policy: PriorityPolicy, now: float) -> tuple[bool, bool]:
    """(acknowledge breached, resolve breached) for one occurrence."""
    if o.no_ticket:
        return False, False
    ack_due, resolve_due = policy.deadlines(o.priority, o.since)
    ack = (o.ack is not None and o.ack > ack_due) or (o.ack is None and o.end is None and now > ack_due)
    res = not o.retired and ((o.end is not None and o.end > resolve_due) or (o.end is None and now > resolve_due))
    return ack, res


def build_report(state: StateDB, *, since: float, now: float, policy: PriorityPolicy,
                 checks: list[str] | None = None, windows: tuple[MaintenanceWindow, ...] = ()) -> dict[str, Any]:
    occ = [o for o in occurrences(state, since) if o.start >= since]
    total = _Group()
    by: dict[str, dict[str, _Group]] = {"rule": {}, "category": {}, "priority": {}, "backend": {}}
    ack_breaches = resolve_breaches = 0
    per_priority: dict[str, dict[str, int]] = {}
    for o in occ:
        total.add(o)
        for key, value in (("rule", o.rule), ("category", o.category), ("priority", o.priority),
                           ("backend", o.backend)):
            by[key].setdefault(value, _Group()).add(o)
        ack, res = _sla(o, policy, now)
        ack_breaches += ack
        resolve_breaches += res
        p = per_priority.setdefault(o.priority, {"acknowledge": 0, "resolve": 0, "occurrences": 0})
        p["occurrences"] += 1
        p["acknowledge"] += ack
        p["resolve"] += res
    storms = state.query("SELECT COUNT(*) AS n FROM incidents WHERE is_storm = 1 AND opened_at >= ?", (since,))
    return {
        "since": since, "until": now,
        "incidents": {**total.as_dict(), "silenced": sum(o.silenced for o in occ),
                      "silenced_without_ticket": sum(o.no_ticket for o in occ)},
        "storms": int(storms[0]["n"]),
        "sla_breaches": {"acknowledge": ack_breaches, "resolve": resolve_breaches},
        "sla_breaches_by_priority": dict(sorted(per_priority.items())),
        "by_rule": {k: g.as_dict() for k, g in sorted(by["rule"].items())},
        "by_category": {k: g.as_dict() for k, g in sorted(by["category"].items())},
        "by_priority": {k: g.as_dict() for k, g in sorted(by["priority"].items())},
        "by_backend": {k: g.as_dict() for k, g in sorted(by["backend"].items())},
        "remediation": remediation_figures(state, occ, since=since),
        "availability": check_availability(state, occurrences(state, since), since=since, now=now,
                                           checks=checks or []),
        "noisiest_rules": noisiest(state, occ, since=since, now=now),
        "suppression": suppression(state, windows, since=since, now=now),
    }


def check_availability(state: StateDB, occ: list[Occurrence], *, since: float, now: float,
                       checks: list[str]) -> dict[str, Any]:
    """From the check history where there is one, else from the check's incidents."""
    hist = history.transitions(state, now)
    out = availability(occ, since=since, now=now, checks=[c for c in checks if c not in hist])
    for name, trans in hist.items():
        if name in out:
            continue
        a = history.availability(trans, since=since, until=now)
        out[name] = {**a, "incidents": sum(1 for o in occ if o.check == name), "source": "history"}
    return dict(sorted(out.items()))


CAUSES = ("resolved after remediation", "resolved by itself", "resolved by a person")


def remediation_figures(state: StateDB, occ: list[Occurrence], *, since: float) -> dict[str, Any]:
    """Remediation actions and what resolved the occurrences: the auto-fix rate (resolved after remediation
    / resolved with a recorded cause) and the MTTR with and without remediation."""
    rows = state.query("SELECT kind, COUNT(*) AS n FROM incident_events WHERE at >= ? AND kind IN "
                       "('remediation', 'remediation_dry_run', 'remediation_refused', 'remediation_exhausted') "
                       "GROUP BY kind", (since,))
    counts = {r["kind"]: int(r["n"]) for r in rows}
    by_cause: dict[str, list[float]] = {c: [] for c in CAUSES}
    for o in occ:
        if o.end is not None and o.cause in by_cause:
            by_cause[o.cause].append(o.end - o.start)
    fixed = by_cause["resolved after remediation"]
    others = by_cause["resolved by itself"] + by_cause["resolved by a person"]
    resolved = len(fixed) + len(others)
    return {
        "actions": counts.get("remediation", 0), "dry_runs": counts.get("remediation_dry_run", 0),
        "refused": counts.get("remediation_refused", 0), "exhausted": counts.get("remediation_exhausted", 0),
        "causes": {c: len(v) for c, v in by_cause.items()},
        "auto_fix_ratio": len(fixed) / resolved if resolved else None,
        "mttr_with_remediation_seconds": _mean(fixed),
        "mttr_without_remediation_seconds": _mean(others),
    }


def availability(occ: list[Occurrence], *, since: float, now: float, checks: list[str]) -> dict[str, Any]:
    period = max(now - since, 1e-9)
    spans: dict[str, list[tuple[float, float]]] = {name: [] for name in checks}
    for o in occ:
        if o.check:
            spans.setdefault(o.check, []).append((max(o.start, since), min(o.end if o.end is not None else now, now)))
    out = {}
    for name, intervals in sorted(spans.items()):
        down = union_seconds(intervals)
        out[name] = {"availability_ratio": max(0.0, 1.0 - down / period), "down_seconds": down,
                     "incidents": len(intervals), "source": "incidents"}
    return out


def noisiest(state: StateDB, occ: list[Occurrence], *, since: float, now: float) -> list[dict[str, Any]]:
    """Rules by occurrences, then flapping episodes (a `Flapping:` note): tuning candidates."""
    flaps: dict[str, int] = {}
    for r in state.query("SELECT i.rule AS rule, COUNT(*) AS n FROM incident_events e JOIN incidents i ON "
                         "i.id = e.incident_id WHERE e.kind = 'flapping' AND e.text LIKE 'Flapping:%' AND "
                         "e.at >= ? AND e.at <= ? AND i.is_storm = 0 GROUP BY i.rule", (since, now)):
        flaps[r["rule"]] = int(r["n"])
    counts: dict[str, dict[str, Any]] = {}
    for o in occ:
        c = counts.setdefault(o.rule, {"rule": o.rule, "occurrences": 0, "incidents": set(), "flapping": 0})
        c["occurrences"] += 1
        c["incidents"].add(o.incident_id)
    for rule, n in flaps.items():
        counts.setdefault(rule, {"rule": rule, "occurrences": 0, "incidents": set(), "flapping": 0})["flapping"] = n
    rows = [{**c, "incidents": len(c["incidents"])} for c in counts.values()]
    rows.sort(key=lambda c: (-c["occurrences"], -c["flapping"], c["rule"]))
    return rows[:NOISIEST]


def suppression(state: StateDB, windows: tuple[MaintenanceWindow, ...], *, since: float,
                now: float) -> dict[str, Any]:
    from hostwarden.agent.incidents.silence import active_seconds
    from hostwarden.agent.incidents.suppress import silences_between

    sil = silences_between(state, since, now)
    spans = [(max(s.starts_at, since), min(s.ends_at, now)) for s in sil]
    per_window = {w.name: active_seconds(w, since, now) for w in windows}
    mspans: list[tuple[float, float]] = []
    for w in windows:
        if w.start is not None and w.end is not None:
            if w.end > since and w.start < now:
                mspans.append((max(w.start, since), min(w.end, now)))
        else:
            t = since - since % 60
            while t < now:
                if w.active(t):
                    mspans.append((max(t, since), min(t + 60, now)))
                t += 60
    return {
        "silences": len(sil), "silenced_seconds": union_seconds(spans),
        "silence_list": [{"id": s.id, "matchers": [str(m) for m in s.matchers], "starts_at": s.starts_at,
                          "ends_at": s.ends_at, "created_by": s.created_by, "comment": s.comment} for s in sil],
        "maintenance_seconds": union_seconds(mspans), "maintenance_windows": per_window,
    }


def _fmt(seconds: float | None) -> str:
    return human_duration(seconds) if seconds is not None else "-"


def render_text(rep: dict[str, Any]) -> str:
    fmt_t = "%Y-%m-%d %H:%M UTC"
    lines = [f"hostwarden report: {time.strftime(fmt_t, time.gmtime(rep['since']))} → "
             f"{time.strftime(fmt_t, time.gmtime(rep['until']))}"]
    inc = rep["incidents"]
    lines.append(f"Incidents: {inc['count']} ({inc['open']} open)" +
                 (f", {rep['storms']} storm ticket(s)" if rep["storms"] else "") +
                 (f", {inc['silenced']} silenced ({inc['silenced_without_ticket']} without a ticket)"
                  if inc["silenced"] else ""))
    lines.append(f"MTTA: {_fmt(inc['mtta_seconds'])}   MTTR: {_fmt(inc['mttr_seconds'])}   (mean)")
    lines.append(f"MTTA median {_fmt(inc['mtta_median_seconds'])}, p90 {_fmt(inc['mtta_p90_seconds'])}   "
                 f"MTTR median {_fmt(inc['mttr_median_seconds'])}, p90 {_fmt(inc['mttr_p90_seconds'])}")
    sla = rep["sla_breaches"]
    lines.append(f"SLA breaches: acknowledge {sla['acknowledge']}, resolve {sla['resolve']}")
    for prio, b in rep["sla_breaches_by_priority"].items():
        lines.append(f"  {prio}: acknowledge {b['acknowledge']}, resolve {b['resolve']} "
                     f"(of {b['occurrences']})")
    rem = rep.get("remediation") or {}
    if rem.get("actions") or rem.get("dry_runs") or rem.get("refused") or \
            rem.get("causes", {}).get("resolved after remediation"):
        ratio = rem["auto_fix_ratio"]
        lines.append(f"Remediation: {rem['actions']} action(s), {rem['exhausted']} exhausted, {rem['refused']} refused"
                     + (f", {rem['dry_runs']} dry run(s)" if rem["dry_runs"] else ""))
        lines.append(f"Auto-fix rate: {'-' if ratio is None else f'{ratio * 100:.0f}%'} ("
                     + ", ".join(f"{n} {c}" for c, n in rem["causes"].items()) + ")")
        lines.append(f"MTTR with remediation: {_fmt(rem['mttr_with_remediation_seconds'])}   "
                     f"without: {_fmt(rem['mttr_without_remediation_seconds'])}")
    for key, title in (("by_rule", "rule"), ("by_category", "category"), ("by_priority", "priority"),
                       ("by_backend", "backend")):
        groups = rep[key]
        if not groups:
            continue
        width = max(len(title), *(len(k) for k in groups))
        lines.append("")
        lines.append(f"{title.ljust(width)}  {'count':>5}  {'open':>4}  {'MTTA med':>8}  {'MTTA p90':>8}  "
                     f"{'MTTR med':>8}  {'MTTR p90':>8}")
        for name, g in groups.items():
            lines.append(f"{name.ljust(width)}  {g['count']:>5}  {g['open']:>4}  "
                         f"{_fmt(g['mtta_median_seconds']):>8}  {_fmt(g['mtta_p90_seconds']):>8}  "
                         f"{_fmt(g['mttr_median_seconds']):>8}  {_fmt(g['mttr_p90_seconds']):>8}")
    if rep["availability"]:
        lines.append("")
        lines.append("Availability (checks)")
        for name, a in rep["availability"].items():
            lines.append(f"  {name}: {a['availability_ratio'] * 100:.3f}%  ({_fmt(a['down_seconds'])} down, "
                         f"{a['incidents']} incident(s), from {a['source']})")
    if rep["noisiest_rules"]:
        lines.append("")
        lines.append("Noisiest rules (tuning candidates)")
        for r in rep["noisiest_rules"]:
            lines.append(f"  {r['rule']}: {r['occurrences']} occurrence(s) in {r['incidents']} incident(s), "
                         f"{r['flapping']} flapping episode(s)")
    sup = rep["suppression"]
    lines.append("")
    lines.append(f"Silenced: {_fmt(sup['silenced_seconds'])} ({sup['silences']} silence(s))   "
                 f"Maintenance: {_fmt(sup['maintenance_seconds'])}")
    return "\n".join(lines) + "\n"
