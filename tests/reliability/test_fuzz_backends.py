"""Every operation of every HTTP ticket backend against answers fuzzed one request at a time.

A real HTTP server on 127.0.0.1 (`PlannedServer`, a `ScriptedServer`) answers each request the way the
vendor's API does (a small stateful route table per backend: Redmine, Jira Cloud and Server, GitHub,
Gitea, RT REST2, ServiceNow, Zammad, Alertmanager), except for the requests hypothesis picks: those get
a fault instead — a mutation of the valid JSON (a value replaced by another type, removed, wrapped in
a list, turned into a string), an arbitrary answer (status, Content-Type, Retry-After, rate-limit
headers, malformed or wrong-shaped JSON, binary), or a connection closed without an answer.

The property, for find / open / update / resolve / reopen / poll: the operation either succeeds with a
sane result (a TicketRef of this backend with an id of the backend's syntax, RemoteStatus for the refs
asked about) or raises TransientError / PermanentError — never KeyError, TypeError, AttributeError,
JSONDecodeError — whose message names the backend; a failure on a 5xx, 408/425/429 or a dropped
connection is transient, with a Retry-After of at most an hour, on any other answer permanent. Each
test appends its figures (examples, requests, faults served, outcomes, seconds) to
$HOSTWARDEN_RELIABILITY_REPORT.

Budget: 100 examples per backend operation (x10 with HOSTWARDEN_SLOW=1), plus fixed cases per backend:
a 64 MiB answer, 100,000 nested brackets, connection refused, and an answer dripping past the timeout.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from hostwarden.agent.core.incident import PermanentError, RemoteStatus, TicketRef, TransientError
from hostwarden.exporters.tickets.alertmanager import AlertmanagerBackend, AlertmanagerConfig
from hostwarden.exporters.tickets.github import GitHubBackend, GitHubConfig
from hostwarden.exporters.tickets.http import MAX_RETRY_AFTER, Doc, HttpClient, parse_retry_after
from hostwarden.exporters.tickets.jira import JiraBackend, JiraConfig
from hostwarden.exporters.tickets.redmine import RedmineBackend, RedmineConfig
from hostwarden.exporters.tickets.rt import RtBackend, RtConfig
from hostwarden.exporters.tickets.servicenow import ServiceNowBackend, ServiceNowConfig
from hostwarden.exporters.tickets.webhook import WebhookBackend, WebhookConfig
from hostwarden.exporters.tickets.zammad import ZammadBackend, ZammadConfig
from hypothesis import example, given
from hypothesis import strategies as st

from tests.contract.incidents import make_incident, resolved
from tests.reliability.agentprobe import record
from tests.reliability.fuzzing import TRICKY_STRINGS, budget
from tests.reliability.servers import Scripted, ScriptedServer
from tests.reliability.test_fuzz_http import CONTENT_TYPES, RETRY_AFTER, bodies, json_values
from tests.support.agent import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

TOKEN_ENV = "HW_FUZZ_BACKENDS_TOKEN"
INCIDENT = make_incident()
FP = INCIDENT.fingerprint
SYS_ID = "0123456789abcdef0123456789abcdef"
SYS_ID2 = "fedcba9876543210fedcba9876543210"
JSON = {"Content-Type": "application/json; charset=utf-8"}
TRANSIENT_STATUSES = {408, 425, 429}


# -- valid answers: a small stateful route table per backend -----------------------------------------------------
Answer = tuple[int, Any]  # (status, JSON document; None = empty body)
Handler = Callable[[dict[str, Any], "re.Match[str]"], Answer]


class Routes:
    """What the vendor's API answers, as (method, path regex) -> (status, JSON) or a handler of the request's
    JSON body that may change `state` (a status set by a PUT is what the next GET shows)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = dict(state or {})
        self._routes: list[tuple[str, re.Pattern[str], Answer | Handler]] = []

    def add(self, method: str, pattern: str, answer: Answer | Handler) -> Routes:
        self._routes.append((method, re.compile(pattern + r"\Z"), answer))
        return self

    def answer(self, method: str, path: str, body: bytes) -> Answer:
        for m, rx, answer in self._routes:
            match = rx.match(path)
            if m == method and match:
                if callable(answer):
                    try:
                        doc = json.loads(body) if body else {}
                    except ValueError:
                        doc = {}
                    return answer(doc if isinstance(doc, dict) else {}, match)
                return answer
        return 404, {"error": f"no route for {method} {path}"}


def redmine_routes(status: int = 1) -> Routes:
    r = Routes({"status": status})

    def put(body: dict[str, Any], _m: re.Match[str]) -> Answer:
        issue = body.get("issue") if isinstance(body.get("issue"), dict) else {}
        if "status_id" in issue:
            r.state["status"] = issue["status_id"]
        return 204, None

    issue = {"id": 42, "subject": "x", "status": {"id": status, "name": "New"}, "assigned_to": {"id": 6, "name": "Ann"},
             "custom_fields": [{"id": 7, "name": "alert_fingerprint", "value": FP}],
             "updated_on": "2024-01-02T03:04:05Z"}
    return (r.add("GET", r"/users/current.json", (200, {"user": {"id": 9, "login": "hostwarden"}}))
            .add("GET", r"/projects/ops.json", (200, {"project": {
                "id": 1, "identifier": "ops", "trackers": [{"id": 1, "name": "Bug"}],
                "issue_custom_fields": [{"id": 7, "name": "alert_fingerprint"}]}}))
            .add("GET", r"/issue_statuses.json", (200, {"issue_statuses": [
                {"id": 1, "name": "New", "is_closed": False}, {"id": 2, "name": "In Progress", "is_closed": False},
                {"id": 3, "name": "Resolved", "is_closed": False}, {"id": 5, "name": "Closed", "is_closed": True}]}))
            .add("GET", r"/trackers.json", (200, {"trackers": [
                {"id": 1, "name": "Bug", "default_status": {"id": 1, "name": "New"}}]}))
            .add("GET", r"/enumerations/issue_priorities.json", (200, {"issue_priorities": [
                {"id": 2, "name": "Normal"}, {"id": 3, "name": "High"}, {"id": 4, "name": "Urgent"},
                {"id": 5, "name": "Immediate"}]}))
            .add("GET", r"/issues.json", (200, {"issues": [issue], "total_count": 1, "offset": 0, "limit": 25}))
            .add("POST", r"/issues.json", (201, {"issue": {**issue, "id": 43}}))
            .add("PUT", r"/issues/\d+.json", put)
            .add("GET", r"/issues/\d+.json", lambda _b, _m: (200, {"issue": {**issue, "status": {
                "id": r.state["status"]}}})))


def jira_routes(v: str = "3", category: str = "new") -> Routes:
    r = Routes({"category": category})
    to = {"11": "new", "21": "indeterminate", "31": "done"}
    transitions = [{"id": tid, "name": name, "to": {"name": name, "statusCategory": {"key": cat}}}
                   for tid, name, cat in (("11", "To Do", "new"), ("21", "In Progress", "indeterminate"),
                                          ("31", "Done", "done"))]

    def issue(key: str = "OPS-1") -> dict[str, Any]:
        return {"id": "10001", "key": key, "fields": {
            "status": {"name": "S", "statusCategory": {"key": r.state["category"]}}, "labels": ["hostwarden-" + FP],
            "assignee": {"accountId": "5b10", "name": "ann", "displayName": "Ann"}}}

    def transition(body: dict[str, Any], _m: re.Match[str]) -> Answer:
        t = body.get("transition") if isinstance(body.get("transition"), dict) else {}
        r.state["category"] = to.get(str(t.get("id")), r.state["category"])
        return 204, None

    if v == "3":
        r.add("POST", r"/rest/api/3/search/jql", lambda _b, _m: (200, {"issues": [issue()], "isLast": True}))
    else:
        r.add("GET", r"/rest/api/2/search", lambda _b, _m: (200, {"startAt": 0, "maxResults": 50, "total": 1,
                                                                    "issues": [issue()]}))
    base = rf"/rest/api/{v}/issue"
    return (r.add("POST", base, (201, {"id": "10002", "key": "OPS-2", "self": "http://jira/rest/api/2/issue/10002"}))
            .add("GET", base + r"/(OPS-\d+)", lambda _b, m: (200, issue(m[1])))
            .add("POST", base + r"/OPS-\d+/comment", (201, {"id": "100"}))
            .add("GET", base + r"/OPS-\d+/transitions", (200, {"transitions": transitions}))
            .add("POST", base + r"/OPS-\d+/transitions", transition))


def github_routes(gitea: bool = False) -> Routes:
    labels = [{"id": 1, "name": "hostwarden:" + FP}, {"id": 2, "name": "hostwarden"}]
    issue = {"number": 1, "html_url": "https://github.example/o/r/issues/1", "state": "open", "labels": labels,
             "assignees": [{"login": "ann"}]}
    pull = {**issue, "number": 2, "pull_request": {"url": "x"}}
    r = (Routes()
         .add("GET", r"/repos/o/r/issues", (200, [pull, issue]))
         .add("POST", r"/repos/o/r/issues", (201, {**issue, "number": 3}))
         .add("POST", r"/repos/o/r/issues/\d+/comments", (201, {"id": 7, "body": "x"}))
         .add("PATCH", r"/repos/o/r/issues/\d+", (200, {**issue, "state": "closed"}))
         .add("GET", r"/repos/o/r/issues/\d+", (200, issue)))
    if gitea:
        r.add("GET", r"/repos/o/r/labels", (200, labels[1:]))
        r.add("POST", r"/repos/o/r/labels", (201, labels[0]))
    return r


def rt_routes(status: str = "open") -> Routes:
    r = Routes({"status": status})
    cf = [{"id": 3, "name": "alert_fingerprint", "values": [FP]}]

    def put(body: dict[str, Any], _m: re.Match[str]) -> Answer:
        if isinstance(body.get("Status"), str):
            r.state["status"] = body["Status"]
        return 200, ["Ticket 7: Status changed"]

    def ticket(_b: dict[str, Any], m: re.Match[str]) -> Answer:
        return 200, {"id": int(m[1]), "Status": r.state["status"], "CustomFields": cf, "Owner": {"id": "Nobody"}}

    item = {"id": 7, "type": "ticket", "CustomFields": cf, "Status": "open", "Owner": {"id": "Nobody"},
            "LastUpdated": "2024-01-02T03:04:05Z"}
    return (r.add("GET", r"/REST/2.0/tickets", (200, {"count": 1, "page": 1, "per_page": 10, "items": [item]}))
            .add("POST", r"/REST/2.0/ticket", (201, {"id": 8, "type": "ticket", "_url": "http://rt/REST/2.0/ticket/8"}))
            .add("POST", r"/REST/2.0/ticket/\d+/comment", (201, ["Comments added"]))
            .add("PUT", r"/REST/2.0/ticket/\d+", put)
            .add("GET", r"/REST/2.0/ticket/(\d+)", ticket))


def servicenow_routes(state: str = "2") -> Routes:
    r = Routes({"state": state})

    def patch(body: dict[str, Any], _m: re.Match[str]) -> Answer:
        if "state" in body:
            r.state["state"] = str(body["state"])
        return 200, {"result": {"sys_id": SYS_ID, "state": r.state["state"]}}

    path = r"/api/now/table/incident"
    return (r.add("GET", path, (200, {"result": [{"sys_id": SYS_ID, "number": "INC001", "state": "2",
                                                   "assigned_to": "a" * 32}]}))
            .add("POST", path, (201, {"result": {"sys_id": SYS_ID2, "number": "INC002", "state": "1"}}))
            .add("GET", path + r"/[0-9a-f]{32}", lambda _b, _m: (200, {"result": {"state": r.state["state"]}}))
            .add("PATCH", path + r"/[0-9a-f]{32}", patch))


def zammad_routes() -> Routes:
    ticket = {"id": 5, "number": "31005", "state": "open", "owner": "-", "title": "x"}
    return (Routes()
            .add("GET", r"/api/v1/tickets/search", (200, [{**ticket, "id": 4, "state": "closed"}, ticket]))
            .add("POST", r"/api/v1/tickets", (201, {**ticket, "id": 6, "number": "31006"}))
            .add("POST", r"/api/v1/ticket_articles", (201, {"id": 70, "ticket_id": 5}))
            .add("PUT", r"/api/v1/tickets/\d+", (200, {**ticket, "state": "closed"}))
            .add("GET", r"/api/v1/tickets/\d+", (200, ticket)))


def alertmanager_routes() -> Routes:
    return Routes().add("POST", r"/api/v2/alerts", (200, None))


# -- faults ----------------------------------------------------------------------------------------------------
DROP = "drop"  # close the connection without an answer


@dataclass(frozen=True)
class Mutation:
    """The valid answer with one JSON node changed: the `at`-th node in pre-order (modulo their count)."""

    at: int
    action: str  # replace | delete | wrap | stringify
    value: Any = None

    def apply(self, doc: Any) -> Any:
        doc = copy.deepcopy(doc)
        nodes: list[tuple[Any, Any]] = [(None, None)]  # (container, key); (None, None) is the root

        def walk(node: Any) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            for k, child in list(items):
                nodes.append((node, k))
                walk(child)

        walk(doc)
        container, key = nodes[self.at % len(nodes)]
        old = doc if container is None else container[key]
        new = {"replace": lambda: self.value, "wrap": lambda: [old],
               "stringify": lambda: old if isinstance(old, str) else json.dumps(old)}.get(self.action)
        if container is None:
            return None if self.action == "delete" else new() if new else doc
        if self.action == "delete":
            del container[key]
        elif new is not None:
            container[key] = new()
        return doc


Fault = Mutation | Scripted | str

ODD_VALUES = [-1, 0, 2**63, 2**70, 1.5, True, False, "", "²", "-5", "00", " 1", "1e400", "OPS-", "-1-",
              "g" * 32, [], {}, None, [None], [{}], {"id": None}]
replacements = st.one_of(st.sampled_from(ODD_VALUES), st.sampled_from(TRICKY_STRINGS), json_values)
mutations = st.builds(Mutation, at=st.integers(0, 200),
                      action=st.sampled_from(["replace", "replace", "delete", "wrap", "stringify"]),
                      value=replacements)
RATE_HEADERS = [("x-ratelimit-remaining", "0"), ("x-ratelimit-remaining", "²"), ("x-ratelimit-remaining", "-1"),
                ("x-ratelimit-reset", "99999999999999999999"), ("x-ratelimit-reset", "1e400"),
                ("x-ratelimit-reset", str(int(time.time()) + 5)), ("retry-after", "1e400"), ("retry-after", "nan")]
raw_answers = st.builds(
    lambda status, ctype, retry, extra, body: Scripted(
        status, {k: v for k, v in (("Content-Type", ctype), ("Retry-After", retry), *extra) if v}, body),
    status=st.one_of(st.sampled_from([200, 201, 204, 301, 302, 400, 401, 403, 404, 408, 409, 410, 422, 425, 429,
                                      500, 502, 503]), st.integers(200, 599)),
    ctype=st.sampled_from(CONTENT_TYPES), retry=st.sampled_from(["", *RETRY_AFTER]),
    extra=st.lists(st.sampled_from(RATE_HEADERS), max_size=2), body=bodies)
faults: st.SearchStrategy[Fault] = st.one_of(mutations, mutations, raw_answers, st.just(DROP))
# request number (taken modulo the number of requests the operation makes when all answers are valid) -> fault
plans = st.dictionaries(st.integers(0, 63), faults, min_size=1, max_size=3)


class PlannedServer(ScriptedServer):
    """Answers from `routes`, except requests whose number is in `plan`: those get the fault."""

    def __init__(self) -> None:
        super().__init__()
        self.routes = Routes()
        self.plan: dict[int, Fault] = {}
        self.served: list[Fault | None] = []  # per request: the fault served, None = the valid answer
        self.last_status: int | None = None  # of the last answer; None after a dropped connection
        # a body after a 204/304 is not part of that answer (HTTP): it garbles the connection's next answer,
        # which the client rightly reports as a connection failure (transient) whatever that answer's status
        self.garbled = False

    def _handler(self) -> type:
        class Handler(super()._handler()):  # type: ignore[misc]
            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stalls

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionError:  # the client gave up on an answer it had read enough of
                    self.close_connection = True

        return Handler

    def load(self, routes: Routes, plan: dict[int, Fault]) -> None:
        with self.lock:
            self.routes, self.plan, self.served, self.last_status, self.garbled = routes, plan, [], None, False

    def answer(self, method: str, path: str, body: bytes) -> Scripted | None:
        status, doc = self.routes.answer(method, urlsplit(path).path, body)  # state changes even if faulted
        fault = self.plan.get(len(self.served))
        self.served.append(fault)
        if isinstance(fault, Mutation):
            doc = fault.apply(doc)
            status = 200 if doc is not None and status == 204 else status
        elif isinstance(fault, Scripted):
            self.last_status = fault.status
            self.garbled |= fault.status in (204, 304) and bool(fault.body or fault.stream_bytes)
            return fault
        elif fault == DROP:
            self.last_status = None
            return None
        self.last_status = status
        return Scripted(status, dict(JSON) if doc is not None else {}, b"" if doc is None else json.dumps(doc).encode())


# -- operations ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    id: str  # backend-operation
    name: str  # the backend's configured name, which every error message must contain
    routes: Callable[[], Routes]
    make: Callable[[str], Any]  # server URL -> backend
    call: Callable[[Any], Any]  # backend -> result
    ids: str  # regex of this backend's ticket ids
    refs: tuple[TicketRef, ...] = ()  # what poll is asked about


def _redmine(url: str) -> RedmineBackend:
    return RedmineBackend(RedmineConfig(name="fz-redmine", type="redmine", url=url, project="ops", timeout=5,
                                        api_key_env=TOKEN_ENV))


def _jira(api: str) -> Callable[[str], JiraBackend]:
    return lambda url: JiraBackend(JiraConfig(name=f"fz-jira-{api}", type="jira", url=url, api=api, project="OPS",
                                              user="u@example.org", api_token_env=TOKEN_ENV, timeout=5))


def _github(flavor: str) -> Callable[[str], GitHubBackend]:
    return lambda url: GitHubBackend(GitHubConfig(name=f"fz-{flavor}", type="github", repo="o/r", api_url=url,
                                                  flavor=flavor, token_env=TOKEN_ENV, timeout=5))  # type: ignore[arg-type]


def _rt(url: str) -> RtBackend:
    return RtBackend(RtConfig(name="fz-rt", type="rt", url=url, queue="General", token_env=TOKEN_ENV, timeout=5))


def _servicenow(url: str) -> ServiceNowBackend:
    return ServiceNowBackend(ServiceNowConfig(name="fz-snow", type="servicenow", url=url, user="hw",
                                              password_env=TOKEN_ENV, timeout=5))


def _zammad(url: str) -> ZammadBackend:
    return ZammadBackend(ZammadConfig(name="fz-zammad", type="zammad", url=url, token_env=TOKEN_ENV,
                                      customer="mon@example.org", timeout=5))


def _alertmanager(url: str) -> AlertmanagerBackend:
    return AlertmanagerBackend(AlertmanagerConfig(name="fz-am", type="alertmanager", url=url, timeout=5))


def _ops(prefix: str, make: Callable[[str], Any], ids: str, ref: TicketRef, routes: Callable[..., Routes],
         resolve_state: dict[str, Any], reopen_state: dict[str, Any], poll: bool = True) -> list[Op]:
    """find / open / update / resolve / reopen (/ poll) of one backend; `ref` a ticket of the backend (its
    name: `ref.backend`) that the server knows."""
    missing = TicketRef(ref.backend, ref.id[:-1] + ("8" if ref.id[-1] != "8" else "9"))
    name = ref.backend
    ops = [Op(f"{prefix}-find", name, routes, make, lambda b: b.find(FP), ids),
           Op(f"{prefix}-open", name, routes, make, lambda b: b.open(INCIDENT), ids),
           Op(f"{prefix}-update", name, routes, make, lambda b: b.update(ref, INCIDENT, "escalated to P1"), ids),
           Op(f"{prefix}-resolve", name, lambda: routes(**resolve_state), make,
              lambda b: b.resolve(ref, resolved(INCIDENT)), ids),
           Op(f"{prefix}-reopen", name, lambda: routes(**reopen_state), make, lambda b: b.reopen(ref, INCIDENT), ids)]
    if poll:
        ops.append(Op(f"{prefix}-poll", name, routes, make, lambda b: b.poll([ref, missing]), ids, (ref, missing)))
    return ops


OPS: list[Op] = [
    *_ops("redmine", _redmine, r"\d+", TicketRef("fz-redmine", "42"), redmine_routes, {"status": 1}, {"status": 3}),
    *_ops("jira-cloud", _jira("cloud"), r"[A-Z][A-Z0-9_]*-\d+", TicketRef("fz-jira-cloud", "OPS-1"), jira_routes,
          {"v": "3", "category": "indeterminate"}, {"v": "3", "category": "done"}),
    *_ops("jira-server", _jira("server"), r"[A-Z][A-Z0-9_]*-\d+", TicketRef("fz-jira-server", "OPS-1"),
          lambda **kw: jira_routes(**{"v": "2", **kw}), {"category": "new"}, {"category": "done"}),
    *_ops("github", _github("github"), r"\d+", TicketRef("fz-github", "1"), github_routes, {}, {}),
    *_ops("gitea", _github("gitea"), r"\d+", TicketRef("fz-gitea", "1"), lambda: github_routes(gitea=True), {}, {}),
    *_ops("rt", _rt, r"\d+", TicketRef("fz-rt", "7"), rt_routes, {"status": "open"}, {"status": "resolved"}),
    *_ops("servicenow", _servicenow, r"[0-9a-f]{32}", TicketRef("fz-snow", SYS_ID), servicenow_routes,
          {"state": "2"}, {"state": "6"}),
    *_ops("zammad", _zammad, r"\d+", TicketRef("fz-zammad", "5"), zammad_routes, {}, {}),
    *[op for op in _ops("alertmanager", _alertmanager, r"[0-9a-f]+", TicketRef("fz-am", FP), alertmanager_routes,
                        {}, {}, poll=False) if not op.id.endswith("-find")],  # find: no request (None)
]


def _close(backend: Any) -> None:
    for client in [getattr(backend, "client", None), *getattr(backend, "_clients", []),
                   *getattr(backend, "_resend_clients", [])]:
        if isinstance(client, HttpClient):
            client.close()


def _assert_sane(op: Op, result: Any) -> None:
    name = op.name
    if op.id.endswith(("-find", "-open")):
        if op.id.endswith("-find") and result is None:
            return
        assert isinstance(result, TicketRef), result
        assert result.backend == name and isinstance(result.id, str) and re.fullmatch(op.ids, result.id), result
        assert isinstance(result.url, str)
    elif op.id.endswith("-poll"):
        assert isinstance(result, list) and all(isinstance(s, RemoteStatus) for s in result), result
        assert [s.ref for s in result] == list(op.refs), result
        assert all(s.state in ("open", "acknowledged", "resolved", "closed", "missing") for s in result), result
        assert all(isinstance(s.assignee, str) for s in result), result
        assert all(s.changed_at is None or math.isfinite(s.changed_at) for s in result), result
    else:
        assert result is None, result


def run(op: Op, server: PlannedServer, plan: dict[int, Fault], *, url: str | None = None) -> str:
    """Run `op` against the server's answers; the outcome's class name ("ok" on success), checked."""
    server.load(op.routes(), plan)
    backend = op.make(url or server.url)
    assert backend.name == op.name
    try:
        result = op.call(backend)
    except (TransientError, PermanentError) as e:
        text = str(e)
        assert op.name in text, f"the message does not name the backend {op.name!r}: {text!r}"
        if isinstance(e, TransientError):
            assert e.retry_after is None or 0 <= e.retry_after <= MAX_RETRY_AFTER, e.retry_after
        if server.served and server.served[-1] is not None:  # it failed on a fault: the right class?
            status = server.last_status
            if status is None or status >= 500 or status in TRANSIENT_STATUSES:
                assert isinstance(e, TransientError), f"a 5xx/408/425/429/dropped answer gave {e!r}"
            elif not op.id.startswith(("github", "gitea")) and not server.garbled:  # GitHub: see RateLimitedClient
                assert isinstance(e, PermanentError), f"HTTP {status} gave {e!r}"
        return type(e).__name__
    finally:
        _close(backend)
    _assert_sane(op, result)
    return "ok"


# -- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def backend_secret() -> Iterator[None]:
    os.environ[TOKEN_ENV] = "fuzz-backends-token-0123456789"
    yield
    os.environ.pop(TOKEN_ENV, None)


@pytest.fixture(scope="module")
def server() -> Iterator[PlannedServer]:
    s = PlannedServer().start()
    yield s
    s.stop()


_VALID_REQUESTS: dict[str, int] = {}


def valid_requests(op: Op, server: PlannedServer) -> int:
    """How many requests `op` makes when every answer is valid (it must succeed then)."""
    if op.id not in _VALID_REQUESTS:
        assert run(op, server, {}) == "ok"
        _VALID_REQUESTS[op.id] = len(server.served)
    return _VALID_REQUESTS[op.id]


@dataclass
class Tally:
    op: str
    examples: int = 0
    requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    t = Tally(request.node.callspec.id)
    yield t
    record("fuzz-backends", op=t.op, examples=t.examples, requests=t.requests, faults=dict(t.faults),
           outcomes=dict(t.outcomes), seconds=round(time.monotonic() - t.started, 2))


def _kind(fault: Fault | None) -> str:
    return "valid" if fault is None else "drop" if fault == DROP else type(fault).__name__.lower()


# -- the properties -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", OPS, ids=[op.id for op in OPS])
def test_backend_operation_valid_answers_succeed_sanely(server: PlannedServer, op: Op) -> None:
    """The route tables are right: every operation succeeds on them (so the fuzz below reaches every request)."""
    assert run(op, server, {}) == "ok"
    assert all(f is None for f in server.served) and server.served
    _VALID_REQUESTS[op.id] = len(server.served)


@pytest.mark.parametrize("op", OPS, ids=[op.id for op in OPS])
@budget(100, deadline_ms=5000)
@given(plan=plans)
@example(plan={0: Scripted(200, JSON, b"null")})
@example(plan={0: Scripted(200, JSON, b"[1]")})
@example(plan={0: Scripted(200, {"Content-Type": "text/html"}, b"<html>proxy error</html>")})
def test_backend_operation_fuzzed_answers_transient_permanent_or_sane(server: PlannedServer, tally: Tally, op: Op,
                                                                     plan: dict[int, Fault]) -> None:
    n = valid_requests(op, server)
    placed = {k % n: v for k, v in plan.items()}
    outcome = run(op, server, placed)
    tally.examples += 1
    tally.requests += len(server.served)
    tally.faults.update(_kind(f) for f in server.served if f is not None)
    tally.outcomes[outcome] += 1


# one operation per backend: the first request answered with a huge, a deeply nested or no answer at all
FIRST = {op.id.rsplit("-", 1)[0]: op for op in reversed(OPS)}
FIRST_OPS = [FIRST[k] for k in sorted(FIRST)]


@pytest.mark.parametrize("op", FIRST_OPS, ids=[op.id for op in FIRST_OPS])
def test_backend_huge_answer_refused_in_bounded_time_unless_unread(server: PlannedServer, op: Op) -> None:
    """A 64 MiB answer: read up to 16 MiB, then refused (PermanentError) where the backend needs the answer;
    Alertmanager does not read the answer of its POST, so there the accepted POST succeeds."""
    huge = Scripted(200, JSON, b'"abcdefgh", ', stream_bytes=64 << 20)
    start = time.monotonic()
    assert run(op, server, {0: huge}) == ("ok" if op.id.startswith("alertmanager") else "PermanentError")
    record("fuzz-backends-huge", op=op.id, answer_bytes=64 << 20, seconds=round(time.monotonic() - start, 2))


# alertmanager is left out: it does not read the answer of POST /api/v2/alerts (the huge-answer test shows it)
READING_OPS = [op for op in FIRST_OPS if not op.id.startswith("alertmanager")]


@pytest.mark.parametrize("op", READING_OPS, ids=[op.id for op in READING_OPS])
def test_backend_deeply_nested_answer_permanent_error(server: PlannedServer, op: Op) -> None:
    assert run(op, server, {0: Scripted(200, JSON, b"[" * 100_000)}) == "PermanentError"


@pytest.mark.parametrize("op", FIRST_OPS, ids=[op.id for op in FIRST_OPS])
def test_backend_connection_refused_transient_error_naming_backend(server: PlannedServer, op: Op) -> None:
    assert run(op, server, {}, url=f"http://127.0.0.1:{free_port()}") == "TransientError"


class DripServer:
    """Answers 200 with a Content-Length of 1 MB and then sends one byte every 0.2 s (until stopped)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n[")
                for _ in range(200):  # at most 40 s
                    if self.stop.wait(0.2):
                        break
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        break

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_backend_answer_dripping_past_timeout_transient_error_within_twice_timeout() -> None:
    drip = DripServer()
    try:
        client = HttpClient(drip.url, timeout=1, name="fz-drip")
        start = time.monotonic()
        with pytest.raises(TransientError, match=r"fz-drip: GET .*not read within 1s"):
            client.request("GET", "/issues.json")
        elapsed = time.monotonic() - start
        client.close()
    finally:
        drip.close()
    assert elapsed < 2.5  # each read comes within the timeout: only the overall bound ends it
    record("fuzz-backends-drip", timeout_s=1, seconds=round(elapsed, 2))


# -- regressions of what this fuzzing found ----------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("1e400", MAX_RETRY_AFTER), ("inf", MAX_RETRY_AFTER), ("nan", None), ("-5", 0.0), ("7", 7.0),
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None),
])
def test_parse_retry_after_absurd_values_bounded_to_an_hour(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, 1_700_000_000.0) == expected


def test_doc_wrong_shapes_permanent_error_naming_the_place() -> None:
    doc = Doc({"issues": [{"id": "7"}, {"id": "x"}], "n": None, "total": True}, "redmine ops: GET /issues.json")
    assert [d.id() for d in doc.objects("issues")[:1]] == ["7"]
    with pytest.raises(PermanentError, match=r"^redmine ops: GET /issues.json: unexpected answer: "
                                             r"issues\[1\]\.id should be an integer, got a string 'x'$"):
        doc.objects("issues")[1].id()
    assert doc.get("n", int, 0) == 0 and doc.objects("missing", optional=True) == []
    with pytest.raises(PermanentError, match="total should be an integer, got true or false True"):
        doc.get("total", int)
    with pytest.raises(PermanentError, match=r"the answer should be an object, got null"):
        Doc(None, "jira j: GET /x").raw("issues")
    with pytest.raises(PermanentError, match=r"issues\[0\] should be an object, got an integer 1"):
        Doc({"issues": [1]}, "github g: GET /x").objects("issues")


def test_backend_webhook_answer_dripping_past_timeout_transient_error() -> None:
    """The webhook backend reads its answer with the same overall bound as HttpClient (its own session)."""
    drip = DripServer()
    try:
        hook = WebhookBackend(WebhookConfig(name="fz-hook", type="webhook", url=drip.url + "/hook", timeout=1))
        with pytest.raises(TransientError, match=r"/hook: HTTP 200: the answer was not read within 1s"):
            hook.open(make_incident())
    finally:
        drip.close()
