"""Contract tests of the `jira` backend against a local server speaking Jira Cloud v3 and Server/DC v2."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.tickets.jira import JiraBackend, JiraConfig, adf_from_plain
from hostwarden.exporters.tickets.render import render_event

from tests.contract.fake_jira import FakeJira
from tests.contract.incidents import HOSTILE, make_incident, resolved

TOKEN = "jira_api_token"


@pytest.fixture(params=["cloud", "server"])
def jira(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJira]:
    monkeypatch.setenv("JIRA_TOKEN", TOKEN)
    server = FakeJira(api=request.param, token=TOKEN).start()
    yield server
    server.stop()


def backend(server: FakeJira, **kw: object) -> JiraBackend:
    cfg = dict(name="jira", type="jira", url=server.url, api=server.api, project="OPS", user="bot@example.com",
               api_token_env="JIRA_TOKEN", timeout=5.0) | kw
    return JiraBackend(JiraConfig(**cfg))  # type: ignore[arg-type]


def texts(node: object) -> list[str]:
    """Every text node of an ADF document, in order."""
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "text" else []
        return own + [t for child in node.get("content", []) for t in texts(child)]
    return []


def test_jira_lifecycle_sends_documented_requests(jira: FakeJira) -> None:
    b = backend(jira, assignee="5b10ac", components=["Infra"], fields={"customfield_10010": {"value": "Prod"}})
    inc = make_incident()
    label = f"hostwarden-{inc.fingerprint}"
    v = jira.version
    assert b.find(inc.fingerprint) is None
    if jira.api == "cloud":
        search = jira.calls("POST", r"/rest/api/3/search/jql")[0]
        assert search.body == {"jql": f'project = "OPS" AND labels = "{label}"', "fields": ["status", "labels"],
                               "maxResults": 50}
    else:
        search = jira.calls("GET", r"/rest/api/2/search")[0]
        assert search.query == {"jql": [f'project = "OPS" AND labels = "{label}"'], "fields": ["status,labels"],
                                "startAt": ["0"], "maxResults": ["50"]}

    ref = b.open(inc)
    assert ref == TicketRef("jira", "OPS-1", f"{jira.url}/browse/OPS-1")
    create = jira.calls("POST", rf"/rest/api/{v}/issue")[0]
    basic = "Basic " + base64.b64encode(f"bot@example.com:{TOKEN}".encode()).decode()
    assert create.headers["authorization"] == basic
    fields = create.body["fields"]
    assert set(fields) == {"project", "issuetype", "summary", "description", "priority", "assignee", "components",
                           "labels", "customfield_10010"}
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "FilesystemAlmostFull on web1 /srv"
    assert fields["priority"] == {"name": "High"}
    assert fields["labels"] == [label, "hostwarden"]
    assert fields["components"] == [{"name": "Infra"}]
    assert fields["assignee"] == ({"accountId": "5b10ac"} if v == "3" else {"name": "5b10ac"})
    if v == "3":
        doc = fields["description"]
        assert doc["type"] == "doc" and doc["version"] == 1
        assert {n["type"] for n in doc["content"]} == {"heading", "codeBlock"}
        assert any(f"hostwarden fingerprint: {inc.fingerprint}" in t for t in texts(doc))
    else:
        assert fields["description"].startswith("h3. Alert")
        assert f"hostwarden fingerprint: {inc.fingerprint}" in fields["description"]

    assert b.find(inc.fingerprint) == ref
    b.update(ref, inc, "escalated: warning -> critical")
    comment = jira.calls("POST", rf"/rest/api/{v}/issue/OPS-1/comment")[0].body
    event = "escalated: warning -> critical"
    assert comment == {"body": adf_from_plain(render_event(inc, event, "plain")) if v == "3"
                       else render_event(inc, event, "jira_wiki")}

    b.resolve(ref, resolved(inc))
    assert jira.calls("POST", rf"/rest/api/{v}/issue/OPS-1/transitions")[0].body == {"transition": {"id": "31"}}
    assert jira.issues["OPS-1"]["status"] == "Done"
    assert b.find(inc.fingerprint) is None  # done: belongs to an incident that ended

    b.reopen(ref, inc)
    assert jira.calls("POST", rf"/rest/api/{v}/issue/OPS-1/transitions")[-1].body == {"transition": {"id": "11"}}
    assert jira.issues["OPS-1"]["status"] == "To Do"
    assert b.find(inc.fingerprint) == ref
    assert len(jira.comments["OPS-1"]) == 3
    assert not jira.calls(None, r"/rest/api/3/search")  # Cloud removed it (410): only /search/jql is used


def test_jira_resolve_twice_does_not_transition_again(jira: FakeJira) -> None:
    b = backend(jira)
    inc = make_incident()
    ref = b.open(inc)
    b.resolve(ref, resolved(inc))
    b.resolve(ref, resolved(inc))  # a retry after a lost answer, or a person resolved it already
    assert len(jira.calls("POST", rf"/rest/api/{jira.version}/issue/OPS-1/transitions")) == 1


def test_jira_configured_transition_name_missing_is_permanent_and_lists_choices(jira: FakeJira) -> None:
    b = backend(jira, resolve_transition="Close Issue")
    ref = b.open(make_incident())
    with pytest.raises(PermanentError, match=r"no transition 'Close Issue'; available: .*In Progress"):
        b.resolve(ref, resolved(make_incident()))
    b2 = backend(jira, resolve_transition="done")  # by target status name, case-insensitive
    b2.resolve(ref, resolved(make_incident()))
    assert jira.issues["OPS-1"]["status"] == "Done"


def test_jira_summary_and_description_limits_truncate_instead_of_400(jira: FakeJira) -> None:
    b = backend(jira)
    inc = make_incident(title="x" * 400, diagnosis="line of diagnosis\n" * 5000)
    ref = b.open(inc)
    fields = jira.issues[ref.id]["fields"]
    assert len(fields["summary"]) == 255 and fields["summary"].endswith("…")
    desc = fields["description"]
    size = len(json.dumps(desc)) if jira.version == "3" else len(desc)
    assert 20_000 < size <= 32_767
    text = " ".join(texts(desc)) if jira.version == "3" else desc
    assert "truncated by hostwarden" in text
    b.update(ref, inc, "y" * 40_000)  # a comment over the limit is cut as well
    comment = jira.comments[ref.id][0]
    assert (len(json.dumps(comment)) if jira.version == "3" else len(comment)) <= 32_767


def test_jira_untrusted_text_stays_literal(jira: FakeJira) -> None:
    b = backend(jira)
    ref = b.open(make_incident(labels={"team": HOSTILE}, diagnosis=HOSTILE))
    desc = jira.issues[ref.id]["fields"]["description"]
    if jira.version == "3":  # ADF: only headings and code blocks, the hostile text inside code block text nodes
        assert all(n["type"] in ("heading", "codeBlock") for n in desc["content"])
        assert not any(n.get("marks") for n in desc["content"])
        assert any("[~admin]" in t for t in texts(desc))
    else:  # wiki markup: inside {noformat}, whose own terminator is defused
        assert "{noformat}\n" in desc
        assert desc.count("{noformat}") % 2 == 0
        inside = desc.split("{noformat}")
        assert all("[~admin]" not in part for part in inside[0::2])  # never outside a noformat block


def test_jira_find_follows_pages(jira: FakeJira) -> None:
    b = backend(jira)
    inc = make_incident()
    first = b.open(inc)
    for _ in range(55):  # newer done issues with the same label: the open one is on the second page
        key = b.open(inc).id
        jira.issues[key]["status"] = "Done"
    jira.clear_log()
    assert b.find(inc.fingerprint) == first
    if jira.api == "cloud":
        pages = [r.body.get("nextPageToken") for r in jira.calls("POST", r"/rest/api/3/search/jql")]
        assert pages == [None, "50"]
    else:
        pages = [r.q("startAt") for r in jira.calls("GET", r"/rest/api/2/search")]
        assert pages == ["0", "50"]


def test_jira_bearer_pat(jira: FakeJira) -> None:
    b = backend(jira, auth="bearer", user=None)
    b.open(make_incident())
    assert jira.calls("POST", rf"/rest/api/{jira.version}/issue")[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(("status", "body", "headers", "error", "retry"), [
    (400, {"errorMessages": [], "errors": {"labels": "bad"}}, {}, PermanentError, None),
    (401, None, {}, PermanentError, None),
    (403, {"errorMessages": ["You do not have permission"], "errors": {}}, {}, PermanentError, None),
    (404, {"errorMessages": ["Issue does not exist"], "errors": {}}, {}, PermanentError, None),
    (409, {"errorMessages": ["conflict"], "errors": {}}, {}, PermanentError, None),
    (429, None, {"Retry-After": "17", "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0"}, TransientError, 17.0),
    (500, {"errorMessages": ["Internal server error"], "errors": {}}, {}, TransientError, None),
    (503, None, {"Retry-After": "5"}, TransientError, 5.0),
])
def test_jira_error_statuses_map_to_retry_decision(jira: FakeJira, status: int, body: object,
                                                   headers: dict[str, str], error: type,
                                                   retry: float | None) -> None:
    b = backend(jira)
    jira.fail_next("POST", rf"/rest/api/{jira.version}/issue", status, body, headers)
    with pytest.raises(error) as exc:
        b.open(make_incident())
    if retry is not None:
        assert exc.value.retry_after == pytest.approx(retry)
    assert TOKEN not in str(exc.value)
    assert jira.issues == {}


def test_jira_wrong_credentials_are_permanent(jira: FakeJira, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_TOKEN", "not-the-token")
    with pytest.raises(PermanentError, match="401") as exc:
        backend(jira).find("0123456789abcdef")
    assert "not-the-token" not in str(exc.value)


def test_jira_comment_on_missing_issue_is_permanent(jira: FakeJira) -> None:
    with pytest.raises(PermanentError, match="404"):
        backend(jira).update(TicketRef("jira", "OPS-404"), make_incident(), "x")


def test_jira_poll_reports_states(jira: FakeJira) -> None:
    b = backend(jira, assignee="bot")
    r1, r2, r3 = (b.open(make_incident()) for _ in range(3))
    jira.issues[r1.id]["fields"]["assignee"] = {"accountId": "alice", "name": "alice", "displayName": "Alice"}
    jira.issues[r2.id]["status"] = "Done"
    states = {s.ref.id: (s.state, s.assignee) for s in b.poll([r1, r2, r3, TicketRef("jira", "OPS-99")])}
    # assigned to the configured assignee (at creation) is still "open"; to a person: acknowledged
    assert states == {r1.id: ("acknowledged", "Alice"), r2.id: ("closed", "bot"), r3.id: ("open", "bot"),
                      "OPS-99": ("missing", "")}


def test_jira_dry_run_sends_nothing(jira: FakeJira) -> None:
    b = backend(jira, dry_run=True)
    inc = make_incident()
    ref = b.open(inc)
    b.update(ref, inc, "x")
    b.resolve(ref, resolved(inc))
    b.reopen(ref, inc)
    assert ref.id == f"dry-run-{inc.fingerprint}" and b.find(inc.fingerprint) is None
    assert jira.requests == []


def test_jira_config_validation_reports_every_problem() -> None:
    problems = JiraConfig(name="j", url="jira.example", project="ops", labels=["has space"],
                          priority_map={"P7": "x"}, fields={"summary": "x"}, category_field="x").validate()
    text = "\n".join(problems)
    for needle in ("url must start", "project key", "api_token_env", "needs user", "cannot contain spaces",
                   "'P7'", "fields must not set summary", "category_field"):
        assert needle in text
