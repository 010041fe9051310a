"""The running agent as the web pages and the API see it: narrow, read-only, snapshot accessors.

Each accessor copies what it needs under the lock its owner already uses (rule states under
`store.lock`, which every rule evaluation holds; incidents through the state database's lock) and
returns frozen values; nothing is held while a response is written. The agent's components are read
at call time, so a reload (which swaps the incident manager, checks and backends) is seen at once.

Silences: when the incident manager has a suppressor (`incidents.suppress.covering(connection, labels,
now)`, the silences and maintenance windows of `hostwarden silence`), the status page shows a
"Silenced" column naming what covers each alert; without one the column is left out.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from hostwarden.agent.core import __version__
from hostwarden.agent.core.samples import Labels
from hostwarden.agent.core.store import SeriesStore
from hostwarden.exporters.statusmodel import (
    ActiveAlert,
    Chart,
    CheckRow,
    CollectorRow,
    Health,
    IncidentRow,
    OutboxRow,
    Summary,
    TicketLink,
)
from hostwarden.rules.chartdata import ValueExpr, chart_series, value_expr
from hostwarden.rules.model import Rule
from hostwarden.rules.status import GroupStatus

log = logging.getLogger(__name__)

CHART_WINDOW = 600.0  # the store keeps at least 10 minutes of every series a rule reads
CHART_STEPS = 61
MAX_CHARTS = 12
INCIDENT_WINDOW = 86400.0
MAX_INCIDENTS = 200


class AgentWebView:
    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self._exprs: dict[int, tuple[Rule, ValueExpr | None]] = {}

    # -- what the API needs ---------------------------------------------------------------------------------
    @property
    def store(self) -> SeriesStore:
        return self.agent.store

    def now(self) -> float:
        return float(self.agent.clock.now())

    def subquery_step(self) -> float:
        return float(self.agent.config.evaluation_interval)

    def rule_status(self) -> list[GroupStatus]:
        with self.agent.store.lock:
            return self.agent.rules.status()

    # -- what the status page needs -------------------------------------------------------------------------
    def external_url(self) -> str:
        return str(getattr(self.agent, "external_url", "") or "")

    def summary(self, *, charts: bool = True) -> Summary:
        now = self.now()
        with self.agent.store.lock:
            loaded = list(self.agent.rules.groups)
            groups = self.agent.rules.status()
        silenced = self._silence_lookup()
        active = [(g, r, a) for g in groups for r in g.rules for a in r.alerts]
        active.sort(key=lambda x: (x[2].state != "firing", x[2].severity != "critical", -x[2].active_at))
        tickets = self._tickets([a.fingerprint for _g, _r, a in active])
        rules = self._rules_of(groups, loaded)
        alerts = []
        for i, (g, r, a) in enumerate(active):
            chart = None
            rule = rules.get(id(r))
            if charts and i < MAX_CHARTS and rule is not None:
                chart = self._chart(rule, a.labels, now)
            cover = None
            if silenced is not None:
                try:
                    cover = silenced(a.labels, now)
                except Exception:
                    log.debug("silence lookup failed", exc_info=True)
            alerts.append(ActiveAlert(name=r.name, group=g.name, alert=a, ticket=tickets.get(a.fingerprint),
                                      silenced=cover, chart=chart))
        return Summary(now=now, hostname=str(self.agent.config.hostname), alerts=tuple(alerts),
                       checks=self._checks(), incidents=self._incidents(now), health=self._health(now),
                       groups=tuple(groups), silences=silenced is not None, window=INCIDENT_WINDOW)

    @staticmethod
    def _rules_of(groups: list[GroupStatus], loaded: list[Any]) -> dict[int, Rule]:
        """id(RuleStatus) -> the loaded Rule it describes (same order; groups may repeat names across files and
        rules their names within a group). Nothing when a reload came between the two reads."""
        out: dict[int, Rule] = {}
        if len(groups) != len(loaded):
            return out
        for gs, g in zip(groups, loaded, strict=True):
            if (gs.name, gs.file) != (g.name, g.file) or len(gs.rules) != len(g.rules):
                return {}
            for rs, r in zip(gs.rules, g.rules, strict=True):
                out[id(rs)] = r
        return out

    def _silence_lookup(self) -> Callable[[Labels, float], str] | None:
        """labels, now -> what silences the alert ("" when nothing does), or None without silence support."""
        covering = getattr(getattr(self.agent.incidents, "suppress", None), "covering", None)
        if not callable(covering):
            return None
        state, external = self.agent.state, dict(self.agent.config.external_labels)

        def lookup(labels: Labels, now: float) -> str:
            with state.lock:
                cover = covering(state.connection, {**external, **dict(labels)}, now)
            return "" if cover is None else str(getattr(cover, "label", "") or "yes")

        return lookup

    def _chart(self, rule: Rule, labels: Labels, now: float) -> Chart | None:
        cached = self._exprs.get(id(rule))
        if cached is None or cached[0] is not rule:
            if len(self._exprs) > 1000:
                self._exprs.clear()
            cached = self._exprs[id(rule)] = (rule, value_expr(rule, subquery_step=self.subquery_step()))
        expr = cached[1]
        if expr is None:
            return None
        ignore = frozenset(k for k, _ in rule.labels) | {"alertname", "severity"}
        start = max(now - CHART_WINDOW, min(float(self.agent.started_at), now - 60.0))  # a young agent: its life
        series = chart_series(expr, labels, self.agent.store, start=start, end=now, steps=CHART_STEPS, ignore=ignore)
        return Chart(series=tuple(series), thresholds=expr.thresholds, start=start, end=now)

    def _checks(self) -> tuple[CheckRow, ...]:
        runner = self.agent.checks
        results = runner.last_results() if runner is not None else {}
        rows = []
        for cfg in self.agent.config.checks:
            if not getattr(cfg, "enabled", True):
                continue
            res = results.get(cfg.name)
            rows.append(CheckRow(name=cfg.name, type=str(getattr(cfg, "type", "")),
                                 ok=None if res is None else bool(res.ok),
                                 status=3 if res is None else int(res.status),
                                 message="" if res is None else str(res.message)))
        return tuple(rows)

    def _link(self, backend: str, ticket_id: str | None, url: str, incident_id: int, status: str) -> TicketLink | None:
        if not ticket_id:
            return None
        if not url and self._is_local(backend):
            url = f"/tickets/{backend}/{ticket_id}"
        return TicketLink(backend=backend, ticket_id=str(ticket_id), url=url, incident_id=incident_id, status=status)

    def _is_local(self, backend: str) -> bool:
        b = self.agent.backends.get(backend)
        return b is not None and hasattr(b, "store") and type(b).__name__ == "LocalBackend"

    def _tickets(self, fingerprints: list[str]) -> dict[str, TicketLink]:
        """The latest incident's ticket of each fingerprint (a storm member: the storm's ticket)."""
        if not fingerprints:
            return {}
        marks = ",".join("?" * len(fingerprints))
        try:
            rows = self.agent.state.query(
                "SELECT i.fingerprint, i.id, i.backend, i.status, "
                "COALESCE(i.ticket_id, s.ticket_id) AS ticket_id, "
                "CASE WHEN i.ticket_id IS NULL THEN COALESCE(s.ticket_url, '') ELSE i.ticket_url END AS ticket_url "
                "FROM incidents i LEFT JOIN incidents s ON s.id = i.storm_id "
                f"WHERE i.fingerprint IN ({marks}) ORDER BY i.id", list(fingerprints))
        except sqlite3.Error:
            log.debug("incident lookup failed", exc_info=True)
            return {}
        out: dict[str, TicketLink] = {}
        for r in rows:
            link = self._link(r["backend"], r["ticket_id"], r["ticket_url"] or "", int(r["id"]), r["status"])
            if link is not None:  # rows in id order: the latest incident with a ticket wins
                out[r["fingerprint"]] = link
        return out

    def _incidents(self, now: float) -> tuple[IncidentRow, ...]:
        try:
            rows = self.agent.state.query(
                "SELECT id, rule, title, severity, status, opened_at, resolved_at, backend, ticket_id, ticket_url "
                "FROM incidents WHERE is_storm = 0 AND (resolved_at IS NULL OR resolved_at >= ?) "
                "ORDER BY id DESC LIMIT ?", (now - INCIDENT_WINDOW, MAX_INCIDENTS))
        except sqlite3.Error:
            log.debug("incident list failed", exc_info=True)
            return ()
        out = [IncidentRow(incident_id=int(r["id"]), rule=r["rule"], title=r["title"], severity=r["severity"],
                           status=r["status"], opened_at=float(r["opened_at"]),
                           resolved_at=None if r["resolved_at"] is None else float(r["resolved_at"]),
                           ticket=self._link(r["backend"], r["ticket_id"], r["ticket_url"] or "", int(r["id"]),
                                             r["status"]))
               for r in rows]
        return tuple(reversed(out))

    def _health(self, now: float) -> Health:
        agent = self.agent
        runs = dict(agent._runs)
        collectors = tuple(CollectorRow(name=n, success=r.success, duration=r.duration, failures=r.failures,
                                        last_error=r.last_error) for n, r in sorted(runs.items()))
        outbox: dict[str, list[float]] = {b.name: [0, 0.0, 0] for b in agent.tickets_config.backends}
        try:
            for r in agent.state.query("SELECT backend, status, COUNT(*) AS n, MIN(created_at) AS oldest "
                                       "FROM outbox WHERE status IN ('pending', 'dead') GROUP BY backend, status"):
                row = outbox.setdefault(r["backend"], [0, 0.0, 0])
                if r["status"] == "pending":
                    row[0], row[1] = int(r["n"]), max(0.0, now - float(r["oldest"]))
                else:
                    row[2] = int(r["n"])
        except sqlite3.Error:
            log.debug("outbox summary failed", exc_info=True)
        return Health(version=__version__, started_at=float(agent.started_at), last_reload_ok=agent._reload_ok == 1.0,
                      last_reload_at=float(agent._reload_ok_at),
                      collectors=collectors,
                      outbox=tuple(OutboxRow(backend=b, pending=int(v[0]), oldest_age=float(v[1]), dead=int(v[2]))
                                   for b, v in sorted(outbox.items())),
                      store_series=agent.store.series_count(), state_degraded=bool(agent.state.degraded))

    # -- local tickets --------------------------------------------------------------------------------------
    def local_ticket(self, backend: str, ticket_id: int) -> dict[str, Any] | None:
        if not self._is_local(backend):
            return None
        try:
            return self.agent.backends[backend].store.get(ticket_id)
        except Exception:
            return None
