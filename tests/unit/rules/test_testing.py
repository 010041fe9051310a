from __future__ import annotations

import glob
import io
import math
import os

import pytest
from hostwarden.agent.cli import main
from hostwarden.agent.core.store import is_stale
from hostwarden.rules.testing import RuleTestError, expand_values, parse_series_selector, run_test_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RULE_TESTS = os.path.join(ROOT, "tests", "rules")


def run(path: str, compat: int = 3) -> tuple[int, str]:
    out = io.StringIO()
    return run_test_files([path], out=out, promql_compat=compat), out.getvalue()


@pytest.mark.parametrize(("text", "expected"), [
    ("1 2 3", [1, 2, 3]),
    ("0+10x3", [0, 10, 20, 30]),
    ("10-2x2 _ 7", [10, 8, 6, None, 7]),
    ("1x2", [1, 1, 1]),
    ("_x3 4", [None, None, None, 4]),
    ("-1.5+0.5x2", [-1.5, -1.0, -0.5]),
    ("1e3 Inf -Inf", [1000, math.inf, -math.inf]),
])
def test_expand_values_promtool_notation(text: str, expected: list) -> None:
    assert expand_values(text) == expected


def test_expand_values_stale_and_accumulated_float_steps() -> None:
    values = expand_values("1 stale 0+0.1x3")
    assert values[0] == 1 and is_stale(values[1])
    assert values[2:] == [0, 0.1, 0.2, 0.30000000000000004]  # accumulated, as Prometheus' parser does


def test_expand_values_garbage_raises() -> None:
    with pytest.raises(RuleTestError, match="invalid value 'abc'"):
        expand_values("1 abc")


def test_parse_series_selector_name_and_labels() -> None:
    assert parse_series_selector('up{job="a", instance="x:1"}') == (
        "up", (("__name__", "up"), ("instance", "x:1"), ("job", "a")))
    assert parse_series_selector('{__name__="m", a="b"}') == ("m", (("__name__", "m"), ("a", "b")))
    with pytest.raises(RuleTestError, match="only = matchers"):
        parse_series_selector('up{job=~"a"}')


def test_run_test_files_extension_rules_pass() -> None:
    code, out = run(os.path.join(RULE_TESTS, "extensions", "thresholds.test.yaml"))
    assert code == 0, out
    assert out.endswith("  SUCCESS\n\n")


def test_run_test_files_shipped_rules_pass() -> None:
    code, out = run(os.path.join(RULE_TESTS, "shipped", "shipped.test.yaml"))
    assert code == 0, out


def test_run_test_files_failure_prints_readable_diff() -> None:
    code, out = run(os.path.join(RULE_TESTS, "extensions", "fail_thresholds.test.yaml"))
    assert code == 1
    assert "  FAILED:\n    alertname: DiskFull, time: 4m,\n        exp:[]\n" in out
    assert '+ unexpected: {alertname="DiskFull", mountpoint="/", severity="warning"} {summary="/ is 82% full"}' in out


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(RULE_TESTS, "parity", "*.test.yaml"))),
                         ids=os.path.basename)
def test_run_test_files_parity_corpus_verdicts_in_prometheus_2_mode(path: str) -> None:
    """The verdicts promtool gives (checked against the real promtool in tests/integration)."""
    expected = 1 if os.path.basename(path).startswith("fail_") else 0
    code, out = run(path, compat=2)
    assert code == expected, out


def test_run_test_files_expr_test_diff_shows_values(tmp_path) -> None:
    (tmp_path / "t.yaml").write_text("""
tests:
  - input_series:
      - {series: 'x{a="1"}', values: '1 2'}
    promql_expr_test:
      - expr: x * 2
        eval_time: 1m
        exp_samples:
          - {labels: '{a="1"}', value: 5}
          - {labels: '{a="2"}', value: 1}
""")
    code, out = run(str(tmp_path / "t.yaml"))
    assert code == 1
    assert '    expr: "x * 2", time: 1m,\n        exp: {a="1"} 5\n' in out
    assert '~ value: {a="1"} expected 5, got 4' in out and '- missing: {a="2"} 1' in out


def test_run_test_files_bad_test_file_fails_with_message(tmp_path) -> None:
    (tmp_path / "t.yaml").write_text("rule_files: []\ntestz: []\n")
    code, out = run(str(tmp_path / "t.yaml"))
    assert code == 1 and "unknown field 'testz' in test file (did you mean 'tests'?)" in out
    (tmp_path / "r.yaml").write_text("rule_files: [missing.yaml]\ntests: []\n")
    code, out = run(str(tmp_path / "r.yaml"))
    assert code == 1 and "rule file 'missing.yaml' does not exist" in out


def test_run_test_files_rule_evaluation_error_fails(tmp_path) -> None:
    (tmp_path / "r.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - {alert: A, expr: x > 0, labels: {k: v}}\n")
    (tmp_path / "t.yaml").write_text("""
rule_files: [r.yaml]
tests:
  - input_series:
      - {series: 'x{k="1"}', values: '1'}
      - {series: 'x{k="2"}', values: '1'}
    alert_rule_test:
      - {eval_time: 0m, alertname: A, exp_alerts: []}
""")
    code, out = run(str(tmp_path / "t.yaml"))
    assert code == 1 and "    rule: A, time: 0s, err: vector contains metrics with the same labelset" in out


def test_cli_test_rules_exit_codes(capsys) -> None:
    assert main(["test-rules", os.path.join(RULE_TESTS, "extensions", "thresholds.test.yaml")]) == 0
    assert main(["test-rules", os.path.join(RULE_TESTS, "extensions", "thresholds.test.yaml"),
                 os.path.join(RULE_TESTS, "extensions", "fail_thresholds.test.yaml")]) == 1
    out = capsys.readouterr().out
    assert out.count("Unit Testing:") == 3
    with pytest.raises(SystemExit) as exc:
        main(["test-rules"])
    assert exc.value.code == 2


def _write_subquery_files(tmp_path, interval: str, points: int) -> str:  # type: ignore[no-untyped-def]
    """A rule and a test expecting `points` points in `x[2m:]` at 10m, in all three places: an alert,
    a recording rule and an expression test."""
    (tmp_path / "r.yaml").write_text("groups:\n  - name: g\n    rules:\n"
                                     "      - {record: 'x:points', expr: 'count_over_time(x[2m:])'}\n"
                                     f"      - {{alert: Dense, expr: 'count_over_time(x[2m:]) > {points - 1}'}}\n")
    test = tmp_path / "t.test.yaml"
    test.write_text(f"rule_files: [r.yaml]\nevaluation_interval: {interval}\ntests:\n  - interval: 30s\n"
                    "    input_series: [{series: 'x', values: '1x40'}]\n"
                    "    alert_rule_test: [{eval_time: 10m, alertname: Dense, exp_alerts: [{exp_labels: {}}]}]\n"
                    "    promql_expr_test:\n"
                    f"      - {{expr: 'count_over_time(x[2m:])', eval_time: 10m, exp_samples: [{{labels: '{{}}', "
                    f"value: {points}}}]}}\n"
                    f"      - {{expr: 'x:points', eval_time: 10m, exp_samples: [{{labels: 'x:points', "
                    f"value: {points}}}]}}\n")
    return str(test)


@pytest.mark.parametrize(("compat", "points"), [(2, 5), (3, 4)])  # 30s steps in [8m, 10m] / (8m, 10m]
def test_run_test_files_subquery_without_step_uses_evaluation_interval(tmp_path, compat: int, points: int) -> None:
    code, out = run(_write_subquery_files(tmp_path, "30s", points), compat)
    assert code == 0, out


def test_run_test_files_subquery_step_follows_a_1m_evaluation_interval_too(tmp_path) -> None:
    code, out = run(_write_subquery_files(tmp_path, "1m", 5), 2)
    # 1m steps: 3 points, in the expression test, the recorded series and the (then silent) alert
    assert code == 1
    assert "expected 5, got 3" in out and "x:points" in out and "alertname: Dense" in out


def test_run_test_files_group_interval_shorter_than_evaluation_interval_does_not_delay_for(tmp_path) -> None:
    (tmp_path / "r.yaml").write_text("groups:\n  - name: fast\n    interval: 10s\n    rules:\n"
                                     "      - {alert: SlowBurn, expr: 'errors > 0', for: 2m}\n")
    test = tmp_path / "t.test.yaml"
    test.write_text("rule_files: [r.yaml]\ntests:\n  - input_series: [{series: 'errors', values: '0 1 1 1 1'}]\n"
                    "    alert_rule_test:\n"
                    "      - {eval_time: 2m, alertname: SlowBurn, exp_alerts: []}\n"
                    "      - {eval_time: 3m, alertname: SlowBurn, exp_alerts: [{exp_labels: {}}]}\n")
    code, out = run(str(test))
    assert code == 0, out


def test_run_test_files_same_group_name_in_two_files_both_evaluated(tmp_path) -> None:
    for name, job in (("a", "a"), ("b", "b")):
        (tmp_path / f"{name}.yaml").write_text(
            f"groups:\n  - name: same\n    rules:\n      - {{alert: Down, expr: 'up{{job=\"{job}\"}} == 0'}}\n")
    test = tmp_path / "t.test.yaml"
    test.write_text("rule_files: [a.yaml, b.yaml]\ngroup_eval_order: [same]\ntests:\n"
                    "  - input_series: [{series: 'up{job=\"a\"}', values: '0'},\n"
                    "                   {series: 'up{job=\"b\"}', values: '0'}]\n"
                    "    alert_rule_test:\n"
                    "      - {eval_time: 0m, alertname: Down, exp_alerts: [{exp_labels: {job: a}}, "
                    "{exp_labels: {job: b}}]}\n")
    code, out = run(str(test))
    assert code == 0, out
