"""Jira REST API (Cloud v3 and Server/Data Center v2), as documented, in memory.

Create `POST /rest/api/{2,3}/issue` → 201 `{id, key, self}`; search Cloud `POST /rest/api/3/search/jql`
(`{jql, fields, maxResults, nextPageToken}` → `{issues, nextPageToken?, isLast}`; the old
`/rest/api/3/search` answers 410 Gone), DC `GET /rest/api/2/search?jql=&startAt=&maxResults=&fields=`
(`{startAt, maxResults, total, issues}`); comments `POST /issue/{key}/comment` → 201; transitions
`GET /issue/{key}/transitions` → `{transitions: [{id, name, to: {name, statusCategory: {key}}}]}` and
`POST {transition: {id}}` → 204; `GET /issue/{key}?fields=status,assignee`. Errors are
`{"errorMessages": [...], "errors": {field: message}}`: 400 for a bad field (a summary over 255
characters, a description over 32767, a label with a space), 401 with an empty body, 404 "Issue does not
exist or you do not have permission to see it.", 429 with `Retry-After` and `X-RateLimit-*`.
Only the JQL the backend sends is understood: `project = "X" AND labels = "L"` and `key in (A-1, A-2)`.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from tests.contract.fakeapi import FakeAPI, Request, Response

STATUSES = {
    "To Do": "new",
    "In Progress": "indeterminate",
    "Done": "done",
}
# the default software workflow: from every status to every other
TRANSITIONS = [("11", "To Do", "To Do"), ("21", "In Progress", "In Progress"), ("31", "Done", "Done")]

NOT_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
_KEYS = re.compile(r"^key in \(([A-Z0-9_, -]+)\)$")
_JQL = re.compile(r'^project = "(?P<project>[^"]+)" AND labels = "(?P<label>[^"]+)"(?: ORDER BY created DESC)?$')


class FakeJira(FakeAPI):
    def __init__(self, *, api: str = "cloud", email: str = "bot@example.com", token: str = "jira_api_token",
                 projects: tuple[str, ...] = ("OPS",)) -> None:
        super().__init__()
        self.api = api
        self.version = "3" if api == "cloud" else "2"
        self.email, self.token = email, token
        self.projects = projects
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[Any]] = {}
        self._n = 0
        v = self.version
        self.route("POST", rf"/rest/api/{v}/issue", self.create)
        self.route("GET", rf"/rest/api/{v}/issue/([A-Z]+-\d+)", self.get)
        self.route("POST", rf"/rest/api/{v}/issue/([A-Z]+-\d+)/comment", self.comment)
        self.route("GET", rf"/rest/api/{v}/issue/([A-Z]+-\d+)/transitions", self.transitions)
        self.route("POST", rf"/rest/api/{v}/issue/([A-Z]+-\d+)/transitions", self.do_transition)
        if api == "cloud":
            self.route("POST", r"/rest/api/3/search/jql", self.search_jql)
            self.route("GET", r"/rest/api/3/search", self.gone)
            self.route("POST", r"/rest/api/3/search", self.gone)
        else:
            self.route("GET", r"/rest/api/2/search", self.search_dc)

    def authorize(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if auth not in (basic, f"Bearer {self.token}"):
            return Response(401, None, {"WWW-Authenticate": 'OAuth realm="https://jira.example"'})
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
                              "errors": {}})

    @staticmethod
    def _bad(errors: dict[str, str]) -> Response:
        return Response(400, {"errorMessages": [], "errors": errors})

    # -- issues -------------------------------------------------------------------------------------
    def create(self, req: Request) -> Response:
        fields = (req.body or {}).get("fields") if isinstance(req.body, dict) else None
        if not isinstance(fields, dict):
            return Response(400, {"errorMessages": ["Can not deserialize the request"], "errors": {}})
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            errors["project"] = "valid project is required"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary:
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        desc = fields.get("description")
        if self.version == "3":
            if desc is not None and (not isinstance(desc, dict) or desc.get("type") != "doc"):
                errors["description"] = NOT_ADF
            elif desc is not None and len(json.dumps(desc)) > 32767:
                errors["description"] = TOO_LONG
        elif desc is not None and (not isinstance(desc, str) or len(desc) > 32767):
            errors["description"] = TOO_LONG
        labels = fields.get("labels") or []
        if any(not isinstance(lab, str) or " " in lab or len(lab) > 255 for lab in labels):
            errors["labels"] = "The label 'x y' contains spaces which is invalid."
        if errors:
            return self._bad(errors)
        self._n += 1
        key = f"{project}-{self._n}"
        self.issues[key] = {"id": str(10000 + self._n), "key": key, "fields": dict(fields), "status": "To Do",
                            "created": self._n}
        self.comments[key] = []
        return Response(201, {"id": str(10000 + self._n), "key": key, "self": f"{self.url}/rest/api/{self.version}"
                                                                              f"/issue/{10000 + self._n}"})

    def get(self, req: Request, key: str) -> Response:
        issue = self.issues.get(key)
        if issue is None:
            return self.not_found(req)
        status = issue["status"]
        assignee = issue["fields"].get("assignee")
        return Response(200, {"id": issue["id"], "key": key, "fields": {
            "status": {"name": status, "statusCategory": {"key": STATUSES[status]}},
            "assignee": assignee, "labels": issue["fields"].get("labels", [])}})

    def comment(self, req: Request, key: str) -> Response:
        if key not in self.issues:
            return self.not_found(req)
        body = (req.body or {}).get("body") if isinstance(req.body, dict) else None
        ok = isinstance(body, dict) and body.get("type") == "doc" if self.version == "3" else isinstance(body, str)
        if not ok or not body:
            return self._bad({"comment": "Comment body can not be empty!"})
        self.comments[key].append(body)
        return Response(201, {"id": str(len(self.comments[key])), "body": body})

    def transitions(self, req: Request, key: str) -> Response:
        issue = self.issues.get(key)
        if issue is None:
            return self.not_found(req)
        out = [{"id": tid, "name": name, "to": {"name": to, "statusCategory": {"key": STATUSES[to]}}}
               for tid, name, to in TRANSITIONS if to != issue["status"]]
        return Response(200, {"expand": "transitions", "transitions": out})

    def do_transition(self, req: Request, key: str) -> Response:
        issue = self.issues.get(key)
        if issue is None:
            return self.not_found(req)
        tid = ((req.body or {}).get("transition") or {}).get("id") if isinstance(req.body, dict) else None
        match = [to for t, _name, to in TRANSITIONS if t == tid and to != issue["status"]]
        if not match:
            return Response(400, {"errorMessages": [f"Transition id '{tid}' is not valid for this issue."],
                                  "errors": {}})
        issue["status"] = match[0]
        return Response(204)

    # -- search ---------------------------------------------------------------------------------------
    def _match(self, jql: str) -> list[dict[str, Any]] | Response:
        keys = _KEYS.match(jql or "")
        if keys:
            wanted = {k.strip() for k in keys[1].split(",")}
            return [i for i in self.issues.values() if i["key"] in wanted]
        m = _JQL.match(jql or "")
        if not m:
            return Response(400, {"errorMessages": [f"Error in the JQL Query: {jql!r}"], "errors": {}})
        found = [i for i in self.issues.values()
                 if i["key"].startswith(m["project"] + "-") and m["label"] in i["fields"].get("labels", [])]
        return sorted(found, key=lambda i: i["created"], reverse=True)

    def _view(self, issue: dict[str, Any]) -> dict[str, Any]:
        return {"id": issue["id"], "key": issue["key"], "fields": {
            "status": {"name": issue["status"], "statusCategory": {"key": STATUSES[issue["status"]]}},
            "labels": issue["fields"].get("labels", []), "assignee": issue["fields"].get("assignee")}}

    def search_jql(self, req: Request) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        if "startAt" in body:
            return Response(400, {"errorMessages": ["Invalid request payload. Refer to the REST API documentation "
                                                    "and try again."], "errors": {}})
        found = self._match(body.get("jql", ""))
        if isinstance(found, Response):
            return found
        size = int(body.get("maxResults", 50))
        start = int(body.get("nextPageToken") or 0)
        page = found[start:start + size]
        out: dict[str, Any] = {"issues": [self._view(i) for i in page], "isLast": start + size >= len(found)}
        if not out["isLast"]:
            out["nextPageToken"] = str(start + size)
        return Response(200, out)

    def search_dc(self, req: Request) -> Response:
        found = self._match(req.q("jql"))
        if isinstance(found, Response):
            return found
        start, size = int(req.q("startAt", "0")), int(req.q("maxResults", "50"))
        return Response(200, {"startAt": start, "maxResults": size, "total": len(found),
                              "issues": [self._view(i) for i in found[start:start + size]]})

    def gone(self, req: Request) -> Response:
        return Response(410, {"errorMessages": ["The requested API has been removed. Please migrate to the "
                                                "/rest/api/3/search/jql API."], "errors": {}})
