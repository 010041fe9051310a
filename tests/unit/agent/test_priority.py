"""Severity × category → priority, label override, SLA targets merged over defaults."""

from __future__ import annotations

from hostwarden.agent.core.priority import DEFAULT_SLA, build_policy


def test_priority_default_matrix_cells() -> None:
    p = build_policy()
    assert p.priority("critical", "availability") == "P1"
    assert p.priority("critical", "capacity") == "P2"
    assert p.priority("warning", "security") == "P2"
    assert p.priority("warning", "performance") == "P3"
    assert p.priority("info", "") == "P4"
    assert p.priority("page-me", "whatever") == "P3"  # unknown severity: the default priority


def test_priority_configured_cells_add_to_defaults_and_label_wins() -> None:
    p = build_policy({"warning": {"capacity": "P2"}}, "P4")
    assert p.priority("warning", "Capacity") == "P2"
    assert p.priority("warning", "performance") == "P3"  # the rest of the default row stays
    assert p.priority("bogus", "") == "P4"
    assert p.priority("info", "", {"priority": "p1"}) == "P1"
    assert p.priority("info", "", {"priority": "urgent"}) == "P4"  # not a priority: ignored


def test_priority_sla_defaults_and_override_deadlines() -> None:
    p = build_policy(sla={"P1": (600.0, None)})
    assert p.targets("P1").acknowledge == 600 and p.targets("P1").resolve == DEFAULT_SLA["P1"].resolve
    assert p.deadlines("P4", 1000.0) == (1000.0 + 86400, 1000.0 + 7 * 86400)
    assert (DEFAULT_SLA["P1"].acknowledge, DEFAULT_SLA["P1"].resolve) == (900, 4 * 3600)
