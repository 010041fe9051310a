"""The real agent process: SIGHUP reloads (valid and invalid), state across reloads, SIGTERM drain."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, run_cli, start_agent, wait_for, write_config
from tests.support.webhook_receiver import CountingReceiver

pytestmark = pytest.mark.integration

ALWAYS = """groups:
  - name: lifecycle
    interval: 1s
    rules:
      - alert: SlowBurn
        expr: vector(1)
        for: 1h
"""
ADDED = ALWAYS + """      - alert: AlwaysOn
        expr: vector(1)
        labels: {severity: warning}
"""
BROKEN = ALWAYS + """      - alert: Broken
        expr: rate(node_cpu_seconds_total[5m]
"""


def metric(agent: AgentProcess, name: str, labels: str = "") -> list[tuple[str, float]]:
    out = []
    for line in agent.scrape().splitlines():
        if line.startswith("#") or not line:
            continue
        series, val = line.rsplit(" ", 1)
        if series.split("{", 1)[0] == name and labels in series:
            out.append((series, float(val)))
    return out


def value(agent: AgentProcess, name: str, labels: str = "") -> float | None:
    got = metric(agent, name, labels)
    return got[0][1] if got else None


@pytest.fixture
def agent(tmp_path: Path):  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALWAYS)
    cfg = write_config(tmp_path, f"rule_files: [{rules}]\n")
    proc = start_agent(cfg, extra_args=["--web.enable-lifecycle"])
    proc.rules = rules  # type: ignore[attr-defined]
    yield proc
    proc.kill()


def test_sighup_valid_change_new_rule_active_pending_state_kept(agent: AgentProcess) -> None:
    for_state = wait_for(lambda: value(agent, "ALERTS_FOR_STATE", 'alertname="SlowBurn"'), 15, what="pending alert")
    agent.rules.write_text(ADDED)  # type: ignore[attr-defined]
    agent.signal(signal.SIGHUP)
    wait_for(lambda: value(agent, "ALERTS", 'alertname="AlwaysOn",alertstate="firing"') == 1, 20,
             what="the new rule firing")
    assert value(agent, "hostwarden_config_last_reload_successful") == 1
    # the unchanged rule kept its pending-since time across the reload
    assert value(agent, "ALERTS_FOR_STATE", 'alertname="SlowBurn"') == for_state
    assert value(agent, "ALERTS", 'alertname="SlowBurn",alertstate="pending"') == 1
    assert "configuration reloaded" in agent.log_text()


def test_sighup_invalid_rule_file_rejected_old_rules_keep_evaluating(agent: AgentProcess) -> None:
    wait_for(lambda: value(agent, "ALERTS", 'alertname="SlowBurn"'), 15, what="pending alert")
    ok_at = value(agent, "hostwarden_config_last_reload_success_timestamp_seconds")
    agent.rules.write_text(BROKEN)  # type: ignore[attr-defined]
    agent.signal(signal.SIGHUP)
    wait_for(lambda: value(agent, "hostwarden_config_last_reload_successful") == 0, 20, what="reload failure")
    log = agent.log_text()
    assert re.search(rf"{re.escape(str(agent.rules))}:\d+:\d+: ", log), log  # type: ignore[attr-defined]
    assert "keeping the running configuration" in log
    assert value(agent, "hostwarden_config_last_reload_success_timestamp_seconds") == ok_at
    # the old rule still evaluates: its group's evaluation timestamp keeps moving
    t1 = value(agent, "hostwarden_rule_group_last_evaluation_timestamp_seconds", 'group="lifecycle"')
    wait_for(lambda: (value(agent, "hostwarden_rule_group_last_evaluation_timestamp_seconds",
                            'group="lifecycle"') or 0) > (t1 or 0), 10, what="evaluation after failed reload")
    assert value(agent, "ALERTS", 'alertname="SlowBurn",alertstate="pending"') == 1
    assert agent.proc.poll() is None


def test_post_reload_endpoint_reports_failure_and_success(agent: AgentProcess) -> None:
    def post() -> int:
        req = urllib.request.Request(agent.url + "/-/reload", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    agent.rules.write_text(BROKEN)  # type: ignore[attr-defined]
    assert post() == 500
    agent.rules.write_text(ADDED)  # type: ignore[attr-defined]
    assert post() == 200
    wait_for(lambda: value(agent, "ALERTS", 'alertname="AlwaysOn"') == 1, 20, what="the new rule")


def test_reload_endpoint_without_enable_lifecycle_is_forbidden_as_in_prometheus(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "rule_files: []\n")
    agent = start_agent(cfg)
    try:
        for method, code, body in (("POST", 403, "Lifecycle API is not enabled."),
                                   ("PUT", 403, "Lifecycle API is not enabled."),
                                   ("GET", 405, "Only POST or PUT requests allowed")):
            req = urllib.request.Request(agent.url + "/-/reload", method=method)
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            assert (e.value.code, e.value.read().decode()) == (code, body)
        assert "configuration reloaded" not in agent.log_text()
    finally:
        agent.kill()


def test_sigterm_with_pending_delivery_exits_zero_and_delivers_after_restart(tmp_path: Path) -> None:
    receiver = CountingReceiver()
    receiver.down()  # connections refused: the open waits in the outbox
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALWAYS.replace("for: 1h", "for: 0s"))
    body = (f"rule_files: [{rules}]\n"
            f"tickets:\n  backends:\n    - {{name: hook, type: webhook, url: '{receiver.url}'}}\n")
    cfg = write_config(tmp_path, body)
    agent = start_agent(cfg, extra_args=["--drain-timeout", "2"])
    try:
        def pending() -> list[dict]:
            res = run_cli("tickets", "outbox", "--config", str(cfg), "--format", "json")
            rows = json.loads(res.stdout or "[]") if res.returncode == 0 else []
            return [r for r in rows if r.get("status") == "pending"]

        wait_for(pending, 20, what="an outbox row waiting for the receiver")
        t0 = time.monotonic()
        agent.signal(signal.SIGTERM)
        assert agent.proc.wait(30) == 0, agent.log_text()
        assert time.monotonic() - t0 < 15
        assert pending(), "the undelivered operation must survive the stop"
        receiver.up()
        agent2 = start_agent(cfg)
        try:
            wait_for(lambda: [r for r in receiver.accepted() if r.op == "open"], 30, what="delivery after restart")
            opens = [r for r in receiver.accepted() if r.op == "open"]
            assert len({r.key for r in opens}) == 1
        finally:
            assert agent2.stop() == 0
    finally:
        agent.kill()
        receiver.close()
