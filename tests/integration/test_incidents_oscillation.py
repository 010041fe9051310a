"""A value oscillating around the threshold for minutes of simulated time gives one ticket, not twenty.

The real pipeline with explicit time: rule file → rules.loader → RuleManager over a SeriesStore →
IncidentManager (with the real Diagnoser) → OutboxWorker → the local ticket store."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.store import SeriesStore
from hostwarden.agent.incidents.diagnosis import Diagnoser
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
from hostwarden.agent.incidents.state import StateDB
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import RuleManager

from tests.support.incidents import HOST, tickets_config

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
RULES = """
groups:
  - name: osc
    interval: 10s
    rules:
      - alert: Hysteresis
        expr: osc_hysteresis
        warning: "> 10"
        clear: "< 8"
        for: 20s
        annotations: {summary: "value {{ $value }}"}
      - alert: Flapping
        expr: osc_flapping
        warning: "> 10"
        for: 0s
        flap: {window: 10, high: 0.5, low: 0.2}
"""


def run(tmp_path: Path, values: dict[str, list[float]]) -> tuple[list[dict], StateDB]:
    (tmp_path / "rules.yaml").write_text(RULES)
    errors = Errors()
    groups = load_rule_files([str(tmp_path / "rules.yaml")], errors, default_interval=10.0)
    errors.raise_if_any()
    rules = RuleManager(groups, external_labels={"host": HOST})
    store = SeriesStore()
    by_name, all_names = rules.retention()
    store.set_retention(by_name, all_names=all_names)
    state = StateDB(str(tmp_path / "state.db"))
    cfg = tickets_config("update_interval: 5m\nreopen_window: 1h\n")
    incidents = IncidentManager(cfg, state=state, hostname=HOST, external_labels={"host": HOST},
                                diagnose=Diagnoser(store, time_budget=0.5))
    backends = build_backends(cfg, state_dir=str(tmp_path))
    worker = OutboxWorker(state, backends, clock=lambda: 0.0)
    steps = len(next(iter(values.values())))
    for i in range(steps):
        now = T0 + 10 * i
        store.append("test", [Sample(name, (), v[i], now) for name, v in values.items()], now)
        for g in rules.groups:
            transitions = rules.evaluate(g, store, now)
            if transitions:
                incidents.handle(transitions, now)
        incidents.tick(now)
        worker.run_once(float(i))
    worker.run_once(1e6)
    tickets = [backends["local"].store.get(t["id"]) for t in backends["local"].store.list()]
    return tickets, state


def test_incidents_oscillation_with_hysteresis_one_ticket_resolved_once(tmp_path: Path) -> None:
    # 1 min calm, 1 min high, 8 min hovering around the threshold (9 ↔ 11), then well below the clear level
    values = [5.0] * 6 + [12.0] * 6 + [9.0, 11.0] * 24 + [5.0] * 6
    tickets, state = run(tmp_path, {"osc_hysteresis": values, "osc_flapping": [0.0] * len(values)})
    assert len(tickets) == 1
    t = tickets[0]
    assert (t["status"], t["reopen_count"]) == ("resolved", 0)
    assert [e["kind"] for e in t["events"]] == ["opened", "resolved"]
    assert t["resolved_at"] - t["opened_at"] == 520  # fired at 1m20s (for: 20s), resolved at 10m
    assert "Last 10 minutes" in t["diagnosis"] and "osc_hysteresis" in t["diagnosis"]
    state.close()


def test_incidents_hard_oscillation_with_flap_detection_one_ticket_few_updates(tmp_path: Path) -> None:
    values = [5.0] * 3 + [12.0, 5.0] * 30 + [5.0] * 30  # 10 minutes of flipping every evaluation, then calm
    tickets, state = run(tmp_path, {"osc_flapping": values, "osc_hysteresis": [0.0] * len(values)})
    assert len(tickets) == 1
    kinds = [e["kind"] for e in tickets[0]["events"]]
    assert kinds.count("opened") == 1
    assert len(kinds) <= 8, kinds  # not a comment per flip: a flapping note, at most a few reopen/resolve
    assert tickets[0]["status"] == "resolved"
    flips = state.query("SELECT COUNT(*) FROM incident_events WHERE kind = 'flapping'")[0][0]
    assert flips >= 1
    state.close()
