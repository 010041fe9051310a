"""The `rt` backend against a real Request Tracker 5 (Debian's package, SQLite, Starlet) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.tickets.rt import RtBackend, RtConfig

from tests.integration.servers.rt import RtServer
from tests.support.agent import free_port
from tests.support.kill9 import Kill9Target, Ticket, only_when_slow, run_kill9
from tests.support.ticket_incidents import make_incident

pytestmark = pytest.mark.integration

# A worker is READY ~0.3 s after it starts, then delivers 5-12 operations/s to RT (no discovery calls; the rate
# depends on the machine's load): kills land uniformly in the first KILL9_WINDOW seconds, so most of them hit a
# delivery (search, create, comment, priority or status change, or between RT's answer and the commit).
KILL9_WINDOW = 0.5


def backend(server: RtServer, monkeypatch: pytest.MonkeyPatch, *, token: str | None = None,
            **overrides: Any) -> RtBackend:
    monkeypatch.setenv("HW_TEST_RT_TOKEN", token or server.token)
    cfg = RtConfig(name="helpdesk", type="rt", url=server.url, queue=server.queue, token_env="HW_TEST_RT_TOKEN",
                   fingerprint_field=server.cf_name, timeout=30)
    return RtBackend(dataclasses.replace(cfg, **overrides))


def ticket(server: RtServer, ref: TicketRef) -> dict[str, Any]:
    r = server.api("GET", f"/ticket/{ref.id}")
    assert r.status_code == 200, r.text
    return r.json()


def comments(server: RtServer, ref: TicketRef) -> list[str]:
    """The text of every comment on the ticket, oldest first (through the transactions' attachments)."""
    r = server.api("GET", f"/ticket/{ref.id}/history", params={"per_page": 100, "fields": "Type"})
    assert r.status_code == 200, r.text
    out = []
    for tx in r.json()["items"]:
        if tx["Type"] != "Comment":
            continue
        atts = server.api("GET", f"/transaction/{tx['id']}/attachments",
                          params={"fields": "Content,ContentType"}).json()["items"]
        out += [a["Content"] for a in atts if a.get("ContentType") == "text/plain"]
    return out


def test_rt_open_stores_fingerprint_subject_priority_and_content(rt_server: RtServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch)
    inc = make_incident(priority="P1", diagnosis="top: 99% cpu")
    ref = b.open(inc)
    assert ref.backend == "helpdesk" and ref.url == f"{rt_server.url}/Ticket/Display.html?id={ref.id}"
    t = ticket(rt_server, ref)
    assert t["Subject"] == inc.title and t["Queue"]["id"] == str(rt_server.queue_id)
    assert t["Priority"] == "100" and t["Status"] == "new"
    assert {"name": "alert_fingerprint", "values": [inc.fingerprint]}.items() <= \
        next(f for f in t["CustomFields"] if f["name"] == "alert_fingerprint").items()
    create = rt_server.api("GET", f"/ticket/{ref.id}/history", params={"fields": "Type"}).json()["items"][0]
    [att] = [a for a in rt_server.api("GET", f"/transaction/{create['id']}/attachments",
                                      params={"fields": "Content,ContentType"}).json()["items"]
             if a.get("ContentType") == "text/plain"]
    body = att["Content"]
    assert "top: 99% cpu" in body and inc.fingerprint in body and "== Labels ==" in body


def test_rt_priority_map_configured_values_applied(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch, priority_map={"P3": 42})
    assert ticket(rt_server, b.open(make_incident(priority="P3")))["Priority"] == "42"
    assert ticket(rt_server, b.open(make_incident(priority="P4")))["Priority"] == "0"  # not mapped: queue default


def test_rt_find_by_fingerprint_open_resolved_and_unknown(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch)
    inc, other = make_incident(), make_incident()
    ref = b.open(inc)
    b.open(other)
    assert b.find(inc.fingerprint) == ref
    b.resolve(ref, inc)
    assert b.find(inc.fingerprint) == ref  # resolved tickets are found too
    assert b.find("0123456789abcdef") is None
    assert b.find("x' OR id > '0") is None  # quoted in TicketSQL, not injected


def test_rt_find_field_given_by_id_finds_ticket(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    inc = make_incident()
    ref = backend(rt_server, monkeypatch).open(inc)
    assert backend(rt_server, monkeypatch, fingerprint_field=str(rt_server.cf_id)).find(inc.fingerprint) == ref


def test_rt_update_comments_and_syncs_priority(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch)
    inc = make_incident(priority="P3")
    ref = b.open(inc)
    b.update(ref, dataclasses.replace(inc, priority="P2"), "escalated to critical: 0.99 > 0.95")
    [note] = comments(rt_server, ref)
    assert "escalated to critical: 0.99 > 0.95" in note and "priority  P2" in note
    assert ticket(rt_server, ref)["Priority"] == "75"


def test_rt_resolve_then_reopen_changes_status_with_comments(rt_server: RtServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch)
    inc = make_incident()
    ref = b.open(inc)
    b.resolve(ref, dataclasses.replace(inc, resolved_at=inc.opened_at + 600))
    assert ticket(rt_server, ref)["Status"] == "resolved"
    b.reopen(ref, dataclasses.replace(inc, reopen_count=1))
    assert ticket(rt_server, ref)["Status"] == "open"
    notes = comments(rt_server, ref)
    assert len(notes) == 2 and "resolved" in notes[0].lower() and "reopened" in notes[1].lower()


def test_rt_resolve_of_ticket_rejected_by_person_keeps_rejected(rt_server: RtServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch)
    inc = make_incident()
    ref = b.open(inc)
    r = rt_server.api("PUT", f"/ticket/{ref.id}", token=rt_server.person_token, json={"Status": "rejected"})
    assert r.status_code == 200 and "rejected" in r.text
    b.resolve(ref, inc)
    assert ticket(rt_server, ref)["Status"] == "rejected"
    assert len(comments(rt_server, ref)) == 1


def test_rt_reopen_to_unknown_status_raises_permanent(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch, reopened_status="bogus")
    ref = b.open(make_incident())
    with pytest.raises(PermanentError, match=r"left status 'new' instead of 'bogus'.*isn't a valid status"):
        b.reopen(ref, make_incident())


def test_rt_poll_one_batch_reports_person_actions(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch)
    untouched, taken, stalled, rejected, resolved = (b.open(make_incident()) for _ in range(5))
    changes = ((taken, {"Owner": "ann"}), (stalled, {"Status": "stalled"}), (rejected, {"Status": "rejected"}))
    for ref, change in changes:
        r = rt_server.api("PUT", f"/ticket/{ref.id}", token=rt_server.person_token, json=change)
        assert r.status_code == 200, r.text
    b.resolve(resolved, make_incident())
    deleted = b.open(make_incident())
    r = rt_server.api("PUT", f"/ticket/{deleted.id}", token=rt_server.person_token, json={"Status": "deleted"})
    assert r.status_code == 200 and "deleted" in r.text, r.text
    refs = [untouched, taken, stalled, rejected, resolved, deleted]
    got = {s.ref.id: s for s in b.poll(refs)}
    assert {k: v.state for k, v in got.items()} == {
        untouched.id: "open", taken.id: "acknowledged", stalled.id: "acknowledged", rejected.id: "closed",
        resolved.id: "resolved", deleted.id: "missing"}
    assert got[taken.id].assignee == "ann" and got[untouched.id].assignee == ""
    assert got[taken.id].changed_at is not None and got[taken.id].changed_at > 1_600_000_000


def test_rt_basic_auth_user_and_password_works(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_RT_PW", rt_server.password)
    b = backend(rt_server, monkeypatch, token_env=None, username="hostwarden", password_env="HW_TEST_RT_PW")
    inc = make_incident()
    ref = b.open(inc)
    assert b.find(inc.fingerprint) == ref


def test_rt_bad_token_raises_permanent_without_leaking_it(rt_server: RtServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "1-27-" + "f" * 32
    b = backend(rt_server, monkeypatch, token=bad)
    with pytest.raises(PermanentError, match="HTTP 401") as e:
        b.find("0123456789abcdef")
    assert bad not in str(e.value)


def test_rt_queue_without_rights_raises_permanent(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 403.*No permission to create tickets"):
        backend(rt_server, monkeypatch, queue="NoSuchQueue").open(make_incident())


def test_rt_field_missing_from_queue_raises_permanent_after_create(rt_server: RtServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch, fingerprint_field="no_such_field")
    with pytest.raises(PermanentError, match="created without its fingerprint"):
        b.open(make_incident())


def test_rt_server_not_listening_raises_transient(rt_server: RtServer, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(rt_server, monkeypatch, url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError, match="connection failed"):
        b.open(make_incident())


def rt_kill9_target(server: RtServer) -> Kill9Target:
    """Tickets per fingerprint found by a TicketSQL search on the custom field the backend writes (any status);
    comments from the ticket's history."""
    def tickets(fp: str) -> list[str]:
        r = server.api("GET", "/tickets", params={"query": f"CF.{{{server.cf_name}}} = '{fp}'", "per_page": 100,
                                                  "fields": "CustomFields"})
        assert r.status_code == 200, r.text
        found = r.json()
        assert found["total"] == len(found["items"]), found["total"]
        for item in found["items"]:
            [cf] = [f for f in item["CustomFields"] if f["name"] == server.cf_name]
            assert cf["values"] == [fp], (item["id"], cf)
        return [str(item["id"]) for item in found["items"]]

    def read(ticket_id: str) -> Ticket:
        ref = TicketRef("ops", ticket_id)
        return Ticket(comments(server, ref), ticket(server, ref)["Status"])

    return Kill9Target(label="RT", kind="rt", settings={
        "url": server.url, "queue": server.queue, "token_env": "HW_TEST_RT_TOKEN",
        "fingerprint_field": server.cf_name}, env={"HW_TEST_RT_TOKEN": server.token}, open_status="new",
        resolved_status="resolved", tickets=tickets, read=read)


def test_rt_outbox_worker_killed_9_times_one_ticket_per_fingerprint_all_comments(rt_server: RtServer,
                                                                                 tmp_path: Path) -> None:
    """20 kills; the slow variant below does 200."""
    run_kill9(rt_kill9_target(rt_server), tmp_path, iterations=20, window=KILL9_WINDOW)


@pytest.mark.slow
@only_when_slow
def test_rt_outbox_worker_killed_9_200_times_one_ticket_per_fingerprint_all_comments(rt_server: RtServer,
                                                                                     tmp_path: Path) -> None:
    run_kill9(rt_kill9_target(rt_server), tmp_path, iterations=200, window=KILL9_WINDOW)
