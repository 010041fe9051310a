"""No agent-wide lock around slow work (issue 13 §3-4): a slow diagnosis (a real `journalctl` that hangs) does
not hold up rule evaluation or collection; it runs on the intake thread, bounded by its time budget, and
the ticket still carries it. Alerts about another host get no local diagnosis and the ticket says why."""

from __future__ import annotations

import stat
import time
from dataclasses import replace
from pathlib import Path

from hostwarden.agent.core.sdnotify import Notifier
from hostwarden.agent.daemon import Agent, load_all
from hostwarden.agent.incidents.diagnosis import Diagnoser
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.state import StateDB

from tests.support.incidents import HOST, alert, firing, tickets_config

RULES = """groups:
  - name: slow
    interval: 1s
    rules:
      - alert: UnitDown
        expr: vector(1)
        labels: {severity: warning, unit: demo.service}
"""


def hanging_journalctl(d: Path, seconds: float) -> str:
    exe = d / "journalctl"
    exe.write_text(f"#!/bin/sh\nsleep {seconds}\necho never\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_slow_diagnosis_does_not_hold_up_evaluation_or_collection(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: 10s\n  state_dir: {tmp_path / 'state'}\n  hostname: {HOST}\n"
                   f"web:\n  listen_address: 127.0.0.1:0\nrule_files: [{tmp_path / 'rules.yaml'}]\n")
    config, groups = load_all(str(cfg))
    agent = Agent(config, groups, notifier=Notifier(""))
    try:
        agent.incidents.diagnose = Diagnoser(agent.store, journalctl=hanging_journalctl(tmp_path, 30),
                                             time_budget=2.0)
        agent.intake.start()
        t0 = time.monotonic()
        agent.evaluate_group("slow")  # fires: the incident needs a diagnosis (journal of demo.service)
        agent.collect_cycle()
        agent.evaluate_group("slow")
        held = time.monotonic() - t0
        assert held < 1.0, f"evaluation/collection waited {held:.2f}s for the diagnosis"
        assert agent.intake.drain(10.0)
        diag_time = time.monotonic() - t0
        assert 1.5 <= diag_time < 6.0  # the 2 s budget bounded a journalctl that would take 30 s
        (row,) = agent.state.query("SELECT diagnosis FROM incidents")
        assert "journalctl did not answer within" in row["diagnosis"]
    finally:
        agent.intake.stop(1.0)
        agent.outbox.stop(drain_timeout=0.0)
        agent.state.close()


def test_diagnosis_skipped_for_another_host_and_for_receiver_alerts(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "state.db"))
    calls: list[str] = []

    def diagnose(a, now):  # type: ignore[no-untyped-def]
        calls.append(a.rule)
        return "local diagnosis"

    try:
        m = IncidentManager(tickets_config(), state=db, hostname=HOST, external_labels={},
                            diagnose=diagnose)
        base = alert("DiskFull", at=1000.0)
        other = replace(base, labels=(*base.labels, ("host", "db7")))
        received = replace(alert("Upstream", at=1000.0), source="alertmanager receiver 'r' group {}:{}")
        local = alert("LocalHigh", at=1000.0)
        m.handle([firing(other), firing(received), firing(local)], 1000.0)
        rows = {r["rule"]: r["diagnosis"] for r in db.query("SELECT rule, diagnosis FROM incidents")}
        assert calls == ["LocalHigh"]
        assert rows["LocalHigh"] == "local diagnosis"
        assert rows["DiskFull"].startswith("No local diagnosis: it is about host 'db7', not this host")
        assert "Alertmanager receiver" in rows["Upstream"]
    finally:
        db.close()
