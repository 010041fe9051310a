"""GitHub REST issues API (and Gitea/Forgejo's, `flavor="gitea"`), as documented, in memory.

GitHub: docs.github.com/rest/issues — create `POST /repos/{o}/{r}/issues` → 201; list
`GET /repos/{o}/{r}/issues?state=all&labels=…&per_page=…&page=…` (pull requests included, marked by a
`pull_request` key; `Link: <…>; rel="next"`); comments `POST …/issues/{n}/comments` → 201; edit
`PATCH …/issues/{n}` → 200. Errors `{"message": …, "documentation_url": …}`: 401 "Bad credentials",
404 "Not Found", 410 "Issues are disabled for this repo", 422 "Validation Failed" with `errors[]`.
Rate limits: every answer carries `x-ratelimit-limit/-remaining/-used/-reset`; exhausted primary limit →
403 with remaining 0; secondary limit → 403/429 with `retry-after`.
Gitea: the same paths under `/api/v1`, labels by id on create (`POST …/labels` creates them),
`limit` instead of `per_page`, `type=issues` to leave out pull requests, auth `token …`.
"""

from __future__ import annotations

import time
from typing import Any

from tests.contract.fakeapi import FakeAPI, Request, Response

DOCS = "https://docs.github.com/rest"


class FakeGitHub(FakeAPI):
    def __init__(self, owner: str = "acme", repo: str = "ops", token: str = "ghp_secret_token",
                 flavor: str = "github") -> None:
        super().__init__()
        self.owner, self.repo, self.token, self.flavor = owner, repo, token, flavor
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.rate_remaining = 5000
        self.rate_reset = int(time.time()) + 3600
        self._next = 1
        base = ("/api/v1" if flavor == "gitea" else "") + rf"/repos/{owner}/{repo}"
        self.base = base
        self.route("POST", base + r"/issues", self.create_issue)
        self.route("GET", base + r"/issues", self.list_issues)
        self.route("GET", base + r"/issues/(\d+)", self.get_issue)
        self.route("PATCH", base + r"/issues/(\d+)", self.edit_issue)
        self.route("POST", base + r"/issues/(\d+)/comments", self.add_comment)
        self.route("GET", base + r"/labels", self.list_labels)
        self.route("POST", base + r"/labels", self.create_label)

    # -- helpers -----------------------------------------------------------------------------------
    def _rate_headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(self.rate_remaining),
                "x-ratelimit-used": str(5000 - self.rate_remaining), "x-ratelimit-reset": str(self.rate_reset),
                "x-ratelimit-resource": "core"}

    def _ok(self, status: int, body: Any, extra: dict[str, str] | None = None) -> Response:
        return Response(status, body, {**self._rate_headers(), **(extra or {})})

    def authorize(self, request: Request) -> Response | None:
        want = f"token {self.token}" if self.flavor == "gitea" else f"Bearer {self.token}"
        if request.headers.get("authorization") != want:
            return Response(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})
        if self.rate_remaining <= 0:
            return Response(403, {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS},
                            self._rate_headers())
        self.rate_remaining -= 1
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})

    def _label_names(self, raw: list[Any]) -> list[str] | Response:
        if self.flavor != "gitea":
            if not all(isinstance(x, str) for x in raw):
                return Response(422, {"message": "Invalid request.\n\nFor 'items', nil is not a string.",
                                      "documentation_url": DOCS})
            for name in raw:
                self.labels.setdefault(name, {"id": len(self.labels) + 1, "name": name, "color": "ededed"})
            return list(raw)
        by_id = {lab["id"]: name for name, lab in self.labels.items()}
        if not all(isinstance(x, int) and x in by_id for x in raw):
            return Response(422, {"message": "label ids must be existing label ids", "url": self.url})
        return [by_id[x] for x in raw]

    def _issue_view(self, issue: dict[str, Any]) -> dict[str, Any]:
        view = dict(issue)
        view["labels"] = [{"id": self.labels[n]["id"], "name": n, "color": self.labels[n]["color"]}
                          for n in issue["labels"]]
        return view

    # -- issues --------------------------------------------------------------------------------------
    def create_issue(self, req: Request) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            return Response(422, {"message": "Validation Failed", "documentation_url": DOCS,
                                  "errors": [{"resource": "Issue", "field": "title", "code": "missing_field"}]})
        names = self._label_names(body.get("labels") or [])
        if isinstance(names, Response):
            return names
        n = self._next
        self._next += 1
        issue = {"id": 1000 + n, "number": n, "title": title, "body": body.get("body") or "", "labels": names,
                 "state": "open", "state_reason": None, "assignees": [{"login": a} for a in body.get("assignees", [])],
                 "html_url": f"https://github.example/{self.owner}/{self.repo}/issues/{n}",
                 "url": f"{self.url}{self.base}/issues/{n}", "created_at": n}
        self.issues[n] = issue
        self.comments[n] = []
        return self._ok(201, self._issue_view(issue), {"Location": issue["url"]})

    def add_pull_request(self, labels: list[str]) -> int:
        """A pull request carrying the label: the list endpoint returns it too (with `pull_request`)."""
        for name in labels:
            self.labels.setdefault(name, {"id": len(self.labels) + 1, "name": name, "color": "ededed"})
        n = self._next
        self._next += 1
        self.issues[n] = {"id": 1000 + n, "number": n, "title": "a PR", "body": "", "labels": labels,
                          "state": "open", "state_reason": None, "assignees": [], "created_at": n,
                          "html_url": f"https://github.example/{self.owner}/{self.repo}/pull/{n}",
                          "url": "", "pull_request": {"url": f"{self.url}{self.base}/pulls/{n}"}}
        return n

    def list_issues(self, req: Request) -> Response:
        state = req.q("state", "open")
        wanted = [x for x in req.q("labels").split(",") if x]
        size_key = "limit" if self.flavor == "gitea" else "per_page"
        per_page = int(req.q(size_key, "30"))
        page = int(req.q("page", "1"))
        direction = req.q("direction", "desc")
        items = [i for i in self.issues.values()
                 if (state == "all" or i["state"] == state) and all(w in i["labels"] for w in wanted)
                 and not (self.flavor == "gitea" and req.q("type") == "issues" and "pull_request" in i)]
        items.sort(key=lambda i: i["created_at"], reverse=direction == "desc")
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            headers["Link"] = (f'<{self.url}{req.path}?state={state}&labels={req.q("labels")}&{size_key}={per_page}'
                               f'&page={page + 1}>; rel="next"')
        return self._ok(200, [self._issue_view(i) for i in chunk], headers)

    def get_issue(self, req: Request, number: str) -> Response:
        issue = self.issues.get(int(number))
        if issue is None:
            return self.not_found(req)
        return self._ok(200, self._issue_view(issue))

    def edit_issue(self, req: Request, number: str) -> Response:
        issue = self.issues.get(int(number))
        if issue is None:
            return self.not_found(req)
        body = req.body if isinstance(req.body, dict) else {}
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                return Response(422, {"message": "Validation Failed", "documentation_url": DOCS,
                                      "errors": [{"resource": "Issue", "field": "state", "code": "invalid"}]})
            issue["state"] = body["state"]
            issue["state_reason"] = body.get("state_reason") if self.flavor == "github" else None
        for key in ("title", "body"):
            if key in body:
                issue[key] = body[key]
        return self._ok(200, self._issue_view(issue))

    def add_comment(self, req: Request, number: str) -> Response:
        issue = self.issues.get(int(number))
        if issue is None:
            return self.not_found(req)
        body = req.body if isinstance(req.body, dict) else {}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return Response(422, {"message": "Validation Failed", "documentation_url": DOCS,
                                  "errors": [{"resource": "IssueComment", "field": "body", "code": "missing_field"}]})
        comment = {"id": 5000 + sum(len(c) for c in self.comments.values()), "body": body["body"]}
        self.comments[int(number)].append(comment)
        return self._ok(201, comment)

    # -- labels (Gitea creates them explicitly; GitHub creates them on use) -----------------------------
    def list_labels(self, req: Request) -> Response:
        size = int(req.q("limit" if self.flavor == "gitea" else "per_page", "30"))
        page = int(req.q("page", "1"))
        labels = list(self.labels.values())[(page - 1) * size: page * size]
        return self._ok(200, labels)

    def create_label(self, req: Request) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return Response(422, {"message": "name is required"})
        if name in self.labels:
            return Response(409, {"message": "label already exists"})
        self.labels[name] = {"id": len(self.labels) + 1, "name": name, "color": body.get("color", "")}
        return self._ok(201, self.labels[name])
