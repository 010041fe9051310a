"""Remediation against the REAL systemd, PID 1 of a namespace (tests/support/systemdns.py): a real
`hostwarden run` inside it restarts a dead unit over systemd's D-Bus API, the check recovers and the
ticket says "resolved after remediation"; a unit that fails again at once is tried `max` times, then
remediation stops and the ticket's priority is raised — no restart loop."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent import free_port, hostwarden_cmd, run_cli, wait_for
from tests.support.systemdns import SystemdNamespace, systemd_ns  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

WEB_UNIT = """[Unit]
Description=hostwarden remediation test: a service that is killed and must be restarted
[Service]
ExecStart=/bin/sleep infinity
"""
BROKEN_UNIT = """[Unit]
Description=hostwarden remediation test: a service that fails again at once
[Service]
Type=oneshot
ExecStart=/bin/false
"""
FLAPPY_UNIT = """[Unit]
Description=hostwarden remediation test: a service that dies again 5 seconds after every start
[Service]
ExecStart=/bin/sh -c 'sleep 5; exit 1'
"""
CONFIG = """global:
  interval: 1s
  state_dir: {state}
  hostname: nshost
web:
  listen_address: 127.0.0.1:{port}
rule_files: [rules.yaml]
tickets:
  update_interval: 0s
checks:
  - name: web
    type: systemd
    unit: e2e-web.service
    interval: 1s
    timeout: 1s
    remediate:
      after: 2s
      verify_within: 10s
      max: 3 within 10m
      actions:
        - restart_unit: e2e-web.service
  - name: broken
    type: systemd
    unit: e2e-broken.service
    interval: 1s
    timeout: 1s
  - name: flappy
    type: systemd
    unit: e2e-flappy.service
    interval: 1s
    timeout: 1s
"""
RULES = """groups:
  - name: units
    interval: 1s
    rules:
      - alert: WebDown
        expr: hostwarden_check_up{check="web"} == 0
        labels: {severity: critical}
        annotations: {summary: "e2e-web.service is down"}
      - alert: UnitFailed
        expr: node_systemd_unit_state{check="broken", state="failed"} == 1
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.name }} failed"}
        remediate:
          after: 2s
          verify_within: 5s
          max: 3 within 10m
          actions:
            - restart_unit: $labels.name
      - alert: FlappyFailed
        expr: node_systemd_unit_state{check="flappy", state="failed"} == 1
        labels: {severity: critical}
        remediate:
          after: 2s
          verify_within: 5s
          max: 3 within 10m
          actions:
            - restart_unit: e2e-flappy.service
"""
DEADLINE = 40.0


def install_unit(ns: SystemdNamespace, name: str, text: str) -> None:
    ns.run(["sh", "-c", f"cat > /etc/systemd/system/{name}"], input=text, check=True)


@pytest.fixture(scope="module")
def agent(systemd_ns: SystemdNamespace) -> Iterator[tuple[SystemdNamespace, Path]]:  # noqa: F811
    ns = systemd_ns
    install_unit(ns, "e2e-web.service", WEB_UNIT)
    install_unit(ns, "e2e-broken.service", BROKEN_UNIT)
    install_unit(ns, "e2e-flappy.service", FLAPPY_UNIT)
    ns.systemctl("daemon-reload", check=True)
    ns.systemctl("start", "e2e-web.service", check=True)
    assert ns.wait_active("e2e-web.service", timeout=20)
    d = ns.shared / "agent"
    d.mkdir()
    (d / "rules.yaml").write_text(RULES)
    cfg = d / "hostwarden.yaml"
    cfg.write_text(CONFIG.format(state=d / "state", port=free_port()))
    for f in (cfg, d / "rules.yaml"):
        f.chmod(0o644)
    # the agent runs inside as a transient unit, so it talks to that systemd over the namespace's system bus
    ns.run(["systemd-run", "--unit=hostwarden-e2e", "--property=Type=notify", "--property=NotifyAccess=main",
            *hostwarden_cmd(), "run", "--config", str(cfg)], check=True, timeout=60)
    try:
        assert ns.wait_active("hostwarden-e2e.service", timeout=30), ns.journalctl("-u", "hostwarden-e2e").stdout
        time.sleep(3)  # a few clean evaluations first
        yield ns, cfg
    finally:
        ns.systemctl("stop", "hostwarden-e2e.service", timeout=60)


def tickets(cfg: Path) -> list[dict]:
    res = run_cli("tickets", "list", "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def ticket_of(cfg: Path, rule: str) -> list[dict]:
    return [t for t in tickets(cfg) if t["rule"] == rule]


def show(cfg: Path, tid: int) -> dict:
    res = run_cli("tickets", "show", str(tid), "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def agent_log(ns: SystemdNamespace) -> str:
    return ns.journalctl("-u", "hostwarden-e2e", "-o", "cat").stdout


def test_dead_unit_restarted_over_dbus_and_ticket_says_resolved_after_remediation(agent):
    ns, cfg = agent
    pid_before = ns.show("e2e-web.service", "MainPID")["MainPID"]
    ns.systemctl("kill", "--signal=KILL", "e2e-web.service", check=True)
    wait_for(lambda: not ns.is_active("e2e-web.service"), 10, what="unit dead")
    (t,) = wait_for(lambda: ticket_of(cfg, "WebDown"), DEADLINE, what="WebDown ticket")
    (done,) = wait_for(lambda: [x for x in ticket_of(cfg, "WebDown") if x["status"] == "resolved"], DEADLINE,
                       what="WebDown resolved")
    assert done["id"] == t["id"]
    assert ns.is_active("e2e-web.service")
    assert ns.show("e2e-web.service", "MainPID")["MainPID"] != pid_before  # a new process: really restarted
    events = show(cfg, t["id"])["events"]
    body = "\n".join(e["text"] for e in events)
    assert "Remediation: restart_unit e2e-web.service (attempt 1 of 3)" in body, body
    wait_for(lambda: "restart_unit e2e-web.service: ok after" in "\n".join(
        e["text"] for e in show(cfg, t["id"])["events"]), 15, what="result note")
    body = "\n".join(e["text"] for e in show(cfg, t["id"])["events"])
    assert "output: e2e-web.service active (running)" in body
    assert "Cause: resolved after remediation" in body
    journal = ns.journalctl("-u", "e2e-web.service", "-o", "cat").stdout
    assert "Started" in journal  # systemd's own record of the start the agent asked for
    entries = [json.loads(line) for line in ns.journalctl("-u", "hostwarden-e2e", "-o", "json").stdout.splitlines()
               if line.startswith("{")]
    notices = [e for e in entries if "remediation for" in str(e.get("MESSAGE"))]
    assert notices and all(e["PRIORITY"] == "5" for e in notices)  # journald's notice priority


def test_unit_failing_again_is_tried_max_times_then_escalated_no_loop(agent):
    ns, cfg = agent
    ns.systemctl("start", "e2e-broken.service")  # fails: ExecStart=/bin/false
    wait_for(lambda: ns.show("e2e-broken.service", "ActiveState")["ActiveState"] == "failed", 10, what="failed")
    (t,) = wait_for(lambda: ticket_of(cfg, "UnitFailed"), DEADLINE, what="UnitFailed ticket")
    priority_before = t["priority"]

    def text() -> str:
        return "\n".join(e["text"] for e in show(cfg, t["id"])["events"])

    wait_for(lambda: "Remediation exhausted" in text(), DEADLINE * 2, what="exhaustion")
    body = text()
    assert body.count("Remediation: restart_unit e2e-broken.service") == 3, body
    for n in (1, 2, 3):
        assert f"restart_unit e2e-broken.service (attempt {n} of 3)" in body
    assert "3 attempt(s) within 10m did not clear the alert; priority P2 → P1" in body
    assert priority_before == "P2"
    wait_for(lambda: ticket_of(cfg, "UnitFailed")[0]["priority"] == "P1", 15, what="ticket priority raised")
    time.sleep(8)  # longer than verify_within: still no fourth attempt
    assert text().count("Remediation: restart_unit") == 3
    assert ticket_of(cfg, "UnitFailed")[0]["status"] != "resolved"
    starts = ns.journalctl("-u", "e2e-broken.service", "-o", "cat").stdout.count("Starting")
    assert starts == 4, starts  # the test's own start + 3 restarts by the agent


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("HOSTWARDEN_SLOW", "") != "1",
                    reason="~50 s: set HOSTWARDEN_SLOW=1 (the engine's flapping test runs in simulated time always)")
def test_flapping_unit_is_not_restarted_in_a_loop(agent):
    """Every restart works for 5 seconds (the alert clears), then the unit dies again: the attempts count
    across the occurrences, so the fourth failure within the window is escalated, not restarted."""
    ns, cfg = agent
    ns.systemctl("start", "e2e-flappy.service", check=True)
    (t,) = wait_for(lambda: ticket_of(cfg, "FlappyFailed"), DEADLINE, what="FlappyFailed ticket")

    def text() -> str:
        return "\n".join(e["text"] for e in show(cfg, t["id"])["events"])

    wait_for(lambda: "Remediation exhausted" in text(), DEADLINE * 3, interval=1.0, what="exhaustion")
    body = text()
    assert body.count("Remediation: restart_unit e2e-flappy.service") == 3, body
    assert "already 3 attempt(s) within 10m (max 3): not trying again" in body
    assert "Cause: resolved after remediation" in body  # each restart did clear the alert for a while
    assert len(ticket_of(cfg, "FlappyFailed")) == 1  # one ticket, reopened per occurrence
    time.sleep(8)
    assert text().count("Remediation: restart_unit") == 3
    assert ns.show("e2e-flappy.service", "ActiveState")["ActiveState"] == "failed"
    starts = ns.journalctl("-u", "e2e-flappy.service", "-o", "cat").stdout.count("Started")
    assert starts == 4, starts  # the test's own start + 3 restarts by the agent
