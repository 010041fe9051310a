"""The agent as a real Prometheus target, and its exposition through promtool's linter."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.agent import start_agent, wait_for, write_config
from tests.support.prometheus import promtool_binary, start_prometheus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("agent")
    cfg = write_config(d, "rule_files: []\n")
    proc = start_agent(cfg)
    yield proc
    assert proc.stop() == 0, proc.log_text()


def test_prometheus_scrapes_agent_target_up_and_metrics_queryable(agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prom = start_prometheus(tmp_path / "prom", f"  - job_name: hostwarden\n    static_configs:\n"
                                               f"      - targets: ['127.0.0.1:{agent.port}']\n")
    try:
        wait_for(lambda: prom.query('up{job="hostwarden"} == 1'), 30, what="target up")
        cpu = wait_for(lambda: prom.query("node_cpu_seconds_total"), 15, what="node_cpu_seconds_total")
        modes = {r["metric"]["mode"] for r in cpu}
        assert {"user", "system", "idle"} <= modes
        fs = wait_for(lambda: prom.query("hostwarden_filesystem_used_ratio"), 15, what="filesystem ratio")
        for r in fs:
            assert {"device", "fstype", "mountpoint"} <= set(r["metric"])
            assert 0.0 <= float(r["value"][1]) <= 1.0
        targets = prom.api("targets")["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"]
        assert targets[0]["lastError"] == ""
    finally:
        prom.stop()


CAMEL_CASE = "metric names should be written in 'snake_case' not 'camelCase'"
# node_exporter's own names, kept for its dashboards: promtool flags them in node_exporter's output too
INHERITED = {("node_memory_", CAMEL_CASE), ("node_netstat_", CAMEL_CASE), ("node_sockstat_", CAMEL_CASE),
             ("node_entropy_", 'use base unit "bytes" instead of "bits"')}


def test_promtool_check_metrics_only_inherited_camelcase_findings(agent) -> None:  # type: ignore[no-untyped-def]
    promtool = promtool_binary()
    body = agent.scrape()
    res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    findings = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    offenders = []
    for line in findings:
        m = re.match(r"^(\S+) (.*)$", line)
        name, problem = (m.group(1), m.group(2)) if m else ("", line)
        if not any(name.startswith(prefix) and problem == p for prefix, p in INHERITED):
            offenders.append(line)
    assert offenders == []
    assert any(line.startswith("node_memory_MemAvailable_bytes") for line in findings)
    assert not any(line.startswith("hostwarden_") for line in findings)
