from __future__ import annotations

import glob
import os

import pytest
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.yamlsrc import Loc
from hostwarden.rules.loader import load_rule_files, parse_threshold, scalar_loc
from hostwarden.rules.model import GroupKey, Threshold

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BROKEN = os.path.join(ROOT, "tests", "fixtures", "rules_broken")


def _load(tmp_path, text: str, name: str = "r.yaml") -> tuple[list, list[str]]:
    path = tmp_path / name
    path.write_text(text)
    errors = Errors()
    groups = load_rule_files([str(path)], errors, default_interval=15.0)
    return groups, [str(i).replace(str(path), name) for i in errors.issues]


def test_load_rule_files_broken_corpus_reports_exact_locations() -> None:
    with open(os.path.join(BROKEN, "expected.txt"), encoding="utf-8") as f:
        expected = [ln for ln in f.read().splitlines() if ln and not ln.startswith("#")]
    got = []
    for path in sorted(glob.glob(os.path.join(BROKEN, "*.yaml"))):
        errors = Errors()
        groups = load_rule_files([path], errors, default_interval=10.0)
        issues = sorted(errors.issues, key=lambda i: (i.loc.line, i.loc.col))
        assert issues, f"{path}: no problem reported"
        got += [str(i).replace(BROKEN + os.sep, "") for i in issues]
        assert all(g.rules == () or g.name for g in groups)
    assert got == expected


def test_load_rule_files_shipped_rules_load_cleanly() -> None:
    errors = Errors()
    groups = load_rule_files(sorted(glob.glob(os.path.join(ROOT, "config", "rules", "*.yaml"))), errors,
                             default_interval=10.0)
    assert errors.issues == []
    names = {r.name for g in groups for r in g.rules}
    assert {"HostHighCpuUsage", "HostHighMemoryUsage", "HostSwapUsage", "HostFilesystemSpace",
            "HostFilesystemFillingUp", "HostFilesystemInodes", "HostDiskIoSaturated", "HostHighLoad",
            "SystemdUnitFailed", "CheckDown", "CertificateExpiry", "BackupFileStale"} <= names
    for g in groups:
        for r in g.rules:
            keys = {k for k, _ in r.annotations}
            assert {"summary", "description", "runbook_url"} <= keys, r.name
            assert r.for_ > 0, r.name
            assert r.category, r.name
            assert r.clear is not None or r.keep_firing_for > 0 or r.name == "HostFilesystemFillingUp", r.name


def test_load_rule_files_prometheus_and_extension_rule_builds_model(tmp_path) -> None:
    groups, issues = _load(tmp_path, """
groups:
  - name: g
    interval: 30s
    limit: 10
    rules:
      - alert: Mem
        expr: hostwarden_memory_used_ratio
        warning: "> 0.85"
        critical: ">= 0.95"
        clear: "< 0.8"
        for: 5m
        keep_firing_for: 1m
        flap: {window: 11}
        group_by: [host]
        category: capacity
        labels: {team: ops}
        annotations: {summary: "{{ $value }}"}
      - record: job:x:sum
        expr: sum(x)
""")
    assert issues == []
    (g,) = groups
    assert (g.name, g.interval, g.limit, g.line) == ("g", 30.0, 10, 3)
    alert, record = g.rules
    assert alert.kind == "alert" and alert.extended and alert.source.endswith("r.yaml:7")
    assert alert.warning == Threshold(">", 0.85) and alert.critical == Threshold(">=", 0.95)
    assert alert.clear == Threshold("<", 0.8)
    assert (alert.for_, alert.keep_firing_for) == (300.0, 60.0)
    assert alert.flap is not None and (alert.flap.window, alert.flap.high, alert.flap.low) == (11, 0.5, 0.25)
    assert alert.group_by == ("host",) and alert.category == "capacity"
    assert record.kind == "record" and record.name == "job:x:sum" and not record.extended


def test_load_rule_files_default_interval_and_empty_file(tmp_path) -> None:
    groups, issues = _load(tmp_path, "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up == 0\n")
    assert issues == [] and groups[0].interval == 15.0
    groups, issues = _load(tmp_path, "", "empty.yaml")
    assert (groups, issues) == ([], [])


def test_load_rule_files_same_group_name_in_two_files_loads_both_with_distinct_keys(tmp_path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("groups:\n  - name: same\n    rules:\n      - {alert: A, expr: up == 0}\n")
    b.write_text("groups:\n  - name: same\n    rules:\n      - {alert: B, expr: up == 1}\n")
    errors = Errors()
    groups = load_rule_files([str(a), str(b)], errors, default_interval=10.0)
    assert errors.issues == []
    assert [(g.name, g.file, [r.name for r in g.rules]) for g in groups] == [("same", str(a), ["A"]),
                                                                             ("same", str(b), ["B"])]
    assert groups[0].key == GroupKey(str(a), "same") != groups[1].key
    assert str(groups[0].key) == f"{a};same" and GroupKey.parse(str(groups[1].key)) == groups[1].key


def test_load_rule_files_same_group_name_twice_in_one_file_is_an_error(tmp_path) -> None:
    groups, issues = _load(tmp_path, "groups:\n  - name: same\n    rules: []\n  - name: same\n    rules: []\n")
    assert issues == ["r.yaml:4:11: group 'same' is defined twice in this file (first at line 2)"]
    assert [g.name for g in groups] == ["same"]


def test_load_rule_files_file_listed_twice_loads_once(tmp_path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("groups:\n  - name: g\n    rules: []\n")
    errors = Errors()
    groups = load_rule_files([str(a), str(a)], errors, default_interval=10.0)
    assert errors.issues == [] and len(groups) == 1


def test_load_rule_files_same_alert_name_and_labels_twice_in_a_group_loads_both(tmp_path) -> None:
    groups, issues = _load(tmp_path, """
groups:
  - name: g
    rules:
      - {alert: Disk, expr: d > 0.9, labels: {severity: warning}}
      - {alert: Disk, expr: d2 > 0.9, labels: {severity: warning}}
""")
    assert issues == [] and [r.expr for r in groups[0].rules] == ["d > 0.9", "d2 > 0.9"]


def test_load_rule_files_alert_names_repeat_with_different_severity_labels(tmp_path) -> None:
    groups, issues = _load(tmp_path, """
groups:
  - name: g
    rules:
      - {alert: Disk, expr: d > 0.9, labels: {severity: warning}}
      - {alert: Disk, expr: d > 0.95, labels: {severity: critical}}
""")
    assert issues == [] and len(groups[0].rules) == 2


def test_load_rule_files_missing_file_reported(tmp_path) -> None:
    errors = Errors()
    load_rule_files([str(tmp_path / "nope.yaml")], errors, default_interval=10.0)
    assert [i.message for i in errors.issues] == ["cannot read rule file: No such file or directory"]


@pytest.mark.parametrize(("text", "expected"), [
    ("> 0.95", Threshold(">", 0.95)), (">=90", Threshold(">=", 90.0)), (" < -1e3 ", Threshold("<", -1000.0)),
    ("== 0", Threshold("==", 0.0)), ("!= 1", Threshold("!=", 1.0)), ("<= .5", Threshold("<=", 0.5)),
])
def test_parse_threshold_valid_forms_parse(text: str, expected: Threshold) -> None:
    assert parse_threshold(text) == expected


@pytest.mark.parametrize("text", ["> abc", "0.9", "=> 1", ">", "> 1 2", True, None])
def test_parse_threshold_invalid_forms_raise(text: object) -> None:
    with pytest.raises(ValueError, match="bad threshold"):
        parse_threshold(text)


def test_threshold_holds_nan_never() -> None:
    assert not Threshold(">", 0).holds(float("nan")) and not Threshold("!=", 0).holds(float("nan"))


def test_scalar_loc_plain_quoted_and_block_scalars_map_offsets() -> None:
    lines = [
        "a: sum(x) by (y",                 # plain, starts at col 4
        'b: "x{a=\\"1\\"} >> 1"',           # double-quoted with escapes
        "c: 'x{a=''1''} == == 0'",         # single-quoted with doubled quotes
        "d: |",                            # literal block
        "    first(",
        "      second >> 1",
    ]
    assert scalar_loc(lines, Loc("f", 1, 4), "sum(x) by (y", 10) == Loc("f", 1, 14)
    value_b = 'x{a="1"} >> 1'
    assert scalar_loc(lines, Loc("f", 2, 4), value_b, value_b.index(">")) == Loc("f", 2, 16)
    value_c = "x{a='1'} == == 0"
    assert scalar_loc(lines, Loc("f", 3, 4), value_c, value_c.index("==")) == Loc("f", 3, 16)
    value_d = "first(\n  second >> 1\n"
    assert scalar_loc(lines, Loc("f", 4, 4), value_d, value_d.index("second")) == Loc("f", 6, 7)
    assert scalar_loc(lines, Loc("f", 4, 4), value_d, value_d.index(">")) == Loc("f", 6, 14)


def test_scalar_loc_folded_plain_scalar_maps_to_the_continuation_line() -> None:
    lines = ["expr: rate(x[5m])", "  > bad(1)"]
    value = "rate(x[5m]) > bad(1)"
    assert scalar_loc(lines, Loc("f", 1, 7), value, value.index("bad")) == Loc("f", 2, 5)
