"""PromQL and alerting semantics checked against the real thing: every rule test file under
tests/rules/parity/ runs under Debian's `promtool test rules` and under `hostwarden test-rules`
(with Prometheus 2.x range boundaries, which is what promtool 2.x implements); both must give the
verdict the file's name promises (`fail_*` files are meant to fail). Exported rules must pass
`promtool check rules`.
"""

from __future__ import annotations

import glob
import io
import os
import subprocess

import pytest
from hostwarden.agent.core.schema import Errors
from hostwarden.rules.export import export_groups
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.testing import run_test_files

from tests.support.prometheus import promtool_binary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARITY = os.path.join(ROOT, "tests", "rules", "parity")
TEST_FILES = sorted(glob.glob(os.path.join(PARITY, "*.test.yaml")))
RULE_FILES = sorted(p for p in glob.glob(os.path.join(PARITY, "*.rules.yaml")) if not p.endswith("bad.rules.yaml"))


def _promtool(*args: str, cwd: str = PARITY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_binary(), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def _hostwarden(path: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_test_files([path], out=out, promql_compat=2)
    return code, out.getvalue()


def test_parity_corpus_has_passing_and_failing_cases() -> None:
    names = [os.path.basename(p) for p in TEST_FILES]
    assert sum(n.startswith("fail_") for n in names) >= 5
    assert sum(not n.startswith("fail_") for n in names) >= 8


@pytest.mark.parametrize("path", TEST_FILES, ids=[os.path.basename(p) for p in TEST_FILES])
def test_rules_parity_test_file_same_verdict_as_promtool(path: str) -> None:
    expected = 1 if os.path.basename(path).startswith("fail_") else 0
    theirs = _promtool("test", "rules", os.path.basename(path))
    ours, output = _hostwarden(path)
    promtool_output = theirs.stdout + theirs.stderr
    assert theirs.returncode == expected, f"promtool verdict {theirs.returncode}:\n{promtool_output}"
    assert ours == expected, f"hostwarden verdict {ours}, promtool {theirs.returncode}:\n{output}\n" \
                             f"--- promtool:\n{promtool_output}"


@pytest.mark.parametrize("path", RULE_FILES, ids=[os.path.basename(p) for p in RULE_FILES])
def test_rules_parity_rule_file_promtool_accepts_and_hostwarden_loads(path: str) -> None:
    checked = _promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    errors = Errors()
    groups = load_rule_files([path], errors, default_interval=60.0)
    assert not errors.issues, errors.issues
    assert groups and all(g.rules for g in groups)


def _export_and_check(paths: list[str], tmp_path: object) -> str:
    errors = Errors()
    groups = load_rule_files(paths, errors, default_interval=10.0)
    assert not errors.issues, errors.issues
    out = os.path.join(str(tmp_path), "exported.yaml")
    with open(out, "w", encoding="utf-8") as f:
        f.write(export_groups(groups, sources=paths))
    checked = _promtool("check", "rules", out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout


def test_rules_export_shipped_rules_promtool_check_accepts(tmp_path: object) -> None:
    shipped = sorted(glob.glob(os.path.join(ROOT, "config", "rules", "*.yaml")))
    assert shipped
    stdout = _export_and_check(shipped, tmp_path)
    assert "SUCCESS" in stdout


def test_rules_export_parity_and_extension_rules_promtool_check_accepts(tmp_path: object) -> None:
    ext = sorted(glob.glob(os.path.join(ROOT, "tests", "rules", "extensions", "*.rules.yaml")))
    assert ext
    _export_and_check(RULE_FILES + ext, tmp_path)


def test_rules_export_hysteresis_keeps_alert_firing_in_promtool(tmp_path: object) -> None:
    """The exported `clear` idiom behaves like hostwarden's hysteresis when Prometheus evaluates it."""
    rules = os.path.join(str(tmp_path), "src.yaml")
    with open(rules, "w", encoding="utf-8") as f:
        f.write('groups:\n  - name: h\n    rules:\n      - alert: Hot\n        expr: temp\n'
                '        warning: "> 80"\n        clear: "< 70"\n')
    errors = Errors()
    groups = load_rule_files([rules], errors, default_interval=60.0)
    assert not errors.issues
    exported = os.path.join(str(tmp_path), "exported.yaml")
    with open(exported, "w", encoding="utf-8") as f:
        f.write(export_groups(groups))
    test = os.path.join(str(tmp_path), "t.test.yaml")
    with open(test, "w", encoding="utf-8") as f:
        f.write("rule_files: [exported.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
                "    input_series:\n      - {series: 'temp{room=\"a\"}', values: '60 85 75 72 65 75'}\n"
                "    alert_rule_test:\n"
                "      - {eval_time: 3m, alertname: Hot, exp_alerts: [{exp_labels: {room: a, severity: warning}}]}\n"
                "      - {eval_time: 4m, alertname: Hot, exp_alerts: []}\n"
                "      - {eval_time: 5m, alertname: Hot, exp_alerts: []}\n")
    ran = _promtool("test", "rules", "t.test.yaml", cwd=str(tmp_path))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # the same scenario against the original extension rule, in hostwarden
    src_test = os.path.join(str(tmp_path), "src.test.yaml")
    with open(test, encoding="utf-8") as f:
        text = f.read().replace("exported.yaml", "src.yaml")
    with open(src_test, "w", encoding="utf-8") as f:
        f.write(text)
    code, output = _hostwarden(src_test)
    assert code == 0, output
