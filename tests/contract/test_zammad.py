"""Contract tests of the `zammad` backend against a local server speaking Zammad's REST API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.tickets.render import render_body, render_event
from hostwarden.exporters.tickets.zammad import ZammadBackend, ZammadConfig

from tests.contract.fake_zammad import FakeZammad
from tests.contract.incidents import HOSTILE, make_incident, resolved

TOKEN = "zammad_token"


@pytest.fixture
def zm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeZammad]:
    monkeypatch.setenv("ZAMMAD_TOKEN", TOKEN)
    server = FakeZammad(token=TOKEN).start()
    yield server
    server.stop()


def backend(server: FakeZammad, **kw: object) -> ZammadBackend:
    cfg = dict(name="helpdesk", type="zammad", url=server.url, token_env="ZAMMAD_TOKEN", group="Ops",
               customer="monitoring@example.com", timeout=5.0) | kw
    return ZammadBackend(ZammadConfig(**cfg))  # type: ignore[arg-type]


def test_zammad_lifecycle_sends_documented_requests(zm: FakeZammad) -> None:
    b = backend(zm, owner="jdoe", fields={"note": "from monitoring"})
    inc = make_incident()
    assert b.find(inc.fingerprint) is None
    search = zm.calls("GET", r"/api/v1/tickets/search")[0]
    assert search.query == {"query": [f'tags:"{inc.fingerprint}"'], "limit": ["20"], "expand": ["true"],
                            "sort_by": ["created_at"], "order_by": ["desc"]}
    assert search.headers["authorization"] == f"Token token={TOKEN}"

    ref = b.open(inc)
    assert ref == TicketRef("helpdesk", "1", f"{zm.url}/#ticket/zoom/1")
    create = zm.calls("POST", r"/api/v1/tickets")[0].body
    assert set(create) == {"title", "group", "customer_id", "article", "tags", "priority", "owner", "note"}
    assert create["title"] == "FilesystemAlmostFull on web1 /srv"
    assert create["group"] == "Ops" and create["customer_id"] == "guess:monitoring@example.com"
    assert create["tags"] == f"{inc.fingerprint},hostwarden" and create["priority"] == "3 high"
    assert create["article"] == {"subject": "FilesystemAlmostFull on web1 /srv", "content_type": "text/html",
                                 "type": "note", "internal": True, "body": render_body(inc, "html", max_len=100_000)}
    assert zm.tags[1] == [inc.fingerprint, "hostwarden"]  # tagged in the same request: never untagged

    assert b.find(inc.fingerprint) == ref
    b.update(ref, inc, "escalated: warning -> critical")
    note = zm.calls("POST", r"/api/v1/ticket_articles")[0].body
    assert note == {"ticket_id": 1, "subject": "FilesystemAlmostFull on web1 /srv", "content_type": "text/html",
                    "type": "note", "internal": True,
                    "body": render_event(inc, "escalated: warning -> critical", "html")}
    assert "escalated: warning -&gt; critical" in note["body"]
    assert zm.calls("PUT", r"/api/v1/tickets/1")[0].body == {"priority": "3 high"}

    b.resolve(ref, resolved(inc))
    put = zm.calls("PUT", r"/api/v1/tickets/1")[-1].body
    assert put["state"] == "closed" and put["article"]["internal"] is True
    assert zm.tickets[1]["state"] == "closed"
    assert b.find(inc.fingerprint) is None

    b.reopen(ref, inc)
    assert zm.calls("PUT", r"/api/v1/tickets/1")[-1].body["state"] == "open"
    assert b.find(inc.fingerprint) == ref
    assert len(zm.articles[1]) == 4 and len(zm.tickets) == 1


def test_zammad_untrusted_text_is_escaped_html(zm: FakeZammad) -> None:
    b = backend(zm)
    inc = make_incident(labels={"team": HOSTILE}, diagnosis=HOSTILE)
    ref = b.open(inc)
    b.update(ref, inc, HOSTILE)
    for art in zm.articles[1]:
        assert "<img" not in art["body"] and "&lt;img src=x onerror=alert(1)&gt;" in art["body"]


def test_zammad_find_while_search_index_lags_returns_none(zm: FakeZammad) -> None:
    b = backend(zm)
    inc = make_incident()
    b.open(inc)
    zm.search_indexed = False  # Elasticsearch has not indexed it yet (documented limitation)
    assert b.find(inc.fingerprint) is None


def test_zammad_resolve_with_on_resolve_comment_keeps_state(zm: FakeZammad) -> None:
    b = backend(zm, on_resolve="comment")
    inc = make_incident()
    ref = b.open(inc)
    b.resolve(ref, resolved(inc))
    assert zm.tickets[1]["state"] == "new" and len(zm.articles[1]) == 2


@pytest.mark.parametrize(("status", "headers", "error", "retry"), [
    (401, {}, PermanentError, None),
    (403, {}, PermanentError, None),
    (404, {}, PermanentError, None),
    (409, {}, PermanentError, None),
    (422, {}, PermanentError, None),
    (429, {"Retry-After": "12"}, TransientError, 12.0),
    (500, {}, TransientError, None),
    (502, {}, TransientError, None),
])
def test_zammad_error_statuses_map_to_retry_decision(zm: FakeZammad, status: int, headers: dict[str, str],
                                                     error: type, retry: float | None) -> None:
    b = backend(zm)
    zm.fail_next("POST", r"/api/v1/tickets", status, {"error": "e", "error_human": "e"}, headers)
    with pytest.raises(error) as exc:
        b.open(make_incident())
    if retry is not None:
        assert exc.value.retry_after == pytest.approx(retry)
    assert TOKEN not in str(exc.value)
    assert zm.tickets == {}


def test_zammad_unknown_group_is_permanent(zm: FakeZammad) -> None:
    with pytest.raises(PermanentError, match=r"422.*group"):
        backend(zm, group="Nope").open(make_incident())


def test_zammad_wrong_token_is_permanent(zm: FakeZammad, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZAMMAD_TOKEN", "bad-token-value")
    with pytest.raises(PermanentError, match="401") as exc:
        backend(zm).find("0123456789abcdef")
    assert "bad-token-value" not in str(exc.value)


def test_zammad_update_of_missing_ticket_is_permanent(zm: FakeZammad) -> None:
    with pytest.raises(PermanentError, match="404"):
        backend(zm).resolve(TicketRef("helpdesk", "77"), resolved(make_incident()))


def test_zammad_poll_reports_states(zm: FakeZammad) -> None:
    b = backend(zm)
    r1, r2, r3 = (b.open(make_incident()) for _ in range(3))
    zm.tickets[1]["owner"], zm.tickets[1]["state"] = "alice", "open"
    zm.tickets[2]["state"] = "closed"
    del zm.tickets[3]
    states = {s.ref.id: (s.state, s.assignee) for s in b.poll([r1, r2, r3])}
    assert states == {"1": ("acknowledged", "alice"), "2": ("closed", ""), "3": ("missing", "")}


def test_zammad_dry_run_sends_nothing(zm: FakeZammad) -> None:
    b = backend(zm, dry_run=True)
    inc = make_incident()
    ref = b.open(inc)
    b.update(ref, inc, "x")
    b.resolve(ref, resolved(inc))
    b.reopen(ref, inc)
    assert ref.id == f"dry-run-{inc.fingerprint}" and b.find(inc.fingerprint) is None
    assert zm.requests == []


def test_zammad_config_validation_reports_every_problem() -> None:
    problems = "\n".join(ZammadConfig(name="z", url="zammad", customer="nobody", group="", tags=["a,b"],
                                      priority_map={"P0": "x"}, fields={"state": "x"}).validate())
    for needle in ("url must start", "token_env", "e-mail address", "group must not be empty", "commas",
                   "'P0'", "fields must not set state"):
        assert needle in problems
