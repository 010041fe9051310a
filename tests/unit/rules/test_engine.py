"""The alert state machine, table-driven with explicit timestamps (no clock, no sleeping).

Each table row is (time, value or None for "no element", expected transitions "KIND:severity"...,
expected state after the step).
"""

from __future__ import annotations

import pytest
from hostwarden.agent.core.alert import AlertState
from hostwarden.rules.alerts import TransitionKind
from hostwarden.rules.engine import Observation, RuleState, percent_state_change, plain_threshold
from hostwarden.rules.model import Flap, Rule, Threshold
from hostwarden.rules.promql import compile_expr
from hostwarden.rules.templates import parse_template

LABELS = (("alertname", "T"), ("mountpoint", "/"))


def make_rule(*, expr: str = "x", for_: float = 0.0, keep: float = 0.0, warning: str | None = None,
              critical: str | None = None, clear: str | None = None, flap: Flap | None = None,
              labels: dict[str, str] | None = None, group_by: tuple[str, ...] | None = None) -> Rule:
    def thr(t: str | None) -> Threshold | None:
        if t is None:
            return None
        op, v = t.split()
        return Threshold(op, float(v))

    return Rule(kind="alert", name="T", expr=expr, compiled=compile_expr(expr), file="r.yaml", line=3, for_=for_,
                keep_firing_for=keep, labels=tuple((k, parse_template(v)) for k, v in (labels or {}).items()),
                warning=thr(warning), critical=thr(critical), clear=thr(clear), flap=flap, group_by=group_by,
                category="capacity")


def run_table(rule: Rule, table: list[tuple]) -> RuleState:
    state = RuleState(rule, group="g", external_labels={"host": "h1"})
    labels = tuple(sorted({**dict(LABELS), **{k: t.text for k, t in rule.labels}}.items()))  # as the manager does
    for row in table:
        t, value, expected, expected_state = row
        obs = [] if value is None else [Observation(labels, value)]
        got = [f"{tr.kind.value}:{tr.alert.severity}" for tr in state.step(t, obs)]
        assert got == list(expected), f"t={t} value={value}"
        states = [a.state.value for a in state.active()]
        assert (states[0] if states else "inactive") == expected_state, f"t={t} value={value}"
    return state


def test_rule_state_plain_rule_for_pending_then_firing_exactly_at_for() -> None:
    run_table(make_rule(for_=60), [
        (0, None, [], "inactive"),
        (15, 1.0, ["pending:warning"], "pending"),
        (30, 1.0, [], "pending"),
        (60, 1.0, [], "pending"),
        (75, 1.0, ["firing:warning"], "firing"),       # 75 - 15 >= 60
        (90, 1.0, [], "firing"),
        (105, None, ["resolved:warning"], "inactive"),
    ])


def test_rule_state_plain_rule_without_for_fires_at_first_evaluation() -> None:
    run_table(make_rule(labels={"severity": "critical"}), [
        (0, 5.0, ["firing:critical"], "firing"),
        (10, None, ["resolved:critical"], "inactive"),
        (20, 5.0, ["firing:critical"], "firing"),
    ])


def test_rule_state_pending_alert_whose_condition_stops_disappears_silently() -> None:
    run_table(make_rule(for_=60), [
        (0, 1.0, ["pending:warning"], "pending"),
        (30, None, [], "inactive"),
        (45, 1.0, ["pending:warning"], "pending"),    # active_since restarts
        (90, 1.0, [], "pending"),
        (105, 1.0, ["firing:warning"], "firing"),
    ])


def test_rule_state_keep_firing_for_holds_then_resolves() -> None:
    state = run_table(make_rule(keep=60), [
        (0, 1.0, ["firing:warning"], "firing"),
        (15, None, [], "firing"),                       # keep_firing_since = 15
        (60, None, [], "firing"),
        (75, None, ["resolved:warning"], "inactive"),   # 75 - 15 >= 60
        (90, 1.0, ["firing:warning"], "firing"),
        (105, None, [], "firing"),
        (120, 1.0, [], "firing"),                       # condition back: keep-firing clock reset
        (135, None, [], "firing"),
        (180, None, [], "firing"),
        (195, None, ["resolved:warning"], "inactive"),
    ])
    assert state.alerts == {}


def test_rule_state_thresholds_escalate_after_for_and_deescalate_at_once() -> None:
    run_table(make_rule(for_=30, warning="> 85", critical="> 95"), [
        (0, 50, [], "inactive"),
        (10, 90, ["pending:warning"], "pending"),
        (20, 97, [], "pending"),                        # critical since 20, alert pending since 10
        (40, 97, ["firing:warning"], "firing"),         # fires at 40 (for 30); critical held only 20 s
        (50, 97, ["escalated:critical"], "firing"),     # critical held 30 s
        (60, 90, ["deescalated:warning"], "firing"),
        (70, 97, [], "firing"),                         # critical again: needs `for` again
        (100, 97, ["escalated:critical"], "firing"),
        (110, 50, ["resolved:critical"], "inactive"),
    ])


def test_rule_state_thresholds_critical_only_rule_fires_critical() -> None:
    run_table(make_rule(critical="< 5"), [
        (0, 10, [], "inactive"),
        (10, 4, ["firing:critical"], "firing"),
        (20, 6, ["resolved:critical"], "inactive"),
    ])


def test_rule_state_clear_hysteresis_around_the_threshold() -> None:
    run_table(make_rule(warning="> 85", critical="> 95", clear="< 80"), [
        (0, 86, ["firing:warning"], "firing"),
        (10, 84, [], "firing"),                         # below warning, not below clear: held
        (20, 86, [], "firing"),
        (30, 82, [], "firing"),
        (40, 96, ["escalated:critical"], "firing"),
        (50, 84, ["deescalated:warning"], "firing"),    # critical → warning while clear does not hold
        (60, 79, ["resolved:warning"], "inactive"),
        (70, 84, [], "inactive"),                       # hysteresis only once firing
        (80, 86, ["firing:warning"], "firing"),
        (90, None, ["resolved:warning"], "inactive"),   # series gone: nothing to compare, resolves
    ])


def test_rule_state_clear_without_warning_level_holds_critical() -> None:
    run_table(make_rule(critical="< 5", clear=">= 10"), [
        (0, 4, ["firing:critical"], "firing"),
        (10, 9, [], "firing"),
        (20, 10, ["resolved:critical"], "inactive"),
    ])


def test_rule_state_flapping_holds_firing_until_it_settles() -> None:
    flap = Flap(window=5, high=0.5, low=0.25)
    run_table(make_rule(warning="> 0", flap=flap), [
        (0, 1, ["firing:warning"], "firing"),
        (60, 0, ["resolved:warning"], "inactive"),                   # 31 %: not flapping yet
        (120, 1, ["firing:warning", "flapping_start:warning"], "firing"),  # 58 %
        (180, 0, [], "firing"),                                      # held: no resolve churn
        (240, 1, [], "firing"),
        (300, 0, [], "firing"),
        (360, 0, [], "firing"),
        (420, 0, [], "firing"),                                      # 42 %: between low and high
        (480, 0, ["flapping_stop:warning", "resolved:warning"], "inactive"),  # 19 % < low
    ])


def test_rule_state_flapping_stop_reports_severity_change_since_flap_start() -> None:
    flap = Flap(window=5, high=0.5, low=0.25)
    state = run_table(make_rule(warning="> 10", critical="> 20", flap=flap), [
        (0, 15, ["firing:warning"], "firing"),
        (60, 5, ["resolved:warning"], "inactive"),
        (120, 15, ["firing:warning", "flapping_start:warning"], "firing"),
        (180, 5, [], "firing"),
        (240, 25, [], "firing"),                                     # severity changes silently
        (300, 25, [], "firing"),
        (360, 25, [], "firing"),
        (420, 25, ["flapping_stop:critical", "escalated:critical"], "firing"),
    ])
    (alert,) = state.active()
    assert not alert.flapping and alert.severity == "critical"


def test_rule_state_alert_fields_labels_identity_and_threshold() -> None:
    rule = make_rule(warning="> 0.85", critical="> 0.95", clear="< 0.8", group_by=("mountpoint",))
    state = RuleState(rule, group="g", external_labels={"host": "h1"})
    (tr,) = state.step(100, [Observation(LABELS, 0.97, (("summary", "s"),))])
    a = tr.alert
    assert tr.kind is TransitionKind.FIRING and tr.at == 100
    assert a.labels == (("alertname", "T"), ("mountpoint", "/"), ("severity", "critical"))
    assert a.identity == (("host", "h1"), ("mountpoint", "/"))
    assert (a.value, a.threshold, a.category, a.source, a.group) == (0.97, "> 0.95 (clears < 0.8)", "capacity",
                                                                     "r.yaml:3", "g")
    assert a.annotation("summary") == "s" and a.state is AlertState.FIRING and a.fired_at == 100


def test_rule_state_identity_excludes_severity_so_escalation_keeps_fingerprint() -> None:
    rule = make_rule(warning="> 1", critical="> 2")
    state = RuleState(rule, group="g", external_labels={})
    first = state.step(0, [Observation(LABELS, 1.5)])[0].alert
    second = state.step(10, [Observation(LABELS, 3)])[0].alert
    assert (first.severity, second.severity) == ("warning", "critical")
    assert first.fingerprint == second.fingerprint


def test_percent_state_change_nagios_weights() -> None:
    assert percent_state_change(["ok"], 21) == 0.0
    assert percent_state_change(["a", "b"] * 11, 21) == pytest.approx(1.0)
    # one change between the two newest of 21 entries weighs 1.25 / 20
    assert percent_state_change(["ok"] * 20 + ["bad"], 21) == pytest.approx(1.25 / 20)
    # the oldest transition weighs 0.75
    assert percent_state_change(["bad"] + ["ok"] * 20, 21) == pytest.approx(0.75 / 20)


@pytest.mark.parametrize(("expr", "text"), [
    ("up == 0", "== 0"), ("rate(x[5m]) > 0.9", "> 0.9"), ("(a / b) < bool 1e3", "< 1e3"), ("sum(x)", ""),
])
def test_plain_threshold_extracts_trailing_comparison(expr: str, text: str) -> None:
    assert plain_threshold(expr) == text
