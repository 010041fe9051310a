"""The IncidentManager with silences and maintenance windows, in simulated time: what is held, what is released."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostwarden.agent.core.alert import AlertState
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.silence import MaintenanceWindow, TimeInterval, parse_matcher
from hostwarden.agent.incidents.state import StateDB
from hostwarden.agent.incidents.suppress import add_silence, expire_silence, list_silences

from tests.support.incidents import HOST, alert, firing, resolved, severity, tickets_config

T0 = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    state = StateDB(str(tmp_path / "state.db"))
    yield state
    state.close()


def manager(db: StateDB, windows: tuple[MaintenanceWindow, ...] = (), text: str = "{}") -> IncidentManager:
    return IncidentManager(tickets_config(text), state=db, hostname=HOST, external_labels={"host": HOST},
                           windows=windows)


def ops(db: StateDB) -> list[tuple[str, str]]:
    return [(r["op"], r["backend"]) for r in db.query("SELECT op, backend FROM outbox ORDER BY id")]


def events(db: StateDB) -> list[str]:
    return [r["kind"] for r in db.query("SELECT kind FROM incident_events ORDER BY id")]


def silence(db: StateDB, *matchers: str, start: float = T0, hours: float = 2.0) -> str:
    s = add_silence(db, [parse_matcher(m) for m in matchers], starts_at=start, ends_at=start + hours * 3600,
                    created_by="alice", comment="patching", now=start)
    return s.id


def test_suppress_alert_firing_in_silence_opens_ticket_once_when_it_ends(db: StateDB) -> None:
    m = manager(db)
    silence(db, "alertname=HighCPU", hours=1)
    a = alert(at=T0 + 60)
    m.handle([firing(a)], T0 + 60)
    m.tick(T0 + 600)
    m.handle([severity(a, "critical", T0 + 700)], T0 + 700)  # a note while silenced: held too
    assert ops(db) == []
    inc = db.query("SELECT * FROM incidents")[0]
    assert (inc["status"], inc["silenced_by"], inc["ack_due"]) == ("open", f"silence {list_silences(db, now=T0)[0].id}",
                                                                    None)
    m.tick(T0 + 3600)  # the silence ends, the alert still fires
    m.tick(T0 + 3610)
    m.tick(T0 + 7200)
    assert ops(db) == [("open", "local")]  # once, and the held note is not sent separately
    inc = db.query("SELECT * FROM incidents")[0]
    assert inc["silenced_by"] == "" and inc["held"] == "[]"
    assert (inc["priority"], inc["ack_due"]) == ("P2", T0 + 3600 + 3600)  # escalated to P2 (1 h), from the end
    assert "silenced" in events(db) and "unsilenced" in events(db)


def test_suppress_alert_fired_and_cleared_inside_window_leaves_record_not_ticket(db: StateDB) -> None:
    m = manager(db)
    silence(db, "alertname=HighCPU", hours=1)
    a = alert(at=T0 + 60)
    m.handle([firing(a)], T0 + 60)
    m.handle([resolved(a, T0 + 900)], T0 + 900)
    m.tick(T0 + 3700)
    assert ops(db) == []
    inc = db.query("SELECT * FROM incidents")[0]
    assert (inc["status"], inc["resolved_at"], inc["silenced_by"], inc["held"]) == ("resolved", T0 + 900, "", "[]")
    assert events(db) == ["opened", "silenced", "resolved", "resolution", "unsilenced"]
    text = db.query("SELECT text FROM incident_events WHERE kind = 'unsilenced'")[0]["text"]
    assert "fired and cleared while silenced: no ticket" in text


def test_suppress_alert_already_firing_keeps_ticket_updates_paused_with_note(db: StateDB) -> None:
    m = manager(db)
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    assert ops(db) == [("open", "local")]
    silence(db, "alertname=HighCPU", start=T0 + 100, hours=1)
    m.tick(T0 + 110)  # the tick notices the new silence: one note says updates are paused
    assert ops(db) == [("open", "local"), ("update", "local")]
    note = json.loads(db.query("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")[0]["payload"])["event"]
    assert note.startswith(f"Silenced by silence {list_silences(db, now=T0)[0].id} (patching) until ")
    assert "updates are paused" in note
    m.handle([severity(a, "critical", T0 + 700)], T0 + 700)
    m.tick(T0 + 1400)
    assert len(ops(db)) == 2  # paused: nothing more while the silence lasts
    m.handle([resolved(a, T0 + 2000)], T0 + 2000)
    assert len(ops(db)) == 2  # the resolve waits for the end too
    m.tick(T0 + 100 + 3600)
    assert ops(db) == [("open", "local"), ("update", "local"), ("resolve", "local")]
    final = json.loads(db.query("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")[0]["payload"])["event"]
    assert final.startswith("Resolved after 33m 20s") and "Escalated warning → critical" in final


def test_suppress_expired_silence_releases_at_next_decision(db: StateDB) -> None:
    m = manager(db)
    sid = silence(db, "alertname=HighCPU", hours=2)
    a = alert(at=T0 + 60)
    m.handle([firing(a)], T0 + 60)
    assert ops(db) == []
    assert expire_silence(db, sid[:4], T0 + 120) is not None  # by prefix, as `silence expire` accepts
    assert expire_silence(db, sid, T0 + 130) is None  # already over
    m.tick(T0 + 125)
    assert ops(db) == [("open", "local")]


def test_suppress_non_matching_alert_opens_at_once(db: StateDB) -> None:
    m = manager(db)
    silence(db, "alertname=HighCPU", 'mountpoint=~"/data.*"')
    m.handle([firing(alert(at=T0 + 1, mountpoint="/"))], T0 + 1)
    m.handle([firing(alert("DiskFull", at=T0 + 1, mountpoint="/data"))], T0 + 1)
    m.handle([firing(alert(at=T0 + 1, mountpoint="/data2"))], T0 + 1)
    assert len(ops(db)) == 2
    rows = db.query("SELECT labels, silenced_by FROM incidents ORDER BY id")
    assert [r["silenced_by"] != "" for r in rows] == [False, False, True]


def test_suppress_recurring_maintenance_window_with_matchers(db: StateDB) -> None:
    # every day 00:00-01:00 UTC for alerts of HighCPU only
    w = MaintenanceWindow("nightly", (parse_matcher("alertname=HighCPU"),),
                          intervals=(TimeInterval(times=((0, 60),)),))
    day = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    m = manager(db, (w,))
    m.handle([firing(alert(at=day + 600))], day + 600)
    m.handle([firing(alert("Other", at=day + 600))], day + 600)
    assert ops(db) == [("open", "local")]
    m.tick(day + 3599)
    assert len(ops(db)) == 1
    m.tick(day + 3600)
    assert ops(db) == [("open", "local"), ("open", "local")]
    assert db.query("SELECT silenced_by FROM incidents WHERE rule = 'HighCPU'")[0]["silenced_by"] == ""


def test_suppress_survives_a_new_manager_on_the_same_file(tmp_path: Path) -> None:
    """The decision state is in the database: a restarted agent (a new manager) releases what the old one held."""
    path = str(tmp_path / "state.db")
    db = StateDB(path)
    silence(db, "alertname=HighCPU", hours=1)
    manager(db).handle([firing(alert(at=T0 + 10))], T0 + 10)
    db.close()
    db2 = StateDB(path)
    m2 = manager(db2)
    m2.tick(T0 + 1800)
    assert ops(db2) == []
    m2.tick(T0 + 3600)
    assert ops(db2) == [("open", "local")]
    db2.close()


def test_suppress_multi_backend_route_queues_one_operation_per_backend(db: StateDB) -> None:
    text = """
backends: [{name: local, type: local}, {name: hook, type: webhook, url: "http://127.0.0.1:9/x"}]
route: [{match: {severity: critical}, backends: [local, hook]}]
"""
    m = manager(db, text=text)
    a = alert(at=T0, severity="critical")
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 60)], T0 + 60)
    m.handle([firing(alert("Warn", at=T0))], T0)
    assert ops(db) == [("open", "local"), ("open", "hook"), ("resolve", "local"), ("resolve", "hook"),
                       ("open", "local")]


def test_suppress_silenced_gauge_counts_firing_covered_alerts(db: StateDB) -> None:
    import dataclasses

    m = manager(db)
    silence(db, "alertname=HighCPU")
    alerts = [alert(at=T0), alert("Other", at=T0), dataclasses.replace(alert(at=T0), state=AlertState.PENDING)]
    got = {s.name: s.value for s in m.suppress.samples(db, alerts, T0 + 5)}
    assert got == {"hostwarden_alerts_silenced": 1.0, "hostwarden_silences_active": 1.0}
    got = {s.name: s.value for s in m.suppress.samples(db, alerts, T0 + 3 * 3600)}
    assert got == {"hostwarden_alerts_silenced": 0.0, "hostwarden_silences_active": 0.0}


def test_suppress_add_silence_rejects_match_everything(db: StateDB) -> None:
    with pytest.raises(ValueError, match="match every alert"):
        add_silence(db, [parse_matcher("env=~.*")], starts_at=T0, ends_at=T0 + 60, created_by="", comment="",
                    now=T0)


def test_suppress_silence_over_and_resolve_before_tick_sends_nothing_for_unopened(db: StateDB) -> None:
    m = manager(db)
    silence(db, "alertname=HighCPU", hours=1)
    a = alert(at=T0 + 60)
    m.handle([firing(a)], T0 + 60)
    m.handle([resolved(a, T0 + 3605)], T0 + 3605)  # the silence ended 5 s ago; no tick ran in between
    m.tick(T0 + 3610)
    assert ops(db) == []
    assert db.query("SELECT held, silenced_by FROM incidents")[0][:] == ("[]", "")


def test_suppress_paused_ticket_resolve_after_silence_before_tick_resolves_once(db: StateDB) -> None:
    m = manager(db)
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    silence(db, "alertname=HighCPU", start=T0 + 10, hours=1)
    m.tick(T0 + 20)
    m.handle([resolved(a, T0 + 3700)], T0 + 3700)
    m.tick(T0 + 3710)
    assert ops(db) == [("open", "local"), ("update", "local"), ("resolve", "local")]


def test_suppress_is_silenced_hook_for_remediation(db: StateDB) -> None:
    """The hook the remediator asks before acting: true while a silence or a window covers the alert."""
    night = MaintenanceWindow(name="night", start=T0 + 7200, end=T0 + 10800)
    m = manager(db, windows=(night,))
    a = alert(at=T0)
    assert not m.is_silenced(a, T0)
    sid = silence(db, "alertname=HighCPU", start=T0 + 60, hours=1)
    assert m.is_silenced(a, T0 + 120)
    assert not m.is_silenced(alert("Other", at=T0), T0 + 120)
    expire_silence(db, sid, T0 + 180)
    assert not m.is_silenced(a, T0 + 240)
    assert m.is_silenced(a, T0 + 7300)  # the window
