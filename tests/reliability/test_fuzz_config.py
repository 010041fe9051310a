"""Fuzzed agent config and rule YAML: never an exception other than the documented error, always naming the file.

- `agent.config.load_config(path)` returns an AgentConfig or raises `ConfigErrors` whose every issue
  names `path` (file:line:col), for generated structures (real section and field names with random
  values), mutated copies of the shipped config, arbitrary text and YAML bombs.
- `rules.loader.load_rule_files([path], errors, ...)` never raises; every issue names the rule file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.config import GlobalConfig, WebConfig, load_config
from hostwarden.agent.core.schema import ConfigErrors, Errors
from hostwarden.collectors import base as collector_base
from hostwarden.collectors.checks import check_types
from hostwarden.exporters.receiver import ReceiverConfig
from hostwarden.exporters.tickets.base import registry as backend_registry
from hostwarden.exporters.tickets.config import TicketsConfig
from hostwarden.rules.loader import load_rule_files
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.fuzzing import TRICKY_STRINGS, budget, config_mapping, dump_yaml, mutate, values
from tests.support.agent import ROOT

SHIPPED_CONFIG = (ROOT / "config" / "hostwarden.yaml").read_text()
SHIPPED_RULES = sorted((ROOT / "config" / "rules").glob("*.yaml"))

COLLECTORS = collector_base.registry()
CHECKS = check_types()
BACKENDS = backend_registry()


def _named(registry: dict[str, type]) -> st.SearchStrategy[tuple[str, dict]]:
    return st.sampled_from(sorted(registry)).flatmap(
        lambda name: st.tuples(st.just(name), config_mapping(registry[name].Config)))


collectors_section = st.lists(_named(COLLECTORS), max_size=4).map(dict)
checks_section = st.lists(
    st.tuples(_named(CHECKS), st.one_of(st.text(max_size=8), st.sampled_from(TRICKY_STRINGS))).map(
        lambda p: {**p[0][1], "type": p[0][0], "name": p[1]}),
    max_size=3)
backends_list = st.lists(
    st.tuples(_named(BACKENDS), st.text(max_size=8)).map(lambda p: {**p[0][1], "type": p[0][0], "name": p[1]}),
    max_size=3)
tickets_section = st.tuples(config_mapping(TicketsConfig), backends_list).map(lambda p: {**p[0], "backends": p[1]})

config_docs = st.fixed_dictionaries({}, optional={
    "global": st.one_of(config_mapping(GlobalConfig), values(4)),
    "web": st.one_of(config_mapping(WebConfig), values(4)),
    "collectors": st.one_of(collectors_section, values(4)),
    "checks": st.one_of(checks_section, values(4)),
    "tickets": st.one_of(tickets_section, values(4)),
    "receiver": st.one_of(config_mapping(ReceiverConfig), values(4)),
    "rule_files": st.one_of(st.lists(st.sampled_from(["rules/*.yaml", "missing.yaml", "", "*", "/nonexistent/*"])),
                            values(3)),
    "unknown_section": values(3),
})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzzcfg")
    (d / "rules").mkdir()
    return d


def _check_config_text(workdir: Path, text: str | bytes) -> str:
    path = workdir / "hostwarden.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(str(path))
    except ConfigErrors as e:
        assert e.issues, "ConfigErrors without issues"
        for issue in e.issues:
            assert issue.loc.file == str(path), f"issue does not name the config file: {issue}"
            assert str(issue).startswith(f"{path}:"), str(issue)
        return "rejected"
    return "accepted"


@budget(200, deadline_ms=3000)
@given(doc=config_docs)
def test_config_generated_structures_only_config_errors_naming_file(workdir: Path, doc: dict[str, Any]) -> None:
    _check_config_text(workdir, dump_yaml(doc))


@budget(300)
@given(text=mutate(SHIPPED_CONFIG))
def test_config_mutated_shipped_file_only_config_errors_naming_file(workdir: Path, text: str) -> None:
    _check_config_text(workdir, text)


@budget(300)
@given(data=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_config_arbitrary_text_and_bytes_only_config_errors_naming_file(workdir: Path, data: str | bytes) -> None:
    _check_config_text(workdir, data)


def _alias_bomb(key: str) -> str:
    """'Billion laughs': nine levels of 10x aliases, 10^9 strings once expanded, placed under `key`."""
    lines = ['x0: &a0 ["lol"]']
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + f"\n{key}: *a9\n"


def _load_in_subprocess(path: Path, timeout: float) -> str:
    """load_config in a child with a time and memory limit: 'ConfigErrors', another exception name, or 'hang'."""
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from hostwarden.agent.config import load_config\n"
            "from hostwarden.agent.core.schema import ConfigErrors\n"
            "try:\n    load_config(sys.argv[1]); print('accepted')\n"
            "except ConfigErrors: print('ConfigErrors')\n"
            "except BaseException as e: print(type(e).__name__)\n")
    try:
        res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                             timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "hang"
    return res.stdout.strip().splitlines()[-1] if res.stdout.strip() else f"exit {res.returncode}"


def test_config_yaml_alias_bomb_unused_key_rejected_naming_file(workdir: Path) -> None:
    assert _check_config_text(workdir, _alias_bomb("rule_files")) == "rejected"


def test_config_yaml_alias_bomb_in_section_rejected_within_4s(workdir: Path) -> None:
    path = workdir / "bomb.yaml"
    path.write_text(_alias_bomb("collectors"))
    assert _load_in_subprocess(path, timeout=4) == "ConfigErrors"


def test_config_deeply_nested_yaml_rejected_naming_file(workdir: Path) -> None:
    assert _check_config_text(workdir, "global: " + "[" * 400 + "]" * 400 + "\n") == "rejected"


def test_config_control_character_rejected_naming_file(workdir: Path) -> None:
    assert _check_config_text(workdir, "global:\n  interval: 10s\x0b\n") == "rejected"


def test_rules_control_character_reported_naming_file(workdir: Path) -> None:
    _check_rule_text(workdir, "groups: []\x1b\n")


# -- rule files -----------------------------------------------------------------------------------------------

EXPRS = ["up == 0", "node_load1 > 4", "rate(x_total[5m]) > 1", "x{a=~\"(\"}", "sum by (a) (x) > bool 1", "(",
         "x offset -1h", "absent(nothing)", "histogram_quantile(0.9, rate(h_bucket[5m]))", "vector(1)", "1",
         "\"string\"", "x[5m]", "label_replace(x, \"a\", \"$1\", \"b\", \"(.*\")", "x @ 1e20", "x[1h:1e-9]",
         "holt_winters(x[5m], 0.5, 0.5)", "topk(-1, x)", "x and on() y", "x / on(a) group_left(b) y"]
TEMPLATES = ["{{ $labels.instance }}", "{{ $value | humanize }}", "{{ if }}", "{{ end }}", "{{ range $x := . }}",
             "{{ query \"up\" }}", "{{ printf \"%d\" $value }}", "{{ $undefined }}", "{{ .Labels.x | title }}",
             "{{/* c */}}", "{{- $value -}}", "{{ humanizeDuration \"x\" }}", "{{ index $labels }}"]

rule_entries = st.fixed_dictionaries({}, optional={
    "alert": st.one_of(st.sampled_from(["HighLoad", "", "bad name", "x" * 300]), st.text(max_size=10), values(2)),
    "record": st.one_of(st.sampled_from(["job:up:sum", "bad-name"]), values(2)),
    "expr": st.one_of(st.sampled_from(EXPRS), st.text(max_size=30), values(2)),
    "for": st.one_of(st.sampled_from(["5m", "0s", "-1m", "1y", "x", "10"]), values(2)),
    "keep_firing_for": st.one_of(st.sampled_from(["5m", "-1s", ""]), values(2)),
    "labels": st.one_of(st.dictionaries(st.sampled_from(["severity", "team", "__name__", "bad-label", ""]),
                                        st.one_of(st.sampled_from(TEMPLATES), st.text(max_size=10), values(2)),
                                        max_size=3), values(2)),
    "annotations": st.one_of(st.dictionaries(st.sampled_from(["summary", "description", "runbook_url", "x y"]),
                                             st.one_of(st.sampled_from(TEMPLATES), st.text(max_size=20)),
                                             max_size=3), values(2)),
    "warning": st.one_of(st.sampled_from(["> 0.8", ">= 1e3", "0.5", "> nan", "~ 1"]), values(2)),
    "critical": st.one_of(st.sampled_from(["> 0.9", "< 0", "> 0.1"]), values(2)),
    "clear": st.one_of(st.sampled_from(["< 0.7", "> 0.95"]), values(2)),
    "flap": st.one_of(st.fixed_dictionaries({}, optional={"window": values(1), "high": values(1),
                                                          "low": values(1)}), values(2)),
    "group_by": st.one_of(st.lists(st.sampled_from(["instance", "mountpoint", "", "__name__"]), max_size=3),
                          values(2)),
    "category": values(2),
    "unknown_key": values(2),
})
group_entries = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(["g", "", "dup"]), values(2)),
    "interval": st.one_of(st.sampled_from(["1m", "0s", "-1s", "x"]), values(2)),
    "limit": values(2),
    "rules": st.one_of(st.lists(rule_entries, max_size=4), values(3)),
})
rule_docs = st.one_of(st.fixed_dictionaries({"groups": st.lists(group_entries, max_size=3)}), values(5))


def _check_rule_text(workdir: Path, text: str | bytes) -> None:
    path = workdir / "fuzz.rules.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    errors = Errors()
    groups = load_rule_files([str(path)], errors, default_interval=10.0)
    for issue in errors.issues:
        assert issue.loc.file == str(path), f"issue does not name the rule file: {issue}"
    assert isinstance(groups, list)
    if not errors.issues:
        assert all(r.name for g in groups for r in g.rules)


@budget(250, deadline_ms=3000)
@given(doc=rule_docs)
def test_rules_generated_structures_never_raise_and_issues_name_file(workdir: Path, doc: Any) -> None:
    _check_rule_text(workdir, dump_yaml(doc))


@budget(200)
@given(text=st.sampled_from(SHIPPED_RULES).flatmap(lambda p: mutate(p.read_text())))
def test_rules_mutated_shipped_files_never_raise_and_issues_name_file(workdir: Path, text: str) -> None:
    _check_rule_text(workdir, text)


@budget(200)
@given(data=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_rules_arbitrary_text_and_bytes_never_raise(workdir: Path, data: str | bytes) -> None:
    _check_rule_text(workdir, data)
