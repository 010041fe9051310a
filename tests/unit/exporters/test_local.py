"""The embedded ticket store: lifecycle, idempotent deliveries, people's actions, polling, the file itself."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest
from hostwarden.agent.core.incident import Incident, PermanentError, TicketRef, TimelineEntry
from hostwarden.exporters.tickets.base import reset_idempotency_key, set_idempotency_key
from hostwarden.exporters.tickets.local import InvalidTransition, LocalBackend, LocalConfig, default_path

from tests.support.incidents import HOST, alert

T0 = 1_700_000_000.0


def incident(**kw: object) -> Incident:
    a = alert(at=T0)
    base = dict(fingerprint=a.fingerprint, alert=a, title="HighCPU on testhost", priority="P3", category="performance",
                host=HOST, labels=a.identity, opened_at=T0, diagnosis="top processes: ...",
                timeline=(TimelineEntry(T0, "opened", "HighCPU warning on testhost"),),
                extra_fields={"ack_due": T0 + 3600, "resolve_due": T0 + 86400})
    base.update(kw)
    return Incident(**base)  # type: ignore[arg-type]


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    b = LocalBackend(LocalConfig(name="local", type="local"), state_dir=str(tmp_path))
    yield b
    b.store.close()


def with_key(key: str, fn, *args):  # type: ignore[no-untyped-def]
    token = set_idempotency_key(key)
    try:
        return fn(*args)
    finally:
        reset_idempotency_key(token)


def test_local_open_find_update_resolve_reopen_lifecycle(backend: LocalBackend, tmp_path: Path) -> None:
    inc = incident()
    assert backend.find(inc.fingerprint) is None
    ref = with_key("k1", backend.open, inc)
    assert ref == TicketRef("local", "1") and backend.find(inc.fingerprint) == ref
    assert stat.S_IMODE((tmp_path / "tickets.db").stat().st_mode) == 0o600
    inc = dataclasses.replace(inc, priority="P2")  # the ticket's fields follow the latest snapshot
    with_key("k2", backend.update, ref, inc, "Escalated warning → critical")
    res = dataclasses.replace(inc, resolved_at=T0 + 600,
                              timeline=(*inc.timeline, TimelineEntry(T0 + 600, "resolved", "Resolved after 10m")))
    with_key("k3", backend.resolve, ref, res)
    t = backend.store.get(1)
    assert (t["status"], t["priority"], t["resolved_at"]) == ("resolved", "P2", T0 + 600)
    again = dataclasses.replace(inc, reopen_count=1, timeline=(TimelineEntry(T0 + 900, "reopened", "Firing again"),))
    with_key("k4", backend.reopen, ref, again)
    t = backend.store.get(1)
    assert (t["status"], t["reopen_count"], t["resolved_at"]) == ("reopened", 1, None)
    assert [(e["kind"], e["text"]) for e in t["events"]] == [
        ("opened", "HighCPU warning on testhost"), ("updated", "Escalated warning → critical"),
        ("resolved", "Resolved after 10m"), ("reopened", "Firing again")]
    assert t["diagnosis"] == "top processes: ..." and t["ack_due"] == T0 + 3600


def test_local_repeated_deliveries_with_same_key_apply_once(backend: LocalBackend) -> None:
    inc = incident()
    first = with_key("open-1", backend.open, inc)
    assert with_key("open-1", backend.open, inc) == first  # a retried open: the same ticket
    with_key("note-1", backend.update, first, inc, "note")
    with_key("note-1", backend.update, first, inc, "note")
    t = backend.store.get(int(first.id))
    assert len(backend.store.list()) == 1
    assert [e["kind"] for e in t["events"]] == ["opened", "updated"]


def test_local_people_actions_follow_status_rules(backend: LocalBackend) -> None:
    ref = with_key("k", backend.open, incident())
    tid = int(ref.id)
    store = backend.store
    assert store.act(tid, "ack", by="alice", now=T0 + 60)["status"] == "acknowledged"
    with pytest.raises(InvalidTransition, match="only new or reopened"):
        store.act(tid, "ack", by="bob", now=T0 + 70)
    with pytest.raises(InvalidTransition, match="needs text"):
        store.act(tid, "comment", by="bob", now=T0 + 70, text="  ")
    store.act(tid, "comment", by="bob", now=T0 + 80, text="looking at it")
    t = store.act(tid, "close", by="bob", now=T0 + 90)
    assert (t["status"], t["acknowledged_by"], t["closed_at"], t["resolved_at"]) == ("closed", "alice", T0 + 90,
                                                                                     T0 + 90)
    with pytest.raises(InvalidTransition):
        store.act(tid, "resolve", by="bob", now=T0 + 95)
    assert [(e["kind"], e["author"]) for e in t["events"][1:]] == [("acknowledged", "alice"), ("comment", "bob"),
                                                                   ("closed", "bob")]


def test_local_poll_reports_status_and_missing(backend: LocalBackend) -> None:
    ref = with_key("k", backend.open, incident())
    backend.store.act(int(ref.id), "ack", by="alice", now=T0 + 60)
    got = backend.poll([ref, TicketRef("local", "99")])
    assert [(s.ref.id, s.state) for s in got] == [("1", "acknowledged"), ("99", "missing")]
    assert got[0].changed_at == T0 + 60


def test_local_unknown_ticket_is_permanent_error(backend: LocalBackend) -> None:
    with pytest.raises(PermanentError):
        with_key("k", backend.update, TicketRef("local", "42"), incident(), "x")
    with pytest.raises(PermanentError):
        with_key("k", backend.update, TicketRef("local", "not-a-number"), incident(), "x")


def test_local_default_paths_and_check_only_creates_nothing(tmp_path: Path) -> None:
    assert default_path("/s", "local") == "/s/tickets.db"
    assert default_path("/s", "ops") == "/s/tickets-ops.db"
    LocalBackend(LocalConfig(name="ops", type="local"), state_dir=str(tmp_path), check_only=True)
    assert list(tmp_path.iterdir()) == []


def test_local_corrupt_store_moved_aside_and_recreated(tmp_path: Path) -> None:
    (tmp_path / "tickets.db").write_bytes(b"\x00garbage" * 500)
    b = LocalBackend(LocalConfig(name="local", type="local"), state_dir=str(tmp_path))
    assert b.store.list() == []
    assert any(p.name.startswith("tickets.db.corrupt-") for p in tmp_path.iterdir())
    b.store.close()
