"""A real `hostwarden run` with rule files Prometheus loads and hostwarden used to reject: the same group
name in two files, two rules with the same alert name and labels, `query` templates. Every group is
scheduled and exposed under its own file, every rule opens its own incident, and a restart while they
fire opens nothing new (saved alert states keyed by file and group)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reliability.agentprobe import parse_exposition
from tests.support.agent import run_cli, start_agent, wait_for, write_config
from tests.support.prometheus import start_prometheus

pytestmark = pytest.mark.integration

FILE_A = """
groups:
  - name: EmbeddedExporter
    interval: 1s
    rules:
      - alert: CompatValueHigh
        expr: compat_value{source="a"} > 10
        labels: {severity: warning}
        annotations:
          summary: 'a: {{ $value }} of {{ query "sum(compat_value)" | first | value }} in total'
"""
FILE_B = """
groups:
  - name: EmbeddedExporter
    interval: 1s
    rules:
      - alert: CompatValueHigh
        expr: compat_value{source="b"} > 10
        labels: {severity: warning}
        annotations: {summary: 'b: {{ $value }}'}
      - alert: CompatDuplicate
        expr: compat_value{source="b"} > 10
        labels: {severity: warning}
        annotations: {summary: 'first rule'}
      - alert: CompatDuplicate
        expr: compat_value{source="b"} > 20
        labels: {severity: warning}
        annotations: {summary: 'second rule'}
"""
DEADLINE = 20.0


def setup(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.yaml").write_text(FILE_A)
    (tmp_path / "rules" / "b.yaml").write_text(FILE_B)
    cfg = write_config(tmp_path, "rule_files: [rules/*.yaml]\ntickets:\n  reopen_window: 1h\n")
    (tmp_path / "state" / "textfile").mkdir(parents=True, exist_ok=True)
    return cfg


def set_values(tmp_path: Path, a: float, b: float) -> None:
    d = tmp_path / "state" / "textfile"
    tmp = d / ".compat.prom.tmp"
    tmp.write_text(f'# TYPE compat_value gauge\ncompat_value{{source="a"}} {a}\ncompat_value{{source="b"}} {b}\n')
    os.replace(tmp, d / "compat.prom")


def tickets(cfg: Path) -> list[dict]:
    res = run_cli("tickets", "list", "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_agent_same_group_name_in_two_files_duplicate_alerts_and_query_templates(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    set_values(tmp_path, 5, 5)
    agent = start_agent(cfg)
    try:
        metrics = parse_exposition(agent.scrape())
        files = sorted(dict(lb)["file"] for (name, lb) in metrics if name == "hostwarden_rule_group_rules")
        assert [os.path.basename(f) for f in files] == ["a.yaml", "b.yaml"]
        set_values(tmp_path, 15, 25)
        opened = wait_for(lambda: (t := tickets(cfg)) and len(t) >= 4 and t, DEADLINE, what="four tickets")
        assert len(opened) == 4, opened
        titles = sorted(t["title"] for t in opened)
        assert titles == ["a: 15 of 40 in total", "b: 25", "first rule", "second rule"]  # query over the store
        assert len({t["fingerprint"] for t in opened}) == 4
        firing = {(n, dict(lb).get("alertname")) for (n, lb), v in parse_exposition(agent.scrape()).items()
                  if n == "ALERTS" and dict(lb).get("alertstate") == "firing" and v == 1}
        assert firing == {("ALERTS", "CompatValueHigh"), ("ALERTS", "CompatDuplicate")}
        assert agent.stop() == 0
        agent = start_agent(cfg)  # restored states: still firing, no ticket opened or resolved
        wait_for(lambda: "restored 4 alert states" in agent.log_text(), DEADLINE, what="states restored")
        agent.scrape()
        after = tickets(cfg)
        assert sorted((t["id"], t["fingerprint"], t["status"]) for t in after) == \
            sorted((t["id"], t["fingerprint"], t["status"]) for t in opened)
        assert "resolved" not in agent.log_text() and "opened" not in agent.log_text().split("restored")[-1]
    finally:
        agent.stop()


def test_agent_and_real_prometheus_load_the_same_groups_and_fire_the_same_alerts(tmp_path: Path) -> None:
    """Debian's Prometheus scrapes the agent and evaluates the same two files: the same (file, group) pairs,
    the same alerts per rule (repeated names included) and the same `query`-rendered annotations."""
    cfg = setup(tmp_path)
    set_values(tmp_path, 15, 25)
    agent = start_agent(cfg)
    files = sorted(str(p) for p in (tmp_path / "rules").glob("*.yaml"))
    prom = start_prometheus(tmp_path / "prom", f"  - job_name: hostwarden\n    static_configs:\n"
                                               f"      - targets: ['127.0.0.1:{agent.port}']\n", rule_files=files)
    try:
        def prom_firing() -> list[dict]:
            alerts = prom.api("alerts")["data"]["alerts"]
            return alerts if len([a for a in alerts if a["state"] == "firing"]) >= 4 else []

        alerts = wait_for(prom_firing, 60, what="four alerts firing in Prometheus")
        groups = prom.api("rules")["data"]["groups"]
        theirs_groups = sorted((g["file"], g["name"], len(g["rules"])) for g in groups)
        metrics = parse_exposition(agent.scrape())
        ours_groups = sorted((dict(lb)["file"], dict(lb)["group"], int(v)) for (n, lb), v in metrics.items()
                             if n == "hostwarden_rule_group_rules")
        assert ours_groups == theirs_groups == [(files[0], "EmbeddedExporter", 1), (files[1], "EmbeddedExporter", 3)]

        theirs = sorted((a["labels"]["alertname"], a["annotations"]["summary"]) for a in alerts
                        if a["state"] == "firing")
        opened = wait_for(lambda: (t := tickets(cfg)) and len(t) >= 4 and t, DEADLINE, what="four tickets")
        ours = sorted((t["rule"], t["title"]) for t in opened)  # one incident per firing rule
        assert ours == theirs
        assert [name for name, _ in ours] == ["CompatDuplicate", "CompatDuplicate", "CompatValueHigh",
                                              "CompatValueHigh"]
        assert ("CompatValueHigh", "a: 15 of 40 in total") in ours  # `query` over each one's own samples
    finally:
        prom.stop()
        agent.stop()
