from __future__ import annotations

import json
import logging
import math

import pytest
from hostwarden.agent.core.alert import AlertState
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.store import STALE_NAN, SeriesStore, is_stale
from hostwarden.rules.alerts import TransitionKind
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import RuleManager

RULES = """
groups:
  - name: host
    rules:
      - record: fs:used:ratio
        expr: 1 - avail / size
      - alert: DiskFull
        expr: fs:used:ratio
        warning: "> 0.85"
        critical: "> 0.95"
        for: 1m
        labels:
          team: "{{ $labels.mountpoint }}-owners"
        annotations:
          summary: "{{ $labels.mountpoint }} on {{ $externalLabels.host }} is {{ $value | humanizePercentage }} full"
      - alert: Down
        expr: up == 0
        labels: {severity: critical}
"""


def load(tmp_path, text: str = RULES):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    errors = Errors()
    groups = load_rule_files([str(path)], errors, default_interval=15.0)
    assert not errors.issues, errors.issues
    return groups


def store_with(points: dict[tuple[str, tuple], list[tuple[float, float]]]) -> SeriesStore:
    store = SeriesStore()
    store.set_retention({}, all_names=math.inf)
    for (name, labels), pts in points.items():
        store.load_series(name, labels, pts)
    return store


MP = (("mountpoint", "/data"),)


def disk_store(used: list[float], start: float = 1000.0, step: float = 15.0) -> SeriesStore:
    return store_with({
        ("avail", MP): [(start + i * step, 100 * (1 - u)) for i, u in enumerate(used)],
        ("size", MP): [(start + i * step, 100.0) for i in range(len(used))],
        ("up", (("job", "a"),)): [(start + i * step, 1.0) for i in range(len(used))],
    })


def test_rule_manager_evaluate_records_then_alerts_with_templates(tmp_path) -> None:
    groups = load(tmp_path)
    m = RuleManager(groups, external_labels={"host": "web-01"})
    store = disk_store([0.9] * 6)
    kinds = []
    for i in range(6):
        kinds += [(t.kind, t.at) for t in m.evaluate(groups[0], store, 1000 + i * 15)]
    assert kinds == [(TransitionKind.PENDING, 1000), (TransitionKind.FIRING, 1060)]
    (alert,) = m.active_alerts()
    assert alert.labels == (("alertname", "DiskFull"), ("mountpoint", "/data"), ("severity", "warning"),
                            ("team", "/data-owners"))
    assert alert.annotation("summary") == "/data on web-01 is 90% full"
    assert alert.identity == (("alertname", "DiskFull"), ("host", "web-01"), ("mountpoint", "/data"),
                              ("team", "/data-owners"))
    # the recording rule's output went back to the store at the evaluation time
    series = store.get("fs:used:ratio", MP)
    assert series is not None and list(series.ts)[-1] == 1075 and series.vals[-1] == pytest.approx(0.9)


def test_rule_manager_alert_and_self_samples_as_prometheus_exposes(tmp_path) -> None:
    groups = load(tmp_path)
    m = RuleManager(groups, external_labels={})
    store = disk_store([0.97])
    store.load_series("up", (("job", "b"),), [(1000.0, 0.0)])
    m.evaluate(groups[0], store, 1000)
    got = {(s.name, s.labels): s.value for s in m.alert_samples(1000)}
    assert got == {
        ("ALERTS", (("alertname", "DiskFull"), ("alertstate", "pending"), ("mountpoint", "/data"),
                    ("severity", "warning"), ("team", "/data-owners"))): 1.0,
        ("ALERTS_FOR_STATE", (("alertname", "DiskFull"), ("mountpoint", "/data"), ("severity", "warning"),
                              ("team", "/data-owners"))): 1000.0,
        ("ALERTS", (("alertname", "Down"), ("alertstate", "firing"), ("job", "b"), ("severity", "critical"))): 1.0,
        ("ALERTS_FOR_STATE", (("alertname", "Down"), ("job", "b"), ("severity", "critical"))): 1000.0,
    }
    # the same series are in the store, so rules and rule tests can query ALERTS
    assert store.get("ALERTS", (("alertname", "Down"), ("alertstate", "firing"), ("job", "b"),
                                ("severity", "critical"))) is not None
    selfs = {(s.name, s.labels): s.value for s in m.self_samples()}
    lb = (("file", groups[0].file), ("group", "host"))
    assert selfs[("hostwarden_rule_evaluation_failures_total", lb)] == 0
    assert selfs[("hostwarden_rule_group_last_evaluation_timestamp_seconds", lb)] == 1000
    assert selfs[("hostwarden_rule_group_rules", lb)] == 3
    assert selfs[("hostwarden_rule_evaluation_duration_seconds", lb)] >= 0
    assert selfs[("hostwarden_rule_alerts", (("state", "pending"),))] == 1
    assert selfs[("hostwarden_rule_alerts", (("state", "firing"),))] == 1


def test_rule_manager_recorded_series_goes_stale_when_source_disappears(tmp_path) -> None:
    groups = load(tmp_path)
    m = RuleManager(groups, external_labels={})
    store = disk_store([0.5])
    m.evaluate(groups[0], store, 1000)
    store.load_series("avail", MP, [(1003.0, STALE_NAN)])
    store.load_series("size", MP, [(1003.0, STALE_NAN)])
    m.evaluate(groups[0], store, 1015)
    series = store.get("fs:used:ratio", MP)
    assert series is not None and list(series.ts)[-1] == 1015 and is_stale(series.vals[-1])


def test_rule_manager_failures_counted_logged_once_and_state_kept(tmp_path, caplog) -> None:
    groups = load(tmp_path, """
groups:
  - name: g
    rules:
      - alert: Dup
        expr: x > 0
        labels: {mode: same}
      - alert: Fine
        expr: y > 0
""")
    m = RuleManager(groups, external_labels={})
    store = store_with({("x", (("mode", "a"),)): [(1000.0, 1.0)], ("y", ()): [(1000.0, 1.0)]})
    assert [t.kind for t in m.evaluate(groups[0], store, 1000)] == [TransitionKind.FIRING, TransitionKind.FIRING]
    store.load_series("x", (("mode", "b"),), [(1010.0, 1.0)])  # two series collapse to one label set
    with caplog.at_level(logging.WARNING, logger="hostwarden.rules.manager"):
        for t in (1015, 1030):
            assert m.evaluate(groups[0], store, t) == []
    assert len([r for r in caplog.records if "Dup" in r.getMessage()]) == 1
    assert "same labelset" in m.rule_errors(groups[0])[0][1]
    failures = {s.labels: s.value for s in m.self_samples() if s.name.endswith("failures_total")}
    assert failures == {(("file", groups[0].file), ("group", "g")): 2.0}
    assert {a.rule for a in m.active_alerts()} == {"Dup", "Fine"}  # the failing rule keeps its state


def test_rule_manager_group_limit_exceeded_is_a_failure(tmp_path) -> None:
    groups = load(tmp_path, "groups:\n  - name: g\n    limit: 1\n    rules:\n      - {alert: A, expr: x > 0}\n")
    m = RuleManager(groups, external_labels={})
    store = store_with({("x", (("i", "1"),)): [(0.0, 1.0)], ("x", (("i", "2"),)): [(0.0, 1.0)]})
    assert m.evaluate(groups[0], store, 10) == []
    assert m.rule_errors(groups[0])[0][1] == "exceeded limit of 1 with 2 alerts"


def test_rule_manager_retention_covers_ranges_and_diagnosis_window(tmp_path) -> None:
    groups = load(tmp_path, """
groups:
  - name: g
    rules:
      - {alert: A, expr: "rate(c[15m]) > 1"}
      - {alert: B, expr: "g > 1"}
      - {alert: C, expr: "predict_linear(d[1h] offset 5m, 3600) < 0"}
      - {alert: D, expr: '{__name__=~"node_.*"} > 1'}
""")
    by_name, all_names = RuleManager(groups, external_labels={}).retention()
    assert by_name == {"c": 1200.0, "g": 600.0, "d": 4200.0}
    assert all_names == 600.0


def test_rule_manager_replace_groups_keeps_unchanged_and_resolves_changed(tmp_path) -> None:
    groups = load(tmp_path)
    m = RuleManager(groups, external_labels={})
    store = disk_store([0.97] * 6)
    store.load_series("up", (("job", "b"),), [(1000.0 + i * 15, 0.0) for i in range(6)])
    for i in range(6):
        m.evaluate(groups[0], store, 1000 + i * 15)
    assert {a.rule: a.state for a in m.active_alerts()} == {"DiskFull": AlertState.FIRING, "Down": AlertState.FIRING}
    # Down's expr changes; DiskFull only gets another annotation (its state survives)
    changed = RULES.replace("up == 0", "up < 1").replace("summary:", "other: x\n          summary:")
    new_groups = load(tmp_path, changed)
    m.replace_groups(new_groups)
    out = m.evaluate(new_groups[0], store, 1075)
    kinds = sorted((t.alert.rule, t.kind.value) for t in out)
    assert kinds == [("Down", "firing"), ("Down", "resolved")]  # the old Down resolves, the new one fires
    assert next(t for t in out if t.kind is TransitionKind.RESOLVED).details == {"reason": "rule removed or changed"}
    assert {a.rule for a in m.active_alerts() if a.state is AlertState.FIRING} == {"DiskFull", "Down"}


def test_rule_manager_restore_state_does_not_refire_or_resolve(tmp_path) -> None:
    groups = load(tmp_path)
    m = RuleManager(groups, external_labels={"host": "h"})
    store = disk_store([0.97] * 6)
    for i in range(6):
        m.evaluate(groups[0], store, 1000 + i * 15)
    rows = json.loads(json.dumps(m.export_state()))  # through JSON, as the state database stores it
    assert rows and rows[0]["state"] == "firing"

    restarted = RuleManager(load(tmp_path), external_labels={"host": "h"})
    restarted.restore_state(rows, 1200)
    (alert,) = restarted.active_alerts()
    assert alert.state is AlertState.FIRING and alert.fired_at == 1060 and alert.active_since == 1000
    more = disk_store([0.97] * 20)
    assert restarted.evaluate(restarted.groups[0], more, 1210) == []         # still firing: nothing new
    low = disk_store([0.5] * 30)
    assert [t.kind for t in restarted.evaluate(restarted.groups[0], low, 1435)] == [TransitionKind.RESOLVED]


def test_rule_manager_restore_state_pending_after_long_outage_dropped(tmp_path) -> None:
    groups = load(tmp_path)
    m = RuleManager(groups, external_labels={})
    m.evaluate(groups[0], disk_store([0.97]), 1000)
    rows = m.export_state()
    assert [r["state"] for r in rows] == ["pending"]
    fresh = RuleManager(load(tmp_path), external_labels={})
    fresh.restore_state(rows, 1000 + 3601)
    assert fresh.active_alerts() == []
    again = RuleManager(load(tmp_path), external_labels={})
    again.restore_state(rows, 1030)
    assert [a.active_since for a in again.active_alerts()] == [1000]


def test_rule_manager_restore_state_of_removed_rule_resolves_at_next_evaluation(tmp_path) -> None:
    groups = load(tmp_path)
    m = RuleManager(groups, external_labels={})
    store = disk_store([0.5])
    store.load_series("up", (("job", "b"),), [(1000.0, 0.0)])
    m.evaluate(groups[0], store, 1000)
    rows = m.export_state()
    other = load(tmp_path, "groups:\n  - name: other\n    rules:\n      - {alert: X, expr: nothing > 0}\n")
    fresh = RuleManager(other, external_labels={})
    fresh.restore_state([*rows, {"garbage": True}], 1100)
    out = fresh.evaluate(other[0], store, 1100)
    assert [(t.alert.rule, t.kind) for t in out] == [("Down", TransitionKind.RESOLVED)]


def test_rule_manager_plain_rule_severity_from_templated_label(tmp_path) -> None:
    groups = load(tmp_path, """
groups:
  - name: g
    rules:
      - alert: Temp
        expr: temp > 30
        labels:
          severity: '{{ if gt $value 40.0 }}critical{{ else }}warning{{ end }}'
      - alert: NoSeverity
        expr: temp > 0
""")
    m = RuleManager(groups, external_labels={})
    store = store_with({("temp", (("room", "a"),)): [(0.0, 45.0)], ("temp", (("room", "b"),)): [(0.0, 35.0)]})
    m.evaluate(groups[0], store, 10)
    got = sorted((a.rule, a.label("room"), a.severity, a.label("severity", "-")) for a in m.active_alerts())
    assert got == [("NoSeverity", "a", "warning", "-"), ("NoSeverity", "b", "warning", "-"),
                   ("Temp", "a", "critical", "critical"), ("Temp", "b", "warning", "warning")]


PAUSE_RULES = """
groups:
  - name: p
    interval: 10s
    rules:
      - alert: Always
        expr: vector(1)
        for: 1m
"""


@pytest.mark.parametrize(
    ("times", "fires_at"),
    [
        ([0, 10, 20, 30, 40, 50, 60, 70], 60),  # regular evaluations: fires when `for` has elapsed
        ([0, 10, 310, 320, 330, 340, 350, 360], 350),  # the 300 s stop counts as one interval (10 s)
    ],
)
def test_manager_missed_evaluations_not_counted_toward_for(tmp_path, times: list[int], fires_at: int) -> None:
    mgr = RuleManager(load(tmp_path, PAUSE_RULES), external_labels={"host": "h"})
    group = mgr.groups[0]
    store = SeriesStore()
    fired = [t for t in times
             if any(tr.kind is TransitionKind.FIRING for tr in mgr.evaluate(group, store, float(t)))]
    assert fired == [fires_at]
