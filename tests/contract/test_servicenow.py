"""Contract tests of the `servicenow` backend against a local server speaking the Table API."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.tickets.render import render_body, render_event
from hostwarden.exporters.tickets.servicenow import ServiceNowBackend, ServiceNowConfig

from tests.contract.fake_servicenow import FakeServiceNow
from tests.contract.incidents import HOSTILE, make_incident, resolved

PASSWORD = "sn_password"
PATH = r"/api/now/table/incident"


@pytest.fixture
def sn(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServiceNow]:
    monkeypatch.setenv("SN_PASSWORD", PASSWORD)
    monkeypatch.setenv("SN_TOKEN", "sn_oauth_token")
    server = FakeServiceNow(password=PASSWORD).start()
    yield server
    server.stop()


def backend(server: FakeServiceNow, **kw: object) -> ServiceNowBackend:
    cfg = dict(name="snow", type="servicenow", url=server.url, user="hostwarden", password_env="SN_PASSWORD",
               timeout=5.0) | kw
    return ServiceNowBackend(ServiceNowConfig(**cfg))  # type: ignore[arg-type]


def test_servicenow_lifecycle_sends_documented_requests(sn: FakeServiceNow) -> None:
    b = backend(sn, assignment_group="Linux Ops", caller_id="hostwarden", category="software",
                category_map={"disk": "hardware"}, fields={"contact_type": "monitoring"})
    inc = make_incident()
    assert b.find(inc.fingerprint) is None
    query = sn.calls("GET", PATH)[0]
    assert query.query == {"sysparm_query": [f"correlation_id={inc.fingerprint}^active=true^ORDERBYDESCsys_created_on"],
                           "sysparm_limit": ["1"], "sysparm_fields": ["sys_id,number,state"],
                           "sysparm_exclude_reference_link": ["true"]}
    assert query.headers["authorization"] == "Basic " + base64.b64encode(f"hostwarden:{PASSWORD}".encode()).decode()

    ref = b.open(inc)
    sys_id = next(iter(sn.records))
    assert ref == TicketRef("snow", sys_id, f"{sn.url}/incident.do?sys_id={sys_id}")
    create = sn.calls("POST", PATH)[0]
    assert create.q("sysparm_fields") == "sys_id,number,state"
    body = create.body
    assert set(body) == {"short_description", "description", "correlation_id", "correlation_display", "urgency",
                         "impact", "category", "assignment_group", "caller_id", "contact_type"}
    assert body["short_description"] == "FilesystemAlmostFull on web1 /srv"
    assert body["correlation_id"] == inc.fingerprint and body["correlation_display"] == "hostwarden"
    assert (body["urgency"], body["impact"]) == ("1", "2")  # P2
    assert body["category"] == "hardware" and body["assignment_group"] == "Linux Ops"
    assert body["description"] == render_body(inc, "plain", max_len=3900)

    assert b.find(inc.fingerprint) == ref
    b.update(ref, inc, "escalated: warning -> critical")
    upd = sn.calls("PATCH", PATH + f"/{sys_id}")[0]
    assert upd.body == {"work_notes": render_event(inc, "escalated: warning -> critical", "plain"),
                        "urgency": "1", "impact": "2"}

    b.resolve(ref, resolved(inc))
    res = sn.calls("PATCH", PATH + f"/{sys_id}")[-1].body
    assert res == {"state": "6", "close_code": "Solution provided",
                   "close_notes": "Resolved by hostwarden: the alert no longer fires.",
                   "work_notes": render_event(resolved(inc), "Resolved: the alert no longer fires.", "plain")}
    assert sn.records[sys_id]["active"] == "false"
    assert b.find(inc.fingerprint) is None  # resolved: not adopted by a new incident

    b.resolve(ref, resolved(inc))  # again (a retry): left alone, no second PATCH
    assert len(sn.calls("PATCH", PATH + f"/{sys_id}")) == 2

    b.reopen(ref, inc)
    assert sn.calls("PATCH", PATH + f"/{sys_id}")[-1].body["state"] == "2"
    assert sn.records[sys_id]["active"] == "true"
    assert b.find(inc.fingerprint) == ref
    assert len(sn.work_notes[sys_id]) == 3


def test_servicenow_priorities_map_to_urgency_and_impact(sn: FakeServiceNow) -> None:
    b = backend(sn, urgency_impact={"P1": [1, 1], "P4": [3, 3]})
    b.open(make_incident(priority="P1"))
    b.open(make_incident(priority="P4"))
    b.open(make_incident(priority="P3"))  # not mapped: ServiceNow's defaults apply
    bodies = [r.body for r in sn.calls("POST", PATH)]
    assert [(x.get("urgency"), x.get("impact")) for x in bodies] == [("1", "1"), ("3", "3"), (None, None)]


def test_servicenow_unknown_close_code_is_refused_permanently(sn: FakeServiceNow) -> None:
    b = backend(sn, close_code="Solved (Permanently)")  # a pre-Utah choice this instance does not have
    inc = make_incident()
    ref = b.open(inc)
    with pytest.raises(PermanentError, match=r"403.*mandatory"):
        b.resolve(ref, resolved(inc))


def test_servicenow_reopen_of_closed_incident_is_permanent(sn: FakeServiceNow) -> None:
    b = backend(sn)
    ref = b.open(make_incident())
    sn.records[ref.id]["state"] = "7"
    with pytest.raises(PermanentError, match="closed or canceled"):
        b.reopen(ref, make_incident())


def test_servicenow_code_tags_in_untrusted_text_are_defused(sn: FakeServiceNow) -> None:
    b = backend(sn)
    inc = make_incident(labels={"team": HOSTILE}, diagnosis=HOSTILE)
    ref = b.open(inc)
    b.update(ref, inc, HOSTILE)
    desc = sn.records[ref.id]["description"]
    note = sn.work_notes[ref.id][0]
    for text in (desc, note):
        assert "[code]" not in text.lower() and "[/code]" not in text.lower()
        assert "[ code]<b>x</b>[/ code]" in text


def test_servicenow_long_text_is_truncated_to_the_column(sn: FakeServiceNow) -> None:
    b = backend(sn)
    ref = b.open(make_incident(title="t" * 300, diagnosis="d" * 20_000))
    rec = sn.records[ref.id]
    assert len(rec["short_description"]) == 160
    assert len(rec["description"]) <= 4000 and "truncated by hostwarden" in rec["description"]


def test_servicenow_bearer_token(sn: FakeServiceNow) -> None:
    b = backend(sn, auth="bearer", user=None, password_env=None, token_env="SN_TOKEN")
    b.open(make_incident())
    assert sn.calls("POST", PATH)[0].headers["authorization"] == "Bearer sn_oauth_token"


@pytest.mark.parametrize(("status", "headers", "error", "retry"), [
    (400, {}, PermanentError, None),
    (401, {}, PermanentError, None),
    (403, {}, PermanentError, None),
    (404, {}, PermanentError, None),
    (409, {}, PermanentError, None),
    (429, {"Retry-After": "60", "X-RateLimit-Limit": "100", "X-RateLimit-Reset": "1700003600"}, TransientError, 60.0),
    (500, {}, TransientError, None),
    (503, {}, TransientError, None),
])
def test_servicenow_error_statuses_map_to_retry_decision(sn: FakeServiceNow, status: int, headers: dict[str, str],
                                                         error: type, retry: float | None) -> None:
    b = backend(sn)
    sn.fail_next("POST", PATH, status, {"error": {"message": "m", "detail": "d"}, "status": "failure"}, headers)
    with pytest.raises(error) as exc:
        b.open(make_incident())
    if retry is not None:
        assert exc.value.retry_after == pytest.approx(retry)
    assert PASSWORD not in str(exc.value)
    assert sn.records == {}


def test_servicenow_unknown_extra_field_is_permanent(sn: FakeServiceNow) -> None:
    with pytest.raises(PermanentError, match="Invalid field"):
        backend(sn, fields={"u_not_there": "x"}).open(make_incident())


def test_servicenow_wrong_password_is_permanent(sn: FakeServiceNow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SN_PASSWORD", "wrong-password")
    with pytest.raises(PermanentError, match=r"401.*User Not Authenticated") as exc:
        backend(sn).find("0123456789abcdef")
    assert "wrong-password" not in str(exc.value)


def test_servicenow_update_of_deleted_record_is_permanent(sn: FakeServiceNow) -> None:
    with pytest.raises(PermanentError, match="404"):
        backend(sn).update(TicketRef("snow", "0" * 32), make_incident(), "x")


def test_servicenow_poll_reports_states_in_one_request(sn: FakeServiceNow) -> None:
    b = backend(sn)
    refs = [b.open(make_incident()) for _ in range(4)]
    sn.records[refs[0].id]["assigned_to"] = "alice"
    sn.records[refs[1].id]["state"] = "6"
    sn.records[refs[2].id]["state"] = "7"
    sn.clear_log()
    missing = TicketRef("snow", "f" * 32)
    states = {s.ref.id: s.state for s in b.poll([*refs, missing])}
    assert states == {refs[0].id: "acknowledged", refs[1].id: "resolved", refs[2].id: "closed",
                      refs[3].id: "open", missing.id: "missing"}
    assert len(sn.requests) == 1


def test_servicenow_dry_run_sends_nothing(sn: FakeServiceNow) -> None:
    b = backend(sn, dry_run=True, password_env="NOT_SET_ANYWHERE")
    inc = make_incident()
    ref = b.open(inc)
    b.update(ref, inc, "x")
    b.resolve(ref, resolved(inc))
    b.reopen(ref, inc)
    assert ref.id == f"dry-run-{inc.fingerprint}" and b.find(inc.fingerprint) is None
    assert sn.requests == []


def test_servicenow_config_validation_reports_every_problem() -> None:
    problems = "\n".join(ServiceNowConfig(name="s", url="x", urgency_impact={"P1": [4, 1], "P9": [1, 1]},
                                          reopen_state=6, table="Incident!", fields={"state": 1}).validate())
    for needle in ("url must start", "auth: basic needs user", "urgency_impact.P1", "'P9'", "reopen_state",
                   "table", "fields must not set state"):
        assert needle in problems
