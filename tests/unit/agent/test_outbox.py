"""The outbox worker with explicit monotonic time, against a real HTTP receiver and the real local store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.outbox import (
    BackendInitError,
    OutboxWorker,
    TokenBucket,
    backoff,
    build_backends,
    list_outbox,
    retry,
)
from hostwarden.agent.incidents.state import StateDB
from hostwarden.exporters.tickets.local import LocalBackend

from tests.support.incidents import HOST, alert, firing, resolved, severity, tickets_config
from tests.support.webhook_receiver import CountingReceiver, Reply

T0 = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    state = StateDB(str(tmp_path / "state.db"))
    yield state
    state.close()


@pytest.fixture
def receiver() -> CountingReceiver:
    r = CountingReceiver().up()
    yield r
    r.close()


def setup(db: StateDB, tmp_path: Path, text: str) -> tuple[IncidentManager, OutboxWorker, dict]:
    cfg = tickets_config(text)
    m = IncidentManager(cfg, state=db, hostname=HOST, external_labels={"host": HOST})
    backends = build_backends(cfg, state_dir=str(tmp_path))
    return m, OutboxWorker(db, backends, clock=lambda: 0.0, rng=lambda: 1.0), backends


def hook(url: str, extra: str = "") -> str:
    return f"backends: [{{name: hook, type: webhook, url: '{url}'{extra}}}]\n"


def statuses(db: StateDB) -> list[tuple[str, str]]:
    return [(r["op"], r["status"]) for r in db.query("SELECT op, status FROM outbox ORDER BY id")]


def test_outbox_delivers_in_order_per_incident_and_records_ticket(db: StateDB, tmp_path: Path,
                                                                  receiver: CountingReceiver) -> None:
    m, w, _ = setup(db, tmp_path, hook(receiver.url))
    a, b = alert("A", at=T0), alert("B", at=T0)
    m.handle([firing(a), firing(b)], T0)
    m.handle([severity(a, "critical", T0 + 5)], T0 + 5)
    m.handle([resolved(a, T0 + 9), resolved(b, T0 + 9)], T0 + 9)
    assert w.run_once(0.0) == 5
    per_fp: dict[str, list[str]] = {}
    for r in receiver.distinct():
        per_fp.setdefault(r.fingerprint, []).append(r.op)
    assert per_fp == {a.fingerprint: ["open", "update", "resolve"], b.fingerprint: ["open", "resolve"]}
    tickets = {r["fingerprint"]: r["ticket_id"] for r in db.query("SELECT fingerprint, ticket_id FROM incidents")}
    assert sorted(tickets.values()) == ["T-1", "T-2"]
    resolves = [r for r in receiver.requests if r.op == "resolve"]
    assert {r.body["ticket"]["id"] for r in resolves} == {"T-1", "T-2"}
    assert all(s == "done" for _, s in statuses(db))


def test_outbox_transient_error_backs_off_and_retries_with_same_key(db: StateDB, tmp_path: Path,
                                                                   receiver: CountingReceiver) -> None:
    m, w, _ = setup(db, tmp_path, hook(receiver.url))
    m.handle([firing(alert(at=T0))], T0)
    receiver.script([Reply(500), Reply(502)])
    assert w.run_once(0.0) == 0
    assert w.run_once(0.9) == 0 and len(receiver.requests) == 1  # backoff: 1 s after the first failure
    assert w.run_once(1.0) == 0 and len(receiver.requests) == 2  # second failure: 2 s more
    assert w.run_once(2.9) == 0 and len(receiver.requests) == 2
    assert w.run_once(3.0) == 1
    keys = {r.key for r in receiver.requests}
    assert len(receiver.requests) == 3 and len(keys) == 1 and keys.pop().startswith("hw-")
    row = list_outbox(db, include_done=True)[0]
    assert (row["attempts"], row["status"]) == (3, "done")


def test_outbox_retry_after_pauses_whole_backend(db: StateDB, tmp_path: Path, receiver: CountingReceiver) -> None:
    m, w, _ = setup(db, tmp_path, hook(receiver.url))
    m.handle([firing(alert("A", at=T0)), firing(alert("B", at=T0))], T0)
    receiver.script([Reply(429, {"Retry-After": "30"})])
    assert w.run_once(0.0) == 0
    assert len(receiver.requests) == 1  # B was not tried: the backend said wait
    assert w.run_once(29.9) == 0 and len(receiver.requests) == 1
    assert w.run_once(30.0) == 2
    assert [r.status for r in receiver.requests] == [429, 200, 200]


def test_outbox_permanent_error_dead_letters_blocks_only_that_incident_and_retry_requeues(
        db: StateDB, tmp_path: Path, receiver: CountingReceiver, caplog: pytest.LogCaptureFixture) -> None:
    m, w, _ = setup(db, tmp_path, hook(receiver.url))
    a, b = alert("A", at=T0), alert("B", at=T0)
    m.handle([firing(a)], T0)
    m.handle([firing(b)], T0)
    m.handle([resolved(a, T0 + 5)], T0 + 5)
    receiver.script([Reply(400)])
    assert w.run_once(0.0) == 1  # B's open; A's open is dead, A's resolve waits behind it
    assert statuses(db) == [("open", "dead"), ("open", "done"), ("resolve", "pending")]
    dead = next(r for r in list_outbox(db) if r["status"] == "dead")
    assert "400" in dead["last_error"] and "dead-lettered" in caplog.text
    assert w.run_once(100.0) == 0  # still blocked
    assert retry(db, dead["id"]) and not retry(db, dead["id"])
    assert w.run_once(101.0) == 2
    assert [r.op for r in receiver.distinct() if r.fingerprint == a.fingerprint] == ["open", "resolve"]


def test_outbox_rate_limit_queues_excess_without_dropping(db: StateDB, tmp_path: Path,
                                                          receiver: CountingReceiver) -> None:
    m, w, _ = setup(db, tmp_path, hook(receiver.url, ", rate_limit: 2, burst: 3"))
    m.handle([firing(alert(f"R{i}", at=T0)) for i in range(10)], T0)
    assert w.run_once(0.0) == 3
    assert w.run_once(0.5) == 1
    assert w.run_once(0.6) == 0
    assert w.run_once(1.0) == 1
    assert w.run_once(100.0) == 3  # the bucket holds at most `burst` tokens
    assert w.run_once(101.5) == 2
    assert len(receiver.distinct()) == 10 and all(s == "done" for _, s in statuses(db))


def test_outbox_find_adopts_ticket_created_before_a_crash(db: StateDB, tmp_path: Path) -> None:
    m, w, backends = setup(db, tmp_path, "{}")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    local: LocalBackend = backends["local"]  # type: ignore[assignment]
    payload = json.loads(db.query("SELECT payload FROM outbox")[0]["payload"])
    from hostwarden.agent.core.incident import incident_from_dict

    existing = local.open(incident_from_dict(payload["incident"]))  # the ticket a crashed attempt created
    assert w.run_once(0.0) == 1
    assert len(local.store.list()) == 1
    assert db.query("SELECT ticket_id FROM incidents")[0][0] == existing.id


def test_outbox_ticket_of_older_incident_not_adopted(db: StateDB, tmp_path: Path) -> None:
    m, w, backends = setup(db, tmp_path, "reopen_window: 1m")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    m.handle([resolved(a, T0 + 10)], T0 + 10)
    m.handle([firing(a, T0 + 500)], T0 + 500)  # after the window: a new incident, a new ticket
    assert w.run_once(0.0) == 3
    tickets = backends["local"].store.list()
    assert [(t["id"], t["status"]) for t in tickets] == [(1, "resolved"), (2, "new")]


def test_outbox_poll_brings_ack_and_close_from_local_store(db: StateDB, tmp_path: Path) -> None:
    m, w, backends = setup(db, tmp_path, "update_interval: 1s")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    assert w.run_once(0.0) == 1
    store = backends["local"].store
    store.act(1, "ack", by="alice", now=T0 + 120)
    assert w.poll_once(0.0) == 1
    assert db.query("SELECT acknowledged_at FROM incidents")[0][0] == T0 + 120
    assert w.poll_once(5.0) == 0  # the local backend polls every 10 s
    store.act(1, "close", by="alice", now=T0 + 130)
    assert w.poll_once(10.0) == 1
    m.handle([severity(a, "critical", T0 + 140)], T0 + 140)
    m.handle([resolved(a, T0 + 150)], T0 + 150)
    assert w.run_once(11.0) == 0
    assert store.get(1)["status"] == "closed" and [e["kind"] for e in store.get(1)["events"]] == [
        "opened", "acknowledged", "closed"]


def test_outbox_thread_drains_on_stop_and_leaves_undeliverable_rows(db: StateDB, tmp_path: Path,
                                                                   receiver: CountingReceiver) -> None:
    cfg = tickets_config(hook(receiver.url))
    m = IncidentManager(cfg, state=db, hostname=HOST, external_labels={"host": HOST})
    w = OutboxWorker(db, build_backends(cfg, state_dir=str(tmp_path)))
    w.start()
    m.handle([firing(alert(f"R{i}", at=T0)) for i in range(3)], T0)
    w.wake()
    w.stop(drain_timeout=10.0)
    assert len(receiver.distinct()) == 3
    receiver.down()
    w2 = OutboxWorker(db, build_backends(cfg, state_dir=str(tmp_path)))
    w2.start()
    m.handle([firing(alert("Late", at=T0))], T0)
    w2.wake()
    started = time.monotonic()
    w2.stop(drain_timeout=0.5)
    assert time.monotonic() - started < 5.0
    assert statuses(db)[-1] == ("open", "pending")


class _Flaky:
    """A backend whose first call raises an unexpected exception (a library bug, say)."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def find(self, fingerprint: str):  # type: ignore[no-untyped-def]
        with self.lock:
            self.calls += 1
            if self.calls == 1:
                raise KeyError("boom")
        return None

    def open(self, incident):  # type: ignore[no-untyped-def]
        from hostwarden.agent.core.incident import TicketRef

        return TicketRef("flaky", "1")


def test_outbox_unexpected_exception_is_retried_not_lost(db: StateDB) -> None:
    cfg = tickets_config("backends: [{name: flaky, type: local, path: /nonexistent/never-used.db}]")
    m = IncidentManager(cfg, state=db, hostname=HOST, external_labels={"host": HOST})
    m.handle([firing(alert(at=T0))], T0)
    w = OutboxWorker(db, {"flaky": _Flaky()}, clock=lambda: 0.0, rng=lambda: 1.0)  # type: ignore[dict-item]
    assert w.run_once(0.0) == 0
    row = list_outbox(db)[0]
    assert row["status"] == "pending" and "KeyError" in row["last_error"]
    assert w.run_once(1.0) == 1


def test_outbox_backoff_and_token_bucket_math() -> None:
    assert [backoff(n, 1.0) for n in (1, 2, 3, 10, 50)] == [1.0, 2.0, 4.0, 300.0, 300.0]
    assert backoff(3, 0.0) == 2.0  # equal jitter: between half and all of the step
    b = TokenBucket(rate=4.0, burst=2, now=0.0)
    assert [b.take(0.0), b.take(0.0)] == [0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.25)
    assert b.take(0.25) == 0.0


def test_outbox_build_backends_missing_secret_names_backend(tmp_path: Path) -> None:
    cfg = tickets_config("backends: [{name: hook, type: webhook, url: 'https://x.example', "
                         "token_env: HW_TEST_SURELY_UNSET_VARIABLE}]")
    with pytest.raises(BackendInitError, match=r"backend 'hook' \(webhook\).*HW_TEST_SURELY_UNSET_VARIABLE"):
        build_backends(cfg, state_dir=str(tmp_path), check_only=True)



def test_outbox_poll_brings_ack_and_close_from_a_route_second_backend(db: StateDB, tmp_path: Path,
                                                                      receiver: CountingReceiver) -> None:
    """A route to [hook, local]: the local store is not the incident's first backend, yet what a person does
    there (`hostwarden tickets ack|close`) is the incident's acknowledgement and mutes its updates everywhere."""
    m, w, backends = setup(db, tmp_path, f"backends: [{{name: hook, type: webhook, url: '{receiver.url}'}}, "
                                         "{name: local, type: local}]\nroute: [{backends: [hook, local]}]\n"
                                         "update_interval: 1s\n")
    a = alert(at=T0)
    m.handle([firing(a)], T0)
    assert w.run_once(0.0) == 2
    inc = db.query("SELECT backend, ticket_id FROM incidents")[0]
    assert (inc["backend"], inc["ticket_id"]) == ("hook", "T-1")
    store = backends["local"].store
    (local_ticket,) = store.list()
    store.act(local_ticket["id"], "ack", by="alice", now=T0 + 120)
    assert w.poll_once(0.0) == 1
    assert db.query("SELECT acknowledged_at FROM incidents")[0][0] == T0 + 120
    assert "Acknowledged in local by alice" in [r["text"] for r in db.query("SELECT text FROM incident_events")]
    assert w.poll_once(10.0) == 0  # the same state again changes nothing
    from hostwarden.agent.incidents.listing import incident_json

    shown = incident_json(db, dict(db.query("SELECT * FROM incidents")[0]))
    assert {t["backend"]: t["remote_state"] for t in shown["tickets"]} == {"hook": None, "local": "acknowledged"}
    store.act(local_ticket["id"], "close", by="alice", now=T0 + 130)
    assert w.poll_once(20.0) == 1
    assert db.query("SELECT muted FROM incidents")[0][0] == 1
    m.handle([severity(a, "critical", T0 + 140)], T0 + 140)  # muted: no note to either backend
    assert w.run_once(21.0) == 0
    assert [r.op for r in receiver.distinct()] == ["open"]
