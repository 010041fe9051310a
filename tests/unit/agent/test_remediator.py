"""The remediator with a real incident manager and state database and real processes for `run:` actions:
what lands on the ticket timeline, dry-run and the global switch running nothing, exhaustion raising the
priority, the resolution cause, and `hostwarden report`'s figures."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import pytest
from hostwarden.agent.core.logsetup import NOTICE
from hostwarden.agent.core.priority import build_policy
from hostwarden.agent.core.remedy import Action, Plan, RemediationSettings, file_trust_problem
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.remediator import PlanIndex, Remediator
from hostwarden.agent.incidents.report import build_report, render_text
from hostwarden.agent.incidents.state import StateDB

from tests.support.incidents import HOST, alert, firing, resolved, tickets_config


@pytest.fixture
def db(tmp_path: Path):
    state = StateDB(str(tmp_path / "state.db"))
    yield state
    state.close()


def script(tmp_path: Path, body: str, name: str = "fix.sh") -> str:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def setup(db: StateDB, actions: tuple[Action, ...], *, settings: RemediationSettings = RemediationSettings(),
          dry_run: bool = False, trust=lambda path: None, **plan_kw):  # type: ignore[no-untyped-def]
    mgr = IncidentManager(tickets_config(), state=db, hostname=HOST, external_labels={"host": HOST})
    plan = Plan(actions=actions, source="rules.yaml:5", file="rules.yaml", **{"after": 0.0, **plan_kw})
    plans = PlanIndex({("test", "NginxDown"): plan}, {})
    rem = Remediator(settings=settings, plans=plans, incidents=mgr, hostname=HOST, external_labels={"host": HOST},
                     dry_run=dry_run, trust=trust)
    return mgr, rem


def fire(mgr: IncidentManager, at: float = 1000.0, **labels: str):  # type: ignore[no-untyped-def]
    a = alert("NginxDown", severity="critical", at=at, **labels)
    mgr.handle([firing(a)], at)
    return a


def events(db: StateDB, kinds: str = "remediation%") -> list[tuple[str, str]]:
    return [(r["kind"], r["text"]) for r in db.query("SELECT kind, text FROM incident_events WHERE kind LIKE ? "
                                                     "ORDER BY id", (kinds,))]


def settle(rem: Remediator, alerts: list, now: float, timeout: float = 10.0) -> None:
    """Step until no action is running any more (the actions run in the executor's threads)."""
    deadline = time.monotonic() + timeout
    rem.step(alerts, now)
    while any(s.running for s in rem.states.values()):
        assert time.monotonic() < deadline, "action did not finish"
        time.sleep(0.02)
        rem.step(alerts, now)


def test_run_action_executes_and_is_recorded_with_exit_and_output(db, tmp_path, caplog):
    marker = tmp_path / "marker"
    exe = script(tmp_path, f'echo "rotated $1"; echo warn >&2; touch {marker}\n')
    mgr, rem = setup(db, (Action("run", argv=(exe, "$labels.path")),))
    a = fire(mgr, path="/var/log/nginx")
    with caplog.at_level(logging.INFO):
        settle(rem, [a], 1000.0)
    assert marker.exists()
    (attempt, result) = events(db)
    assert attempt == ("remediation", f"Remediation: run {exe} /var/log/nginx (attempt 1 of 3)")
    assert result[0] == "remediation_result"
    assert result[1].startswith(f"run {exe} /var/log/nginx: exit 0 after ")
    assert result[1].endswith("output: rotated /var/log/nginx warn")
    notices = [r for r in caplog.records if r.levelno == NOTICE]
    assert len(notices) == 2 and notices[0].levelname == "NOTICE"
    rem.close()


def test_run_action_sanitised_environment_and_timeout(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "s3cr3t")
    out = tmp_path / "env.txt"
    exe = script(tmp_path, f"env > {out}; sleep 30\n")
    mgr, rem = setup(db, (Action("run", argv=(exe,), timeout=1.0),))
    a = fire(mgr)
    t0 = time.monotonic()
    settle(rem, [a], 1000.0)
    assert time.monotonic() - t0 < 8
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert "SECRET_TOKEN" not in env and env["LC_ALL"] == "C" and env["LANG"] == "C"
    assert "timed out after 1s (process group killed)" in events(db, "remediation_result")[0][1]
    rem.close()


def test_dry_run_and_global_switch_run_nothing(db, tmp_path):
    marker = tmp_path / "marker"
    exe = script(tmp_path, f"touch {marker}\n")
    for how in ({"dry_run": True}, {"settings": RemediationSettings(dry_run=True)}):
        mgr, rem = setup(db, (Action("run", argv=(exe,)),), verify_within=10.0, max_attempts=2, **how)
        a = fire(mgr)
        for now in (1000.0, 1011.0, 1022.0, 1033.0):
            settle(rem, [a], now)
        assert not marker.exists()
        kinds = [k for k, _ in events(db)]
        assert kinds == ["remediation_dry_run", "remediation_dry_run", "remediation_exhausted"]
        assert events(db)[0][1] == f"Dry run: would run {exe} (attempt 1 of 2)"
        assert "dry run: priority unchanged" in events(db)[-1][1]
        assert db.query("SELECT priority FROM incidents")[0]["priority"] == "P2"
        rem.close()
        db.connection.execute("DELETE FROM incident_events")
        db.connection.execute("DELETE FROM outbox")
        db.connection.execute("DELETE FROM incidents")
    mgr, rem = setup(db, (Action("run", argv=(exe,)),), settings=RemediationSettings(enabled=False))
    a = fire(mgr)
    for now in (1000.0, 2000.0, 3000.0):
        settle(rem, [a], now)
    assert not marker.exists()
    assert events(db) == []
    rem.close()


def test_untrusted_file_refused_with_reason(db, tmp_path):
    marker = tmp_path / "marker"
    exe = script(tmp_path, f"touch {marker}\n")
    mgr, rem = setup(db, (Action("run", argv=(exe,)),),
                     trust=lambda path: f"{path} is owned by uid 1000, not by root (uid 0)")
    a = fire(mgr)
    settle(rem, [a], 1000.0)
    settle(rem, [a], 1100.0)
    assert not marker.exists()
    assert events(db) == [("remediation_refused", "remediation refused: rules.yaml is owned by uid 1000, not by "
                                                   "root (uid 0)")]
    rem.close()


def test_label_injection_refused_and_recorded_nothing_runs(db, tmp_path):
    marker = tmp_path / "marker"
    exe = script(tmp_path, f"touch {marker}\n")
    for bad in ("nginx.service; rm -rf /", "../../etc/passwd", "--foo"):
        mgr, rem = setup(db, (Action("run", argv=(exe, "$labels.name")),))
        a = fire(mgr, name=bad)
        settle(rem, [a], 1000.0)
        assert not marker.exists()
        refused, exhausted = events(db)[-2:]
        assert refused[0] == "remediation_refused" and "is not a unit name or an absolute path" in refused[1]
        assert exhausted[0] == "remediation_exhausted" and "all refused" in exhausted[1]
        rem.close()


def test_exhaustion_raises_priority_and_notes_it(db, tmp_path):
    exe = script(tmp_path, "exit 0\n")
    mgr, rem = setup(db, (Action("run", argv=(exe,)),), max_attempts=2, verify_within=60.0)
    a = fire(mgr)
    for now in (1000.0, 1061.0, 1122.0, 1200.0):
        settle(rem, [a], now)
    kinds = [k for k, _ in events(db)]
    assert kinds == ["remediation", "remediation_result", "remediation", "remediation_result",
                     "remediation_exhausted"]
    assert events(db)[-1][1] == ("Remediation exhausted: 2 attempt(s) within 30m did not clear the alert; "
                                 "priority P2 → P1")
    assert db.query("SELECT priority FROM incidents")[0]["priority"] == "P1"
    # each record reaches the ticket at once, not coalesced for update_interval (5m): the escalation too
    updates = [json.loads(r["payload"])["event"] for r in db.query("SELECT payload FROM outbox WHERE op = 'update' "
                                                                  "ORDER BY id")]
    assert len(updates) == 5 and "priority P2 → P1" in updates[-1], updates
    samples = {(x.name, x.labels): x.value for x in rem.self_samples(1200.0)}
    assert samples[("hostwarden_remediation_actions_total", (("action", "run"), ("result", "ok")))] == 2
    assert samples[("hostwarden_remediation_exhausted_total", ())] == 1
    mgr.handle([resolved(a, 1500.0)], 1500.0)  # then someone else fixed it: not counted as an auto-fix
    assert db.query("SELECT text FROM incident_events WHERE kind = 'resolution'")[0]["text"] == "resolved by itself"
    rem.close()


def test_resolution_causes_and_report_figures(db, tmp_path):
    exe = script(tmp_path, "exit 0\n")
    mgr, rem = setup(db, (Action("run", argv=(exe,)),))
    a = fire(mgr, at=1000.0)
    settle(rem, [a], 1000.0)
    mgr.handle([resolved(a, 1030.0)], 1030.0)
    b = dataclasses.replace(alert("DiskFull", severity="critical", at=1000.0), group="other")
    mgr.handle([firing(b)], 1000.0)
    mgr.handle([resolved(b, 1600.0)], 1600.0)
    causes = [r["text"] for r in db.query("SELECT text FROM incident_events WHERE kind = 'resolution' ORDER BY id")]
    assert causes == ["resolved after remediation", "resolved by itself"]
    resolved_text = db.query("SELECT text FROM incident_events WHERE kind = 'resolved' ORDER BY id")[0]["text"]
    assert resolved_text.endswith("Cause: resolved after remediation")
    rep = build_report(db, since=0.0, now=2000.0, policy=build_policy())
    r = rep["remediation"]
    assert r["actions"] == 1 and r["auto_fix_ratio"] == 0.5
    assert r["causes"] == {"resolved after remediation": 1, "resolved by itself": 1, "resolved by a person": 0}
    assert r["mttr_with_remediation_seconds"] == 30.0 and r["mttr_without_remediation_seconds"] == 600.0
    text = render_text(rep)
    assert "Auto-fix rate: 50% (1 resolved after remediation, 1 resolved by itself, 0 resolved by a person)" in text
    assert "MTTR with remediation: 30s   without: 10m" in text
    rem.close()


def test_other_host_and_silenced_alerts_are_left_alone(db, tmp_path):
    marker = tmp_path / "marker"
    exe = script(tmp_path, f"touch {marker}\n")
    mgr, rem = setup(db, (Action("run", argv=(exe,)),))
    other = fire(mgr, host="db7")
    settle(rem, [other], 1000.0)
    rem.is_silenced = lambda alert, now: True
    mine = fire(mgr, at=1000.0, instance="x")
    settle(rem, [mine], 1000.0)
    assert not marker.exists() and events(db) == []
    rem.is_silenced = lambda alert, now: 1 / 0  # a broken hook counts as silenced
    settle(rem, [mine], 1001.0)
    assert not marker.exists()
    rem.close()


def test_notice_level_is_journald_priority_5():
    from hostwarden.agent.core.logsetup import AgentFormatter

    rec = logging.LogRecord("hostwarden.agent.incidents.remediator", NOTICE, "x.py", 1, "restart", None, None)
    assert AgentFormatter(journal=True).format(rec).startswith("<5>level=notice ")
    assert "level=notice" in AgentFormatter().format(rec)


def test_restart_keeps_the_bounds(db, tmp_path):
    """A new Remediator (an agent restart) reads the attempts and the exhaustion back from the record."""
    exe = script(tmp_path, "exit 0\n")
    mgr, rem = setup(db, (Action("run", argv=(exe,)),), max_attempts=2, verify_within=60.0)
    a = fire(mgr)
    settle(rem, [a], 1000.0)
    rem.close()
    mgr, rem = setup(db, (Action("run", argv=(exe,)),), max_attempts=2, verify_within=60.0)
    rem.restore(1010.0)
    settle(rem, [a], 1061.0)  # attempt 2 of 2: the first one still counts
    assert events(db, "remediation")[-1][1].endswith("(attempt 2 of 2)")
    settle(rem, [a], 1122.0)
    assert events(db)[-1][0] == "remediation_exhausted"
    rem.close()
    mgr, rem = setup(db, (Action("run", argv=(exe,)),), max_attempts=2, verify_within=60.0)
    rem.restore(1130.0)
    n = len(events(db))
    settle(rem, [a], 1200.0)  # exhausted before the restart: nothing more, no second escalation
    assert len(events(db)) == n
    assert db.query("SELECT priority FROM incidents")[0]["priority"] == "P1"
    rem.close()


def test_run_action_as_another_user(db, tmp_path):
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    if os.geteuid() != 0:
        pytest.skip("only root can run an action as another user")
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="hw-remediation-"))  # pytest's tmp_path is not traversable by nobody
    try:
        where.chmod(0o755)
        exe = script(where, "id -u; id -G\n")
        mgr, rem = setup(db, (Action("run", argv=(exe,), user="nobody"),))
        a = fire(mgr)
        settle(rem, [a], 1000.0)
        result = events(db, "remediation_result")[0][1]
        assert "exit 0 after" in result and result.endswith(f"output: {nobody.pw_uid} {nobody.pw_gid}")
        rem.close()
    finally:
        shutil.rmtree(where)


def test_program_writable_by_others_is_not_run(db, tmp_path):
    marker = tmp_path / "marker"
    exe = script(tmp_path, f"touch {marker}\n")
    os.chmod(exe, 0o777)
    mgr, rem = setup(db, (Action("run", argv=(exe,)),))
    rem.executor.trust = lambda path: file_trust_problem(path, owner_uid=os.stat(path).st_uid)  # owner: whoever runs
    a = fire(mgr)
    settle(rem, [a], 1000.0)
    assert not marker.exists()
    assert "refused: " in events(db, "remediation_result")[0][1]
    assert "group- or world-writable (mode 0777)" in events(db, "remediation_result")[0][1]
    rem.close()


def test_reload_keeps_attempts(db, tmp_path):
    exe = script(tmp_path, "exit 0\n")
    mgr, rem = setup(db, (Action("run", argv=(exe,)),), max_attempts=1, verify_within=10.0)
    a = fire(mgr)
    settle(rem, [a], 1000.0)
    plan = Plan(actions=(Action("run", argv=(exe, "--again")),), source="rules.yaml:5", file="rules.yaml",
                after=0.0, max_attempts=1, verify_within=10.0)
    rem.configure(settings=RemediationSettings(), plans=PlanIndex({("test", "NginxDown"): plan}, {}), incidents=mgr,
                  hostname=HOST, external_labels={"host": HOST})
    settle(rem, [a], 1020.0)
    assert [k for k, _ in events(db)] == ["remediation", "remediation_result", "remediation_exhausted"]
    rem.close()
