"""Nothing swallowed (issue 13 §5): an SQLite integrity error or an unexpected exception from a backend is
logged at error naming the incident, counted in a metric, and given up after a bounded number of attempts
so one bad operation cannot block its incident's queue (or every later transition) forever.

The faults are real: SQLite triggers that reject one incident's rows (SQLITE_CONSTRAINT, as a CHECK or a
foreign key would), in the real state database and the real local ticket store."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from hostwarden.agent.incidents import manager as manager_mod
from hostwarden.agent.incidents import outbox as outbox_mod
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
from hostwarden.agent.incidents.state import StateDB

from tests.support.incidents import HOST, alert, firing, tickets_config

T0 = 1_700_000_000.0


def samples(m: IncidentManager) -> dict:
    return {(s.name, tuple(sorted(s.labels))): s.value for s in m.self_samples(T0)}


def reject(path: Path, table: str, column: str, value_: str) -> None:
    c = sqlite3.connect(path)
    c.execute(f"CREATE TRIGGER reject_{table} BEFORE INSERT ON {table} WHEN NEW.{column} = '{value_}' "
              f"BEGIN SELECT RAISE(ABORT, 'rejected by test trigger'); END")
    c.commit()
    c.close()


def test_manager_integrity_error_names_incident_counts_and_drops_after_max_attempts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.db"
    StateDB(str(path)).close()
    reject(path, "incidents", "rule", "Bad")
    db = StateDB(str(path))
    try:
        m = IncidentManager(tickets_config(), state=db, hostname=HOST, external_labels={"host": HOST})
        bad, good = alert("Bad", at=T0), alert("Good", at=T0)
        with caplog.at_level(logging.ERROR):
            m.handle([firing(bad), firing(good)], T0)
        # the good incident is not held up by the bad one
        assert [r["rule"] for r in db.query("SELECT rule FROM incidents")] == ["Good"]
        assert any(bad.fingerprint in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
        for i in range(1, manager_mod.MAX_ATTEMPTS):
            m.handle([], T0 + i)
        assert m._backlog == []
        got = samples(m)
        assert got[("hostwarden_incident_transitions_dropped_total", ())] == 1
        assert got[("hostwarden_state_integrity_errors_total", ())] == manager_mod.MAX_ATTEMPTS
        assert "dropped" in caplog.records[-1].getMessage()
        # later transitions go on
        m.handle([firing(alert("Later", at=T0 + 10))], T0 + 10)
        assert sorted(r["rule"] for r in db.query("SELECT rule FROM incidents")) == ["Good", "Later"]
    finally:
        db.close()


def test_outbox_unexpected_backend_error_logged_counted_dead_lettered_others_delivered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tickets_config("backends: [{name: local, type: local}]\n")
    db = StateDB(str(tmp_path / "state.db"))
    backends = build_backends(cfg, state_dir=str(tmp_path))
    try:
        backends["local"].close()  # add the fault to the real ticket store, then let the backend reopen it
        reject(tmp_path / "tickets.db", "tickets", "rule", "Bad")
        m = IncidentManager(cfg, state=db, hostname=HOST, external_labels={"host": HOST})
        bad, good = alert("Bad", at=T0), alert("Good", at=T0)
        m.handle([firing(bad), firing(good)], T0)
        now = [0.0]
        w = OutboxWorker(db, backends, clock=lambda: now[0], rng=lambda: 1.0)
        with caplog.at_level(logging.ERROR):
            for _ in range(outbox_mod.MAX_UNEXPECTED_ATTEMPTS + 2):
                w.run_once(now[0])
                now[0] += 400.0  # past any backoff
        rows = {r["fingerprint"]: r["status"] for r in db.query("SELECT fingerprint, status FROM outbox")}
        assert rows == {bad.fingerprint: "dead", good.fingerprint: "done"}
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert sum(bad.fingerprint in e and "unexpected IntegrityError" in e for e in errors) == \
            outbox_mod.MAX_UNEXPECTED_ATTEMPTS
        assert any("dead-lettered" in e and bad.fingerprint in e for e in errors)
        got = samples(m)
        assert got[("hostwarden_ticket_unexpected_errors_total", (("backend", "local"),))] == \
            outbox_mod.MAX_UNEXPECTED_ATTEMPTS
        assert got[("hostwarden_outbox_dead", (("backend", "local"),))] == 1
    finally:
        for b in backends.values():
            b.close()
        db.close()


def test_successful_reload_keeps_the_incident_backlog(tmp_path: Path) -> None:
    """A transition the state database rejected waits in the incident manager's backlog; a reload builds a
    new manager and must carry it over (before: a successful reload dropped it)."""
    from hostwarden.agent.core.sdnotify import Notifier
    from hostwarden.agent.daemon import Agent, load_all

    state = tmp_path / "state"
    state.mkdir()
    StateDB(str(state / "state.db")).close()
    reject(state / "state.db", "incidents", "rule", "Bad")
    (tmp_path / "rules.yaml").write_text("groups:\n  - name: g\n    rules:\n      - alert: Bad\n"
                                         "        expr: vector(1)\n        labels: {severity: warning}\n")
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: 10s\n  state_dir: {state}\n  hostname: {HOST}\n"
                   f"web:\n  listen_address: 127.0.0.1:0\nrule_files: [{tmp_path / 'rules.yaml'}]\n")
    config, groups = load_all(str(cfg))
    agent = Agent(config, groups, notifier=Notifier(""))
    try:
        agent.evaluate_group("g")
        old = agent.incidents
        assert [t.alert.rule for t, _ in old._backlog] == ["Bad"]
        assert agent.reload()
        assert agent.incidents is not old
        assert [t.alert.rule for t, _ in agent.incidents._backlog] == ["Bad"]
        assert sum(agent.incidents._attempts.values()) == 1  # its attempts so far count towards the bound
    finally:
        agent.outbox.stop(drain_timeout=0.0)
        agent.state.close()
