"""Fuzzed HTTP input: the receiver's webhook JSON, and ticket backends' HTTP answers.

- The Alertmanager webhook receiver (exporters/receiver.WebhookServer on 127.0.0.1) answers every
  request: 200 for a valid v4 payload, 4xx with a JSON error otherwise; never 5xx, never a dropped
  connection.
- Backends talking HTTP (exporters/tickets/http.HttpClient, webhook, redmine, jira, github) against a
  local server answering malformed JSON, wrong types, odd statuses and headers, huge bodies: each
  operation returns or raises TransientError / PermanentError, nothing else.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.receiver import Notification, ReceiverConfig, WebhookServer
from hostwarden.exporters.tickets.github import GitHubBackend, GitHubConfig
from hostwarden.exporters.tickets.http import HttpClient
from hostwarden.exporters.tickets.jira import JiraBackend, JiraConfig
from hostwarden.exporters.tickets.redmine import RedmineBackend, RedmineConfig
from hostwarden.exporters.tickets.webhook import WebhookBackend, WebhookConfig
from hypothesis import given
from hypothesis import strategies as st

from tests.contract.incidents import make_incident
from tests.reliability.fuzzing import TRICKY_STRINGS, budget
from tests.reliability.servers import Scripted, ScriptedServer, post_webhook

TOKEN = "receiver-fuzz-token-0123456789"

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False),
                         st.sampled_from(TRICKY_STRINGS), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=15)


# -- the receiver ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[WebhookServer, list[Notification]]]:
    """The real webhook server; its `on_notification` callback keeps what it was handed."""
    received: list[Notification] = []

    def on_notification(n: Notification, now: float) -> int:
        received.append(n)
        return len(n.alerts)

    server = WebhookServer(ReceiverConfig(listen_address="127.0.0.1:0", token_env="UNUSED"), on_notification,
                           token=TOKEN, listen_address="127.0.0.1:0", clock=time.time)
    server.start()
    yield server, received
    server.stop()


def _alert_like() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional={
        "status": st.one_of(st.sampled_from(["firing", "resolved", "", "FIRING"]), json_values),
        "labels": st.one_of(st.dictionaries(st.sampled_from(["alertname", "severity", "instance", ""]),
                                            st.one_of(st.text(max_size=8), json_scalars), max_size=3), json_values),
        "annotations": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=2), json_values),
        "startsAt": st.one_of(st.sampled_from(["2024-05-01T10:00:00Z", "0001-01-01T00:00:00Z", "2024-05-01",
                                               "9999-12-31T23:59:59-23:59", "2024-02-30T00:00:00Z", "now", ""]),
                              json_values),
        "endsAt": st.one_of(st.sampled_from(["0001-01-01T00:00:00Z", "2024-05-01T10:05:00+02:00"]), json_values),
        "generatorURL": json_values, "fingerprint": st.one_of(st.text(max_size=16), json_values),
    })


payload_like = st.fixed_dictionaries({}, optional={
    "version": st.one_of(st.just("4"), json_values), "groupKey": st.one_of(st.text(max_size=12), json_values),
    "receiver": st.one_of(st.text(max_size=8), json_values),
    "status": st.one_of(st.sampled_from(["firing", "resolved"]), json_values),
    "truncatedAlerts": st.one_of(st.integers(-2, 2), json_values),
    "groupLabels": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2), json_values),
    "commonLabels": json_values, "commonAnnotations": json_values, "externalURL": json_values,
    "alerts": st.one_of(st.lists(_alert_like(), max_size=3), json_values),
})


def _assert_answered_4xx_or_ok(status: int, body: bytes) -> None:
    assert status != 0, "connection dropped without an HTTP answer"
    assert status < 500, f"server error {status}: {body[:200]!r}"
    doc = json.loads(body)
    if status != 200:
        assert 400 <= status < 500 and "error" in doc


@budget(200)
@given(doc=st.one_of(payload_like, json_values))
def test_receiver_fuzzed_json_documents_answered_200_or_4xx(receiver: tuple[WebhookServer, list[Notification]],
                                                            doc: Any) -> None:
    server, _ = receiver
    status, body = post_webhook(server.address[1], TOKEN, json.dumps(doc).encode())
    _assert_answered_4xx_or_ok(status, body)


@budget(200)
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       ctype=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None, "",
                              "application/x-www-form-urlencoded", "APPLICATION/JSON"]),
       token=st.sampled_from([TOKEN, None, "", "wrong", TOKEN + "x", TOKEN[:-1]]))
def test_receiver_fuzzed_bytes_headers_tokens_answered_4xx_or_ok(receiver: tuple[WebhookServer, list[Notification]],
                                                                 raw: bytes, ctype: str | None,
                                                                 token: str | None) -> None:
    server, _ = receiver
    status, body = post_webhook(server.address[1], token, raw, content_type=ctype)
    _assert_answered_4xx_or_ok(status, body)
    if token != TOKEN:
        assert status == 401


def test_receiver_deeply_nested_json_answered_400(receiver: tuple[WebhookServer, list[Notification]]) -> None:
    server, _ = receiver
    status, body = post_webhook(server.address[1], TOKEN, b"[" * 100_000 + b"]" * 100_000)
    _assert_answered_4xx_or_ok(status, body)
    assert status == 400


def test_receiver_valid_notification_answered_200_with_transitions(
        receiver: tuple[WebhookServer, list[Notification]]) -> None:
    server, received = receiver
    doc = {"version": "4", "groupKey": "{}:{alertname=\"Fuzz\"}", "receiver": "hw", "status": "firing",
           "groupLabels": {"alertname": "Fuzz"}, "alerts": [
               {"status": "firing", "labels": {"alertname": "Fuzz", "instance": "a"},
                "startsAt": "2024-05-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}
    status, body = post_webhook(server.address[1], TOKEN, json.dumps(doc).encode())
    assert (status, json.loads(body)) == (200, {"status": "ok", "transitions": 1})
    assert received[-1].group_key == doc["groupKey"]
    assert dict(received[-1].alerts[0].labels) == {"alertname": "Fuzz", "instance": "a"}


# -- backends' HTTP answers -----------------------------------------------------------------------------------
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/html", "text/plain", ""]
RETRY_AFTER = ["5", "0", "-1", "abc", "1e400", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]
SHAPES = ["issues", "issue", "user", "project", "key", "id", "trackers", "issue_statuses", "issue_priorities",
          "custom_fields", "nextPageToken", "isLast", "total", "labels", "state", "number", "html_url", "fields",
          "status", "statusCategory", "transitions", "url"]

shaped = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(SHAPES), inner, max_size=4)),
    max_leaves=12)
bodies = st.one_of(
    shaped.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"[1,", b"null", b"NaN", b"\xff\xfe", b"<html>oops</html>", b'{"a": 1}garbage']),
)
responses = st.builds(
    lambda status, ctype, retry, body: Scripted(status, {k: v for k, v in (("Content-Type", ctype),
                                                                           ("Retry-After", retry)) if v}, body),
    status=st.one_of(st.sampled_from([200, 201, 204, 301, 302, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
                     st.integers(200, 599)),
    ctype=st.sampled_from(CONTENT_TYPES), retry=st.sampled_from(["", *RETRY_AFTER]), body=bodies)


pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def backend_secrets() -> Iterator[None]:
    os.environ["HW_FUZZ_BACKEND_TOKEN"] = "fuzz-backend-token-abcdef"
    yield
    os.environ.pop("HW_FUZZ_BACKEND_TOKEN", None)


Operation = Callable[[str], Any]


def _http_client(url: str) -> Any:
    return HttpClient(url, timeout=5).json("GET", "/anything")


def _webhook_open(url: str) -> Any:
    return WebhookBackend(WebhookConfig(name="wh", type="webhook", url=url + "/hook", timeout=5)).open(make_incident())


def _redmine(url: str) -> RedmineBackend:
    return RedmineBackend(RedmineConfig(name="rm", type="redmine", url=url, project="ops", timeout=5,
                                        api_key_env="HW_FUZZ_BACKEND_TOKEN"))


def _redmine_find(url: str) -> Any:
    return _redmine(url).find("0123456789abcdef")


def _jira(url: str, api: str) -> JiraBackend:
    return JiraBackend(JiraConfig(name="jira", type="jira", url=url, api=api, project="OPS", user="u@example.org",
                                  api_token_env="HW_FUZZ_BACKEND_TOKEN", timeout=5))


def _jira_find(url: str) -> Any:
    return _jira(url, "cloud").find("0123456789abcdef")


def _jira_server_find(url: str) -> Any:
    return _jira(url, "server").find("0123456789abcdef")


def _jira_server_resolve(url: str) -> Any:
    return _jira(url, "server").resolve(TicketRef("jira", "OPS-1"), make_incident())


def _github(url: str) -> GitHubBackend:
    return GitHubBackend(GitHubConfig(name="gh", type="github", repo="o/r", api_url=url,
                                      token_env="HW_FUZZ_BACKEND_TOKEN", timeout=5))


def _github_find(url: str) -> Any:
    return _github(url).find("0123456789abcdef")


def _github_open(url: str) -> Any:
    return _github(url).open(make_incident())


def _call(op: Operation, server: ScriptedServer, response: Scripted) -> str:
    server.response = response
    try:
        op(server.url)
    except (TransientError, PermanentError) as e:
        assert str(e), "an error without a message"
        return type(e).__name__
    return "ok"


@budget(150, deadline_ms=5000)
@given(response=responses)
def test_backend_http_client_fuzzed_answers_only_transient_or_permanent(scripted: ScriptedServer,
                                                                        response: Scripted) -> None:
    outcome = _call(_http_client, scripted, response)
    if outcome == "ok":
        assert 200 <= response.status < 300
    elif response.status == 429 or response.status >= 500:
        assert outcome == "TransientError"


@budget(150, deadline_ms=5000)
@given(response=responses)
def test_backend_webhook_fuzzed_answers_only_transient_or_permanent(scripted: ScriptedServer,
                                                                    response: Scripted) -> None:
    _call(_webhook_open, scripted, response)


# Backends that had findings (F8-F10, fixed); every operation of every backend is fuzzed against a stateful
# fake of its API in test_fuzz_backends.py, these keep the findings' first entry points under plain fuzzing.
@pytest.mark.parametrize("op", [
    pytest.param(_redmine_find, id="redmine-find"),
    pytest.param(_jira_find, id="jira-cloud-find"),
    pytest.param(_jira_server_find, id="jira-server-find"),
    pytest.param(_jira_server_resolve, id="jira-server-resolve"),
    pytest.param(_github_find, id="github-find"),
])
@budget(100, deadline_ms=5000)
@given(response=responses)
def test_backend_api_fuzzed_answers_only_transient_or_permanent(scripted: ScriptedServer, op: Operation,
                                                                response: Scripted) -> None:
    _call(op, scripted, response)


OK_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("body", [b"{}", b"null", b'{"user": []}'])  # F8 (fixed)
def test_backend_redmine_wrong_shape_discovery_answer_permanent_error(scripted: ScriptedServer, body: bytes) -> None:
    assert _call(_redmine_find, scripted, Scripted(200, OK_JSON, body)) == "PermanentError"


@pytest.mark.parametrize("op", [_jira_find, _jira_server_resolve], ids=["cloud-find", "server-resolve"])
def test_backend_jira_null_answer_permanent_error(  # F9 (fixed)
        scripted: ScriptedServer, op: Operation) -> None:
    assert _call(op, scripted, Scripted(200, OK_JSON, b"null")) == "PermanentError"


@pytest.mark.parametrize("body", [b"\x00", b"<html>proxy error</html>", b"[1]"])
def test_backend_github_find_non_json_or_wrong_items_permanent_error(  # F10 (fixed)
        scripted: ScriptedServer, body: bytes) -> None:
    assert _call(_github_find, scripted, Scripted(200, OK_JSON, body)) == "PermanentError"


@budget(100, deadline_ms=5000)
@given(response=responses)
def test_backend_github_open_fuzzed_answers_only_transient_or_permanent(scripted: ScriptedServer,
                                                                        response: Scripted) -> None:
    _call(_github_open, scripted, response)


def test_backend_http_client_deeply_nested_answer_permanent_error(scripted: ScriptedServer) -> None:
    assert _call(_http_client, scripted, Scripted(200, OK_JSON, b"[" * 100_000)) == "PermanentError"


def test_backend_huge_body_webhook_bounded_http_client_answers(scripted: ScriptedServer) -> None:
    """64 MiB answers: the webhook backend reads at most 64 KiB; HttpClient still comes to a decision."""
    huge = Scripted(200, OK_JSON, b'"abcdefgh", ', stream_bytes=64 << 20)
    start = time.monotonic()
    assert _call(_webhook_open, scripted, huge) == "ok"
    webhook_seconds = time.monotonic() - start
    assert webhook_seconds < 10
    assert _call(_http_client, scripted, huge) == "PermanentError"  # complete, but not one JSON value
