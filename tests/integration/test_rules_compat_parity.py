"""The rule-file shapes Prometheus accepts and hostwarden used to reject (tests/rules/parity/compat_*):
the same group name in two files, subqueries without a step, `query` templates, repeated alert names,
the web/escaper template functions. Beyond the verdict (test_rules_parity.py), both tools must fail on
the same test cases — the same alert and time, the same expression, the same rule error."""

from __future__ import annotations

import glob
import io
import os
import re
import subprocess

import pytest
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.units import parse_duration
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.testing import run_test_files

from tests.support.prometheus import promtool_binary

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARITY = os.path.join(ROOT, "tests", "rules", "parity")
TESTS = sorted(p for p in glob.glob(os.path.join(PARITY, "*compat_*.test.yaml")))
RULES = sorted(glob.glob(os.path.join(PARITY, "compat_*.rules.yaml")))
_CASE = re.compile(r'(alertname: \S+|expr: "(?:[^"\\]|\\.)*"|rule: \S+), time: ([0-9a-z.]+)')


def failed_cases(output: str) -> set[tuple[str, float]]:
    """(what, seconds) of each failing case: `alertname: X`, `expr: "..."` or `rule: X`, at its time."""
    return {(what, parse_duration(t)) for what, t in _CASE.findall(output)}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_binary(), *args], cwd=PARITY, capture_output=True, text=True, timeout=120,
                          check=False)


def test_compat_corpus_covers_every_shape() -> None:
    names = {os.path.basename(p) for p in TESTS}
    for shape in ("groups", "subquery", "query", "duplicates", "template_functions", "interval"):
        assert f"compat_{shape}.test.yaml" in names
    assert sum(n.startswith("fail_") for n in names) >= 5


@pytest.mark.parametrize("path", TESTS, ids=[os.path.basename(p) for p in TESTS])
def test_compat_test_file_fails_on_the_same_cases_as_promtool(path: str) -> None:
    theirs = promtool("test", "rules", os.path.basename(path))
    out = io.StringIO()
    ours = run_test_files([path], out=out, promql_compat=2)
    expected = 1 if os.path.basename(path).startswith("fail_") else 0
    promtool_output = theirs.stdout + theirs.stderr
    assert (theirs.returncode, ours) == (expected, expected), f"{out.getvalue()}\n--- promtool:\n{promtool_output}"
    assert failed_cases(out.getvalue()) == failed_cases(promtool_output), \
        f"{out.getvalue()}\n--- promtool:\n{promtool_output}"
    if expected:
        assert failed_cases(promtool_output), promtool_output


def test_compat_rule_files_load_together_every_group_kept() -> None:
    linted = promtool("check", "rules", *RULES)  # the duplicate-rules lint warns; exit code 0 all the same
    assert linted.returncode == 0 and "duplicate rule(s) found" in linted.stdout + linted.stderr
    checked = promtool("check", "rules", "--lint=none", *RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    errors = Errors()
    groups = load_rule_files(RULES, errors, default_interval=60.0)
    assert errors.issues == []
    found = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", checked.stdout)]
    assert sum(len(g.rules) for g in groups) == sum(found)
    assert len({g.key for g in groups}) == len(groups) > len({g.name for g in groups})
