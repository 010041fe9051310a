"""Regression tests for the bugs found on the way (issue 13 §6), on real components: the real CLI, the real
incident manager, local ticket store, outbox worker and a real (unstarted) Agent with a real TCP check.
(The UNKNOWN-is-not-P1 case is in tests/rules/shipped/shipped.test.yaml: CheckDown/CheckUnknown.)"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from hostwarden.agent.cmd_tickets import render_ticket
from hostwarden.agent.core.sdnotify import Notifier
from hostwarden.agent.daemon import Agent, load_all
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
from hostwarden.agent.incidents.report import build_report
from hostwarden.agent.incidents.state import StateDB
from hostwarden.exporters.tickets.local import TicketStore

from tests.support.agent import ROOT, hostwarden_cmd, run_cli
from tests.support.incidents import HOST, alert, firing, resolved, severity, tickets_config

T0 = 1_700_000_000.0


def config(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: 10s\n  state_dir: {tmp_path / 'state'}\n  hostname: {HOST}\n"
                   f"web:\n  listen_address: 127.0.0.1:0\n{body}")
    return cfg


@pytest.mark.parametrize("rule", ["CheckDown", "SystemdUnitFailed", "HostFilesystemFillingUp"])
def test_tickets_preview_rule_without_thresholds_renders(tmp_path: Path, rule: str) -> None:
    cfg = config(tmp_path, f"rule_files: ['{ROOT}/config/rules/*.yaml']\n")
    res = run_cli("tickets", "preview", rule, "--no-diagnosis", "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "AttributeError" not in res.stderr
    out = json.loads(res.stdout)
    assert rule in json.dumps(out)


def test_escalation_brings_the_new_priority_deadlines(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "state.db"))
    cfg = tickets_config("backends: [{name: local, type: local}]\n")
    backends = build_backends(cfg, state_dir=str(tmp_path))
    try:
        m = IncidentManager(cfg, state=db, hostname=HOST, external_labels={"host": HOST})
        w = OutboxWorker(db, backends, clock=lambda: 0.0)
        a = alert("HighMemory", at=T0)
        m.handle([firing(a)], T0)
        w.run_once(0.0)
        (before,) = db.query("SELECT priority, ack_due, resolve_due, fired_at FROM incidents")
        m.handle([severity(a, "critical", T0 + 60)], T0 + 60)
        w.run_once(1.0)
        (after,) = db.query("SELECT priority, ack_due, resolve_due, fired_at FROM incidents")
        assert before["priority"] != after["priority"]
        want = m.policy.deadlines(after["priority"], float(after["fired_at"]))
        assert (after["ack_due"], after["resolve_due"]) == want
        assert want != (before["ack_due"], before["resolve_due"])
        (ticket,) = TicketStore(str(tmp_path / "tickets.db")).list()
        assert (ticket["priority"], ticket["ack_due"], ticket["resolve_due"]) == (after["priority"], *want)
    finally:
        for b in backends.values():
            b.close()
        db.close()


def test_tickets_show_names_who_resolved_not_who_acknowledged(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "state.db"))
    cfg = tickets_config("backends: [{name: local, type: local}]\n")
    backends = build_backends(cfg, state_dir=str(tmp_path))
    store = TicketStore(str(tmp_path / "tickets.db"))
    try:
        m = IncidentManager(cfg, state=db, hostname=HOST, external_labels={"host": HOST})
        w = OutboxWorker(db, backends, clock=lambda: 0.0)
        a = alert("HighMemory", at=T0)
        m.handle([firing(a)], T0)
        w.run_once(0.0)
        store.act(1, "ack", by="alice", now=T0 + 30)
        m.handle([resolved(a, T0 + 600)], T0 + 600)
        w.run_once(1.0)
        text = render_ticket(store.get(1), now=T0 + 700)
        assert "status:      resolved (by hostwarden)" in text
        assert "resolved (by alice)" not in text
        assert "acknowledged: " in text and " by alice" in text
    finally:
        store.close()
        for b in backends.values():
            b.close()
        db.close()


def test_tickets_show_into_a_closed_pipe_prints_no_traceback(tmp_path: Path) -> None:
    cfg = config(tmp_path, "rule_files: []\n")
    store = TicketStore(str(tmp_path / "state" / "tickets.db"))
    with store._tx() as c:
        c.execute("INSERT INTO tickets (fingerprint, title, status, priority, opened_at, status_changed_at, "
                  "updated_at, diagnosis) VALUES ('fp', 't', 'new', 'P3', 0, 0, 0, ?)", ("x" * 200_000,))
    store.close()
    proc = subprocess.Popen([*hostwarden_cmd(), "tickets", "show", "1", "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)  # `| head -c 10`: read a little, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(30)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_removed_check_closes_its_ticket_as_removed_and_stays_out_of_mttr(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: the TCP check fails
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: checks\n    rules:\n      - alert: CheckFailing\n        expr: hostwarden_check_up == 0\n"
        "        labels: {severity: warning}\n")
    check = (f"checks:\n  - {{name: api, type: tcp, address: '127.0.0.1:{port}', interval: 1s, timeout: 1s}}\n")
    cfg = config(tmp_path, f"rule_files: [{tmp_path / 'rules.yaml'}]\n" + check)
    conf, groups = load_all(str(cfg))
    agent = Agent(conf, groups, notifier=Notifier(""))
    try:
        agent._start_checks()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not agent.checks.last_results():
            time.sleep(0.05)
        # the runner's publisher thread puts results into the store a moment after `last_results()` has
        # them: publish here too, so the evaluation below sees the failing check whichever came first
        agent.publish_checks(agent.checks)
        agent.evaluate_group("checks")
        agent.outbox.run_once(0.0)
        (t,) = TicketStore(str(tmp_path / "state" / "tickets.db")).list()
        assert t["status"] == "new" and t["labels"]["check"] == "api"
        config(tmp_path, f"rule_files: [{tmp_path / 'rules.yaml'}]\n")  # the check is removed
        assert agent.reload()
        agent.outbox.run_once(1.0)
        agent.evaluate_group("checks")  # the alert's series is gone: its resolution changes nothing now
        agent.outbox.run_once(2.0)
        store = TicketStore(str(tmp_path / "state" / "tickets.db"))
        ticket = store.get(t["id"])
        assert ticket["status"] == "closed"
        assert [e["kind"] for e in ticket["events"]] == ["opened", "closed"]
        assert "removed from the configuration" in ticket["events"][-1]["text"]
        kinds = [r["kind"] for r in agent.state.query("SELECT kind FROM incident_events ORDER BY id")]
        assert "retired" in kinds and "resolved" not in kinds
        rep = build_report(agent.state, since=0, now=time.time() + 1, policy=agent.incidents.policy)
        assert rep["incidents"]["count"] == 1 and rep["incidents"]["open"] == 0
        assert rep["incidents"]["mttr_seconds"] is None  # not a fix
    finally:
        agent.outbox.stop(drain_timeout=0.0)
        if agent.checks is not None:
            agent.checks.close()
        agent.state.close()


def test_check_config_reports_every_error_of_every_file_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "a.rules.yaml").write_text(
        "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n"
        "      - alert: A2\n        expr: up\n        for: 5q\n")
    (tmp_path / "b.rules.yaml").write_text(
        "groups:\n  - name: b\n    rules:\n      - alert: B\n        expr: up\n        bogus_key: 1\n")
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text("global:\n  interval: 5x\nweb:\n  listen_adress: 1\nrule_files: [a.rules.yaml, b.rules.yaml]\n")
    res = run_cli("check-config", str(cfg))
    assert res.returncode == 2
    out = res.stdout
    for where in (f"{cfg}:2:", f"{cfg}:4:", f"{tmp_path / 'a.rules.yaml'}:5:", f"{tmp_path / 'a.rules.yaml'}:8:",
                  f"{tmp_path / 'b.rules.yaml'}:6:"):
        assert where in out, (where, out)


def test_check_config_reports_rule_errors_and_backend_problems_together(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("groups:\n  - name: r\n    rules:\n      - alert: R\n        expr: up(\n")
    (tmp_path / "tokdir").mkdir()
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\nrule_files: [r.yaml]\ntickets:\n  backends:\n"
                   f"    - {{name: hook, type: webhook, url: 'http://127.0.0.1:9/', "
                   f"token_file: {tmp_path / 'tokdir'}}}\n")
    res = run_cli("check-config", str(cfg))
    assert res.returncode == 2
    assert f"{tmp_path / 'r.yaml'}:5:" in res.stdout and "tickets:" in res.stdout and "cannot read" in res.stdout, \
        res.stdout
