"""Rule groups keyed by (file, name), rules with the same alert name and labels, template queries in the
rule manager: everything a Prometheus rule file may do that hostwarden used to reject or conflate."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hostwarden.agent.core.alert import AlertState, fingerprint
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.store import SeriesStore, is_stale
from hostwarden.rules.alerts import TransitionKind
from hostwarden.rules.export import export_groups
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import DUPLICATE_SAMPLE, RuleManager
from hostwarden.rules.model import GroupKey

GROUP_A = """
groups:
  - name: EmbeddedExporter
    rules:
      - alert: Down
        expr: up{job="a"} == 0
        labels: {severity: critical}
"""
GROUP_B = GROUP_A.replace('job="a"', 'job="b"')


def load_files(tmp_path: Path, **files: str) -> list:
    paths = []
    for name, text in files.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(text)
        paths.append(str(p))
    errors = Errors()
    groups = load_rule_files(paths, errors, default_interval=15.0)
    assert not errors.issues, errors.issues
    return groups


def store_with(points: dict[tuple[str, tuple], list[tuple[float, float]]]) -> SeriesStore:
    store = SeriesStore()
    store.set_retention({}, all_names=math.inf)
    for (name, labels), pts in points.items():
        store.load_series(name, labels, pts)
    return store


def up_store(a: float, b: float, t: float = 1000.0) -> SeriesStore:
    return store_with({("up", (("job", "a"),)): [(t, a)], ("up", (("job", "b"),)): [(t, b)]})


def test_group_key_str_is_prometheus_file_semicolon_name_and_parses_back() -> None:
    key = GroupKey("/etc/hostwarden/rules/a.yaml", "g;with;semicolons")
    assert str(key) == "/etc/hostwarden/rules/a.yaml;g;with;semicolons"
    assert GroupKey.parse(str(key)) == key
    assert sorted([GroupKey("b", "x"), GroupKey("a", "y")])[0] == GroupKey("a", "y")


def test_manager_same_group_name_in_two_files_evaluates_and_counts_each(tmp_path: Path) -> None:
    a, b = load_files(tmp_path, a=GROUP_A, b=GROUP_B)
    m = RuleManager([a, b], external_labels={})
    store = up_store(0, 0)
    fired = m.evaluate(a, store, 1000) + m.evaluate(b, store, 1010)
    assert sorted((t.alert.label("job"), t.kind) for t in fired) == [("a", TransitionKind.FIRING),
                                                                    ("b", TransitionKind.FIRING)]
    selfs = {(s.name, s.labels): s.value for s in m.self_samples()}
    for g, t in ((a, 1000), (b, 1010)):
        lb = (("file", g.file), ("group", "EmbeddedExporter"))
        assert selfs[("hostwarden_rule_group_last_evaluation_timestamp_seconds", lb)] == t
        assert selfs[("hostwarden_rule_group_rules", lb)] == 1


def test_manager_alerts_bookkeeping_per_group_key_marks_only_own_series_stale(tmp_path: Path) -> None:
    a, b = load_files(tmp_path, a=GROUP_A, b=GROUP_B)
    m = RuleManager([a, b], external_labels={})
    store = up_store(0, 0)
    m.evaluate(a, store, 1000)
    m.evaluate(b, store, 1000)
    store.load_series("up", (("job", "a"),), [(1015.0, 1.0)])
    m.evaluate(a, store, 1015)  # a's alert resolves; b's ALERTS series must not be touched by a's group
    alerts_a = store.get("ALERTS", (("alertname", "Down"), ("alertstate", "firing"), ("job", "a"),
                                    ("severity", "critical")))
    alerts_b = store.get("ALERTS", (("alertname", "Down"), ("alertstate", "firing"), ("job", "b"),
                                    ("severity", "critical")))
    assert alerts_a is not None and is_stale(alerts_a.vals[-1])
    assert alerts_b is not None and list(alerts_b.vals) == [1.0]


def test_manager_export_restore_state_keeps_groups_of_the_same_name_apart(tmp_path: Path) -> None:
    a, b = load_files(tmp_path, a=GROUP_A, b=GROUP_B)
    m = RuleManager([a, b], external_labels={})
    m.evaluate(b, up_store(1, 0), 1000)  # only b's alert fires
    rows = json.loads(json.dumps(m.export_state()))
    assert [(r["file"], r["group"], r["rule"]) for r in rows] == [(b.file, "EmbeddedExporter", "Down")]
    fresh = RuleManager(load_files(tmp_path, a=GROUP_A, b=GROUP_B), external_labels={})
    fresh.restore_state(rows, 1010)
    (alert,) = fresh.active_alerts()
    assert alert.label("job") == "b" and alert.state is AlertState.FIRING
    # restored into b's group, not a's: b evaluating "still firing" gives nothing new, a nothing at all
    assert fresh.evaluate(fresh.groups[0], up_store(1, 0, 1020), 1020) == []
    assert fresh.evaluate(fresh.groups[1], up_store(1, 0, 1020), 1020) == []


def test_manager_restore_state_rows_saved_before_file_keys_restore_into_first_group(tmp_path: Path) -> None:
    (a,) = load_files(tmp_path, a=GROUP_A)
    m = RuleManager([a], external_labels={})
    m.evaluate(a, up_store(0, 1), 1000)
    rows = [{k: v for k, v in r.items() if k != "file"} for r in m.export_state()]  # an older version's rows
    fresh = RuleManager(load_files(tmp_path, a=GROUP_A), external_labels={})
    fresh.restore_state(rows, 1010)
    assert [(x.label("job"), x.state) for x in fresh.active_alerts()] == [("a", AlertState.FIRING)]
    assert fresh.evaluate(fresh.groups[0], up_store(0, 1, 1020), 1020) == []  # no second FIRING


DUPLICATES = """
groups:
  - name: g
    rules:
      - alert: HighLoad
        expr: load{window="1m"} > 2
        labels: {severity: warning}
      - alert: HighLoad
        expr: load{window="1m"} * 2 > 2
        labels: {severity: warning}
"""


def test_manager_same_alert_name_and_labels_twice_are_two_incidents(tmp_path: Path) -> None:
    (g,) = load_files(tmp_path, r=DUPLICATES)
    m = RuleManager([g], external_labels={"host": "h"})
    out = m.evaluate(g, store_with({("load", (("window", "1m"),)): [(1000.0, 3.0)]}), 1000)
    assert [t.kind for t in out] == [TransitionKind.FIRING, TransitionKind.FIRING]
    first, second = (t.alert for t in out)
    assert first.labels == second.labels and first.identity == second.identity
    # the first rule keeps the plain fingerprint (existing incidents stay theirs), the second is told apart
    assert first.discriminator == "" and first.fingerprint == fingerprint("HighLoad", first.identity)
    assert second.discriminator == f"{g.key};1" and second.fingerprint != first.fingerprint
    # both alerts' ALERTS series is one series, exposed once
    names = [(s.name, s.labels) for s in m.alert_samples(1000)]
    assert len(names) == len(set(names)) == 2


def test_manager_duplicate_rules_discriminator_stable_across_reload(tmp_path: Path) -> None:
    (g,) = load_files(tmp_path, r=DUPLICATES)
    m = RuleManager([g], external_labels={})
    store = store_with({("load", (("window", "1m"),)): [(1000.0, 3.0)]})
    fps = [t.alert.fingerprint for t in m.evaluate(g, store, 1000)]
    m.replace_groups(load_files(tmp_path, r=DUPLICATES))
    assert sorted(a.fingerprint for a in m.active_alerts()) == sorted(fps)


def test_manager_colliding_alerts_for_state_is_the_later_rules_error_alerts_kept(tmp_path: Path) -> None:
    (g,) = load_files(tmp_path, r="""
groups:
  - name: g
    rules:
      - {alert: QueueHigh, expr: queue_a > 2}
      - {alert: QueueHigh, expr: queue_b > 2}
""")
    m = RuleManager([g], external_labels={})
    store = store_with({("queue_a", ()): [(1000.0, 3.0), (1060.0, 3.0)],
                        ("queue_b", ()): [(1000.0, 1.0), (1060.0, 3.0)]})
    m.evaluate(g, store, 1000)
    m.evaluate(g, store, 1060)
    assert [(r.expr, e) for r, e in m.rule_errors(g)] == [("queue_b > 2", DUPLICATE_SAMPLE)]
    assert len(m.active_alerts()) == 2  # the alerts themselves are fine, as in Prometheus
    for_state = store.get("ALERTS_FOR_STATE", (("alertname", "QueueHigh"),))
    assert for_state is not None and for_state.vals[-1] == 1000.0  # the first rule's sample is kept
    selfs = {s.name: s.value for s in m.self_samples() if s.name.endswith("failures_total")}
    assert selfs["hostwarden_rule_evaluation_failures_total"] == 0  # health, not an evaluation failure


QUERY_RULES = """
groups:
  - name: q
    rules:
      - alert: Down
        expr: up == 0
        annotations:
          total: '{{ query "count(up)" | first | value }}'
          at: '{{ query "time()" | first | value }}'
          others: '{{ range query "other_metric" }}{{ .Labels.k }}{{ end }}'
          dynamic: '{{ query (printf "up{job=%q}" $labels.job) | first | value }}'
          bad: '{{ query "rate(up)" }}'
"""


def test_manager_template_query_evaluates_over_the_store_at_evaluation_time(tmp_path: Path) -> None:
    (g,) = load_files(tmp_path, r=QUERY_RULES)
    m = RuleManager([g], external_labels={})
    store = store_with({("up", (("job", "a"),)): [(1000.0, 0.0)], ("up", (("job", "b"),)): [(1000.0, 1.0)],
                        ("other_metric", (("k", "v"),)): [(1000.0, 5.0)]})
    (t,) = m.evaluate(g, store, 1030)
    ann = dict(t.alert.annotations)
    assert ann["total"] == "2" and ann["at"] == "1030" and ann["others"] == "v" and ann["dynamic"] == "0"
    assert ann["bad"].startswith("<error expanding template: error calling query: ")


def test_manager_retention_keeps_metrics_of_literal_template_queries(tmp_path: Path) -> None:
    (g,) = load_files(tmp_path, r=QUERY_RULES)
    by_name, all_names = RuleManager([g], external_labels={}).retention()
    assert {"up", "other_metric"} <= set(by_name) and all_names is None


def test_export_renames_a_group_name_repeated_across_files(tmp_path: Path) -> None:
    groups = load_files(tmp_path, a=GROUP_A, b=GROUP_B)
    text = export_groups(groups)
    assert '- name: "EmbeddedExporter"' in text and '- name: "EmbeddedExporter (b.yaml)"' in text


def test_manager_reload_changing_a_rules_discriminator_resolves_its_old_fingerprint(tmp_path: Path) -> None:
    one = "groups:\n  - name: g\n    rules:\n      - {alert: HighLoad, expr: 'load > 2'}\n"
    (g,) = load_files(tmp_path, r=one)
    m = RuleManager([g], external_labels={})
    store = store_with({("load", ()): [(1000.0, 3.0), (1015.0, 3.0)]})
    (fired,) = m.evaluate(g, store, 1000)
    # a rule with the same name and labels is inserted before it: the old rule becomes the second one
    two = one.replace("    rules:\n", "    rules:\n      - {alert: HighLoad, expr: 'load > 1'}\n")
    (g2,) = load_files(tmp_path, r=two)
    m.replace_groups([g2])
    out = m.evaluate(g2, store, 1015)
    kinds = [(t.kind, t.alert.fingerprint) for t in out]
    assert kinds[0] == (TransitionKind.RESOLVED, fired.alert.fingerprint)  # nothing left open under the old one
    assert [k for k, _ in kinds[1:]] == [TransitionKind.FIRING, TransitionKind.FIRING]
    assert {fp for _, fp in kinds[1:]} == {fired.alert.fingerprint, out[2].alert.fingerprint}
    assert out[1].alert.fingerprint != out[2].alert.fingerprint


def test_manager_restore_state_with_another_discriminator_resolves_the_saved_alert(tmp_path: Path) -> None:
    (g,) = load_files(tmp_path, r=DUPLICATES)
    m = RuleManager([g], external_labels={})
    m.evaluate(g, store_with({("load", (("window", "1m"),)): [(1000.0, 3.0)]}), 1000)
    rows = json.loads(json.dumps(m.export_state()))
    second = next(r for r in rows if r["alert"]["discriminator"])
    second["alert"]["discriminator"] = "elsewhere;g;7"  # saved when the rule sat somewhere else
    fresh = RuleManager(load_files(tmp_path, r=DUPLICATES), external_labels={})
    fresh.restore_state(rows, 1010)
    assert len(fresh.active_alerts()) == 1
    out = fresh.evaluate(fresh.groups[0], store_with({("load", (("window", "1m"),)): [(1020.0, 3.0)]}), 1020)
    assert [t.kind for t in out] == [TransitionKind.RESOLVED, TransitionKind.FIRING]
    assert out[0].alert.discriminator == "elsewhere;g;7" and out[1].alert.discriminator == f"{g.key};1"
