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
