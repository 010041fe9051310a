"""Remediation by a real `hostwarden run` process: a `run:` action really executed, recorded on the local
ticket and in `hostwarden report`; `--dry-run`, `remediation: {enabled: false}`, an untrusted rule file and
a textfile label value trying to be a path of its own choosing run nothing; `check-config` lists every action."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, run_cli, start_agent, wait_for, write_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="actions run only from root-owned config files")]

RULES = """
groups:
  - name: spool
    interval: 1s
    rules:
      - alert: SpoolStuck
        expr: e2e_spool_stuck
        critical: "> 0"
        annotations:
          summary: "spool {{{{ $labels.spool }}}} is stuck"
        remediate:
          after: 2s
          verify_within: 6s
          max: 2 within 10m
          actions:
            - run: [{fix}, $labels.spool]
              timeout: 10s
"""
DEADLINE = 30.0


def setup(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    textfile = tmp_path / "state" / "textfile"
    textfile.mkdir(parents=True)
    marker = tmp_path / "marker"
    fix = tmp_path / "fix-spool"
    # the "fix": notes its argument, then makes the metric healthy again
    fix.write_text(f"#!/bin/sh\necho \"flushed $1\"\necho \"$1\" >> {marker}\n"
                   f"printf 'e2e_spool_stuck{{spool=\"%s\"}} 0\\n' \"$1\" > {textfile}/.s.tmp\n"
                   f"mv {textfile}/.s.tmp {textfile}/spool.prom\n")
    fix.chmod(0o755)
    (tmp_path / "rules.yaml").write_text(RULES.format(fix=fix))
    os.chmod(tmp_path / "rules.yaml", 0o644)
    cfg = write_config(tmp_path, "rule_files: [rules.yaml]\ntickets:\n  update_interval: 0s\n" + extra)
    os.chmod(cfg, 0o644)
    set_stuck(tmp_path, 0)
    return cfg, marker


def set_stuck(tmp_path: Path, value: int, spool: str = "/var/spool/e2e") -> None:
    d = tmp_path / "state" / "textfile"
    (d / ".s.tmp").write_text(f'e2e_spool_stuck{{spool="{spool}"}} {value}\n')
    os.replace(d / ".s.tmp", d / "spool.prom")


def tickets(cfg: Path) -> list[dict]:
    res = run_cli("tickets", "list", "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def show(cfg: Path, tid: int) -> dict:
    res = run_cli("tickets", "show", str(tid), "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def texts(cfg: Path, tid: int) -> str:
    return "\n".join(e["text"] for e in show(cfg, tid)["events"])


def stop(agent: AgentProcess) -> None:
    assert agent.stop() == 0, agent.log_text()


def test_agent_runs_action_records_it_and_resolution_cause(tmp_path: Path) -> None:
    cfg, marker = setup(tmp_path)
    check = run_cli("check-config", str(cfg))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "remediation: enabled" in check.stdout
    assert f"1. run {tmp_path}/fix-spool $labels.spool (timeout 10s)" in check.stdout
    assert "after 2s, severity critical, max 2 within 10m, verify within 6s" in check.stdout
    agent = start_agent(cfg)
    try:
        set_stuck(tmp_path, 1)
        (t,) = wait_for(lambda: tickets(cfg), DEADLINE, what="a ticket")
        done = wait_for(lambda: [x for x in tickets(cfg) if x["status"] == "resolved"], DEADLINE, what="resolved")
        assert marker.read_text() == "/var/spool/e2e\n"  # ran once, with the label's value as its argument
        body = texts(cfg, t["id"])
        assert f"Remediation: run {tmp_path}/fix-spool /var/spool/e2e (attempt 1 of 2)" in body
        assert f"run {tmp_path}/fix-spool /var/spool/e2e: exit 0 after " in body
        assert "output: flushed /var/spool/e2e" in body
        assert "Cause: resolved after remediation" in body
        assert done[0]["id"] == t["id"]
        log = agent.log_text()
        assert "level=notice" in log and "remediation for" in log
        def scraped() -> str | None:
            text = agent.scrape()
            return text if 'result="ok"' in text else None

        metrics = wait_for(scraped, 10, what="remediation metrics")
        assert 'hostwarden_remediation_actions_total{action="run",result="ok"} 1' in metrics
        assert "hostwarden_remediation_exhausted_total 0" in metrics
        assert "hostwarden_remediation_running 0" in metrics
        rep = run_cli("report", "--format", "json", "--config", str(cfg))
        assert rep.returncode == 0, rep.stderr
        r = json.loads(rep.stdout)["remediation"]
        assert r["actions"] == 1 and r["auto_fix_ratio"] == 1.0
        assert r["causes"]["resolved after remediation"] == 1
        assert r["mttr_with_remediation_seconds"] > 0 and r["mttr_without_remediation_seconds"] is None
        text = run_cli("report", "--config", str(cfg)).stdout
        assert "Auto-fix rate: 100%" in text
    finally:
        stop(agent)


@pytest.mark.parametrize("how", ["--dry-run", "enabled: false", "untrusted", "injection"])
def test_agent_dry_run_switch_and_untrusted_file_run_nothing(tmp_path: Path, how: str) -> None:
    extra = "remediation:\n  enabled: false\n" if how == "enabled: false" else ""
    cfg, marker = setup(tmp_path, extra)
    if how == "untrusted":
        os.chmod(tmp_path / "rules.yaml", 0o664)
        check = run_cli("check-config", str(cfg))
        assert "REFUSED: actions declared in" in check.stdout and "group- or world-writable" in check.stdout
    agent = start_agent(cfg, extra_args=["--dry-run"] if how == "--dry-run" else [])
    try:
        set_stuck(tmp_path, 1, "../../etc/passwd" if how == "injection" else "/var/spool/e2e")
        (t,) = wait_for(lambda: tickets(cfg), DEADLINE, what="a ticket")
        if how == "injection":  # a label value from a textfile must not become an argument
            wait_for(lambda: "refused" in texts(cfg, t["id"]), DEADLINE, what="refusal note")
            assert "$labels.spool = '../../etc/passwd' is not a unit name or an absolute path" in texts(cfg, t["id"])
            assert "Remediation exhausted: no action could run (all refused)" in texts(cfg, t["id"])
        elif how == "--dry-run":
            wait_for(lambda: "Dry run: would run" in texts(cfg, t["id"]), DEADLINE, what="dry-run note")
        elif how == "untrusted":
            wait_for(lambda: "remediation refused" in texts(cfg, t["id"]), DEADLINE, what="refusal note")
            assert "group- or world-writable (mode 0664)" in texts(cfg, t["id"])
        else:
            wait_for(lambda: "switched off" in agent.log_text(), 5, what="log line")
            import time

            time.sleep(5)  # after (2s) + margin: nothing may be recorded
            assert "emediation" not in texts(cfg, t["id"])
        assert not marker.exists()
        assert tickets(cfg)[0]["status"] != "resolved"
    finally:
        stop(agent)
