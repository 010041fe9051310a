"""IncidentManager decisions with explicit timestamps: what lands in the outbox, and what does not."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hostwarden.agent.core.incident import RemoteStatus, TicketRef
from hostwarden.agent.incidents.manager import IncidentManager, apply_remote_statuses
from hostwarden.agent.incidents.state import StateDB
from hostwarden.rules.alerts import TransitionKind

from tests.support.incidents import HOST, alert, firing, flapping, resolved, severity, tickets_config

T0 = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    state = StateDB(str(tmp_path / "state.db"))
    yield state
    state.close()


def manager(db: StateDB, text: str = "{}", diagnose=None) -> IncidentManager:  # type: ignore[no-untyped-def]
    return IncidentManager(tickets_config(text), state=db, hostname=HOST, external_labels={"host": HOST},
                           diagnose=diagnose)


def ops(db: StateDB) -> list[tuple[str, str, str]]:
    """(op, fingerprint, event text) of every outbox row, in order."""
    return [(r["op"], r["fingerprint"], json.loads(r["payload"])["event"])
            for r in db.query("SELECT op, fingerprint, payload FROM outbox ORDER BY id")]


def incident(db: StateDB, fp: str) -> dict:
    return dict(db.query("SELECT * FROM incidents WHERE fingerprint = ? ORDER BY id DESC LIMIT 1", (fp,))[0])


def test_incidents_firing_opens_one_incident_and_replay_adds_nothing(db: StateDB) -> None:
    m = manager(db, diagnose=lambda a, now: f"diag of {a.rule}")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([firing(a)], T0 + 10)  # replayed after a crash, or a restart that lost the rule state
    assert [o[0] for o in ops(db)] == ["open"]
    inc = incident(db, a.fingerprint)
    assert (inc["status"], inc["priority"], inc["backend"], inc["diagnosis"]) == ("open", "P3", "local",
                                                                                 "diag of HighCPU")
    payload = json.loads(db.query("SELECT payload FROM outbox")[0]["payload"])
    assert payload["incident"]["fingerprint"] == a.fingerprint
    assert payload["incident"]["extra_fields"]["ack_due"] == T0 + 4 * 3600  # P3: acknowledge within 4 h


def test_incidents_pending_transition_ignored(db: StateDB) -> None:
    from dataclasses import replace

    m = manager(db)
    t = firing(alert(at=T0))
    m.handle([replace(t, kind=TransitionKind.PENDING)], T0)
    assert ops(db) == [] and db.query("SELECT COUNT(*) FROM incidents")[0][0] == 0


def test_incidents_resolved_queues_resolve_with_duration(db: StateDB) -> None:
    m = manager(db)
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 754)], T0 + 754)
    m.handle([resolved(a, T0 + 760)], T0 + 760)  # replay: nothing more
    assert [o[0] for o in ops(db)] == ["open", "resolve"]
    assert ops(db)[1][2].startswith("Resolved after 12m 34s")
    inc = incident(db, a.fingerprint)
    assert (inc["status"], inc["resolved_at"]) == ("resolved", T0 + 754)


def test_incidents_on_resolve_comment_queues_update_instead(db: StateDB) -> None:
    m = manager(db, "backends: [{name: ops, type: local, on_resolve: comment}]")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 60)], T0 + 60)
    assert [(o[0], o[2][:14]) for o in ops(db)] == [("open", ""), ("update", "Resolved after")]


def test_incidents_refire_within_reopen_window_reopens_same_incident(db: StateDB) -> None:
    m = manager(db, "reopen_window: 1h")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 100)], T0 + 100)
    m.handle([firing(a, T0 + 100 + 3599)], T0 + 3699)
    assert [o[0] for o in ops(db)] == ["open", "resolve", "reopen"]
    assert db.query("SELECT COUNT(*) FROM incidents")[0][0] == 1
    inc = incident(db, a.fingerprint)
    assert (inc["status"], inc["reopen_count"], inc["resolved_at"], inc["fired_at"]) == ("open", 1, None, T0 + 3699)


def test_incidents_refire_after_reopen_window_opens_new_incident(db: StateDB) -> None:
    m = manager(db, "reopen_window: 1h")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 100)], T0 + 100)
    m.handle([firing(a, T0 + 100 + 3600)], T0 + 3700)
    assert [o[0] for o in ops(db)] == ["open", "resolve", "open"]
    assert db.query("SELECT COUNT(*) FROM incidents")[0][0] == 2


def test_incidents_reopen_window_zero_never_reopens(db: StateDB) -> None:
    m = manager(db, "reopen_window: 0s")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 10)], T0 + 10)
    m.handle([firing(a, T0 + 11)], T0 + 11)
    assert [o[0] for o in ops(db)] == ["open", "resolve", "open"]


def test_incidents_escalation_updates_coalesced_per_update_interval(db: StateDB) -> None:
    m = manager(db, "update_interval: 5m")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([severity(a, "critical", T0 + 10)], T0 + 10)  # first update: sent at once
    crit = severity(a, "critical", T0 + 10).alert
    m.handle([severity(crit, "warning", T0 + 20)], T0 + 20)  # within 5 m: waits
    m.handle([severity(a, "critical", T0 + 30)], T0 + 30)
    assert [o[0] for o in ops(db)] == ["open", "update"]
    assert "Escalated warning → critical, priority P2" in ops(db)[1][2]
    assert incident(db, a.fingerprint)["priority"] == "P2"
    m.tick(T0 + 200)
    assert len(ops(db)) == 2
    m.tick(T0 + 10 + 300)
    assert [o[0] for o in ops(db)] == ["open", "update", "update"]
    text = ops(db)[2][2]
    assert "De-escalated critical → warning" in text and "Escalated warning → critical" in text
    m.tick(T0 + 1000)
    assert len(ops(db)) == 3


def test_incidents_flapping_one_note_then_silence_until_it_stops(db: StateDB) -> None:
    m = manager(db, "update_interval: 1s")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([flapping(a, True, T0 + 10)], T0 + 10)
    m.handle([flapping(a, True, T0 + 11)], T0 + 11)  # replay
    for i in range(6):
        m.handle([severity(a, "critical" if i % 2 == 0 else "warning", T0 + 20 + i * 10)], T0 + 20 + i * 10)
        m.tick(T0 + 25 + i * 10)
    assert [o[0] for o in ops(db)] == ["open", "update"]
    assert ops(db)[1][2].startswith("Flapping")
    m.handle([flapping(a, False, T0 + 200)], T0 + 200)
    assert [o[0] for o in ops(db)] == ["open", "update", "update"]
    assert ops(db)[2][2].startswith("Stopped flapping")
    kinds = [r["kind"] for r in db.query("SELECT kind FROM incident_events ORDER BY id")]
    assert kinds.count("escalated") == 3 and kinds.count("deescalated") == 3  # recorded, not sent


def test_incidents_storm_groups_incidents_beyond_threshold(db: StateDB) -> None:
    calls: list[str] = []
    m = manager(db, "storm_threshold: 3\nstorm_window: 1m", diagnose=lambda a, now: calls.append(a.rule) or "d")
    alerts = [alert("DiskFailing", device=f"sd{i}", at=T0) for i in range(10)]
    m.handle([firing(a) for a in alerts], T0)
    rows = ops(db)
    assert [o[0] for o in rows] == ["open"] * 4  # 3 individual, then the storm ticket listing the other 7
    storm = dict(db.query("SELECT * FROM incidents WHERE is_storm = 1")[0])
    members = db.query("SELECT fingerprint FROM incidents WHERE storm_id = ?", (storm["id"],))
    assert len(members) == 7
    assert len(calls) == 3  # storm members are not diagnosed one by one
    storm_payload = json.loads(db.query("SELECT payload FROM outbox WHERE fingerprint = ?",
                                        (storm["fingerprint"],))[0]["payload"])
    assert storm_payload["incident"]["title"] == f"Alert storm on {HOST}: 7 grouped incidents"
    assert len(storm_payload["incident"]["storm_of"]) == 7
    for a in alerts:
        m.handle([resolved(a, T0 + 600)], T0 + 600)
    m.tick(T0 + 601)
    kinds = [(o[0], o[1]) for o in ops(db)]
    assert ("resolve", storm["fingerprint"]) in kinds
    assert sum(1 for k, fp in kinds if k == "resolve" and fp != storm["fingerprint"]) == 3
    assert incident(db, storm["fingerprint"])["status"] == "resolved"


def test_incidents_storm_member_joins_listed_in_storm_update(db: StateDB) -> None:
    m = manager(db, "storm_threshold: 1\nupdate_interval: 1m")
    first, second, third = (alert("DiskFailing", device=f"sd{i}", at=T0) for i in range(3))
    m.handle([firing(first)], T0)
    m.handle([firing(second)], T0 + 1)
    m.handle([firing(third)], T0 + 2)
    m.tick(T0 + 120)
    storm_fp = db.query("SELECT fingerprint FROM incidents WHERE is_storm = 1")[0][0]
    updates = [o for o in ops(db) if o[1] == storm_fp and o[0] == "update"]
    assert len(updates) == 1  # the storm opened listing `second`; `third` joined later: one note
    assert third.fingerprint in updates[0][2]


def test_incidents_restart_while_firing_neither_opens_nor_resolves(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    db = StateDB(path)
    a = alert(at=T0)
    manager(db).handle([firing(a)], T0)
    db.close()
    db2 = StateDB(path)
    m2 = manager(db2)
    m2.handle([firing(a, T0 + 30)], T0 + 30)  # the rule state was lost: the alert fires "again"
    m2.tick(T0 + 40)
    assert [o[0] for o in ops(db2)] == ["open"]
    m2.handle([resolved(a, T0 + 90)], T0 + 90)
    assert [o[0] for o in ops(db2)] == ["open", "resolve"]
    db2.close()


def test_incidents_route_by_label_and_default_first_backend(db: StateDB) -> None:
    m = manager(db, "backends: [{name: ops, type: local}, {name: db, type: local, path: /tmp/x.db}]\n"
                    "route: [{match: {team: db}, backend: db}]")
    m.handle([firing(alert("A", team="db", at=T0)), firing(alert("B", team="web", at=T0))], T0)
    assert {r["rule"]: r["backend"] for r in db.query("SELECT rule, backend FROM incidents")} == {"A": "db",
                                                                                               "B": "ops"}


def test_incidents_no_backends_tracks_incidents_without_outbox(db: StateDB) -> None:
    m = manager(db, "backends: []")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 5)], T0 + 5)
    assert ops(db) == [] and incident(db, a.fingerprint)["status"] == "resolved"


def test_incidents_sla_breach_recorded_once(db: StateDB, caplog: pytest.LogCaptureFixture) -> None:
    m = manager(db, "sla: {P3: {acknowledge: 10m, resolve: 1h}}")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.tick(T0 + 599)
    assert incident(db, a.fingerprint)["ack_breached"] == 0
    with caplog.at_level(logging.WARNING):
        m.tick(T0 + 601)
        m.tick(T0 + 700)
    assert incident(db, a.fingerprint)["ack_breached"] == 1
    assert caplog.text.count("acknowledge target") == 1
    m.tick(T0 + 3601)
    breaches = db.query("SELECT text FROM incident_events WHERE kind = 'sla_breach' ORDER BY id")
    assert [r[0] for r in breaches] == ["Not acknowledged within 10m (P3)", "Not resolved within 1h (P3)"]


def test_incidents_remote_ack_sets_acknowledged_at(db: StateDB) -> None:
    m = manager(db)
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    with db.tx() as c:
        c.execute("UPDATE incidents SET ticket_id = '7'")
        c.execute("UPDATE outbox SET status = 'done'")
    ref = TicketRef("local", "7")
    assert apply_remote_statuses(db, [RemoteStatus(ref, "acknowledged", changed_at=T0 + 300)], T0 + 400) == 1
    assert apply_remote_statuses(db, [RemoteStatus(ref, "acknowledged", changed_at=T0 + 300)], T0 + 500) == 0
    assert incident(db, a.fingerprint)["acknowledged_at"] == T0 + 300


def test_incidents_ticket_closed_by_person_mutes_until_fires_anew(db: StateDB) -> None:
    m = manager(db, "update_interval: 1s")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    with db.tx() as c:
        c.execute("UPDATE incidents SET ticket_id = '7'")
        c.execute("UPDATE outbox SET status = 'done'")
    apply_remote_statuses(db, [RemoteStatus(TicketRef("local", "7"), "closed", changed_at=T0 + 50)], T0 + 60)
    assert incident(db, a.fingerprint)["muted"] == 1
    m.handle([severity(a, "critical", T0 + 100)], T0 + 100)
    m.tick(T0 + 200)
    m.handle([resolved(a, T0 + 300)], T0 + 300)
    assert [o[0] for o in ops(db)] == ["open"]  # no note, no resolve on the ticket the person closed
    m.handle([firing(a, T0 + 400)], T0 + 400)  # fires anew: reopened as usual
    assert [o[0] for o in ops(db)] == ["open", "reopen"]
    assert incident(db, a.fingerprint)["muted"] == 0


def test_incidents_remote_state_older_than_occurrence_ignored(db: StateDB) -> None:
    m = manager(db)
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    with db.tx() as c:
        c.execute("UPDATE incidents SET ticket_id = '7'")
        c.execute("UPDATE outbox SET status = 'done'")
    # the ticket's "resolved" is from before this occurrence started (our own earlier resolve)
    apply_remote_statuses(db, [RemoteStatus(TicketRef("local", "7"), "resolved", changed_at=T0 - 10)], T0 + 5)
    assert incident(db, a.fingerprint)["muted"] == 0


def test_incidents_state_write_failure_keeps_transitions_and_retries(db: StateDB) -> None:
    m = manager(db)
    a = alert(at=T0)
    pages = db.query("PRAGMA page_count")[0][0]
    db.connection.execute(f"PRAGMA max_page_count = {pages}")
    big = [alert(f"R{i}", at=T0, pad="x" * 3000) for i in range(15)]
    m.handle([firing(x) for x in [a, *big]], T0)
    assert db.query("SELECT COUNT(*) FROM incidents")[0][0] == 0
    db.connection.execute("PRAGMA max_page_count = 1000000")
    m.tick(T0 + 5)
    assert db.query("SELECT COUNT(*) FROM incidents")[0][0] == 16
    assert len(ops(db)) == 16


def test_incidents_self_samples_report_open_pending_and_oldest(db: StateDB) -> None:
    m = manager(db)
    m.handle([firing(alert("A", at=T0)), firing(alert("B", at=T0))], T0)
    samples = {(s.name, s.labels): s.value for s in m.self_samples(T0 + 30)}
    assert samples[("hostwarden_incidents_open", ())] == 2
    assert samples[("hostwarden_outbox_pending", (("backend", "local"),))] == 2
    assert samples[("hostwarden_outbox_oldest_age_seconds", (("backend", "local"),))] == 30
    assert samples[("hostwarden_outbox_dead", (("backend", "local"),))] == 0


def test_incidents_diagnosis_failure_does_not_lose_incident(db: StateDB) -> None:
    def broken(a, now):  # type: ignore[no-untyped-def]
        raise RuntimeError("psutil exploded")

    m = manager(db, diagnose=broken)
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    assert [o[0] for o in ops(db)] == ["open"]
    assert "diagnosis failed: RuntimeError" in incident(db, a.fingerprint)["diagnosis"]


def test_incidents_firing_incidents_snapshots_open_ones_with_ticket_refs(db: StateDB) -> None:
    m = manager(db)
    a, b = alert("A", at=T0), alert("B", at=T0)
    m.handle([firing(a), firing(b)], T0)
    m.handle([resolved(b, T0 + 5)], T0 + 5)
    with db.tx() as c:
        c.execute("UPDATE incidents SET ticket_id = '3', ticket_url = 'local:3' WHERE fingerprint = ?",
                  (a.fingerprint,))
    (snap,) = m.firing_incidents()
    assert (snap.fingerprint, snap.ticket_ref.id, snap.resolved_at) == (a.fingerprint, "3", None)  # type: ignore
    assert [e.kind for e in snap.timeline] == ["opened"] and snap.extra_fields["ack_due"] == T0 + 4 * 3600
