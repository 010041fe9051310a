"""Zammad REST API (tickets, articles, tags, search), as documented (docs.zammad.org/en/latest/api), in memory.

`POST /api/v1/tickets {title, group, customer, article: {subject, body, type, internal, content_type},
priority?}` → 201 ticket; `POST /api/v1/tags/add {item, object: "Ticket", o_id}` → 201 `true`;
`GET /api/v1/tickets/search?query=tags:<tag>&limit=` → 200 `{"tickets": [ids], "tickets_count": n,
"assets": {"Ticket": {"<id>": {...}}}}` (with `expand=true`: a list of tickets with `state`/`owner` names);
`tags` in the create request are added with the ticket; `POST /api/v1/ticket_articles {ticket_id, subject, body, type,
internal, content_type}` → 201; `PUT /api/v1/tickets/{id} {state}` → 200; `GET /api/v1/tickets/{id}?expand=true`
→ ticket with `state`/`owner` names. Errors `{"error": …, "error_human": …}`: 401 "authentication failed",
403 "Not authorized", 404 "Couldn't find Ticket with 'id'=…", 422 "Unprocessable Entity" (unknown group,
unknown state). Auth `Authorization: Token token=…`.
"""

from __future__ import annotations

from typing import Any

from tests.contract.fakeapi import FakeAPI, Request, Response

STATES = {"new": 1, "open": 2, "pending reminder": 3, "closed": 4, "merged": 5, "pending close": 7}
PRIORITIES = {"1 low": 1, "2 normal": 2, "3 high": 3}


def error(status: int, message: str) -> Response:
    return Response(status, {"error": message, "error_human": message})


class FakeZammad(FakeAPI):
    def __init__(self, token: str = "zammad_token", groups: tuple[str, ...] = ("Users", "Ops")) -> None:
        super().__init__()
        self.token = token
        self.groups = groups
        self.tickets: dict[int, dict[str, Any]] = {}
        self.articles: dict[int, list[dict[str, Any]]] = {}
        self.tags: dict[int, list[str]] = {}
        self.search_indexed = True  # False: the search index lags (Elasticsearch) and finds nothing
        self._n = 0
        self._a = 0
        self.route("POST", r"/api/v1/tickets", self.create)
        self.route("GET", r"/api/v1/tickets/search", self.search)
        self.route("GET", r"/api/v1/tickets/(\d+)", self.get)
        self.route("PUT", r"/api/v1/tickets/(\d+)", self.update)
        self.route("POST", r"/api/v1/ticket_articles", self.add_article)
        self.route("POST", r"/api/v1/tags/add", self.add_tag)

    def authorize(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Token token={self.token}":
            return error(401, "authentication failed")
        return None

    def not_found(self, request: Request) -> Response:
        return error(404, "No route matches")

    def _article(self, ticket_id: int, a: dict[str, Any]) -> dict[str, Any] | Response:
        if not isinstance(a, dict) or not a.get("body"):
            return error(422, "Need at least article: {body: '...'}")
        self._a += 1
        art = {"id": self._a, "ticket_id": ticket_id, "subject": a.get("subject", ""), "body": a["body"],
               "type": a.get("type", "note"), "internal": bool(a.get("internal", False)),
               "content_type": a.get("content_type", "text/plain")}
        self.articles.setdefault(ticket_id, []).append(art)
        return art

    def _view(self, t: dict[str, Any], expand: bool) -> dict[str, Any]:
        view = {k: v for k, v in t.items() if k not in ("state", "priority", "group", "owner")}
        if expand:
            view.update(state=t["state"], priority=t["priority"], group=t["group"], owner=t["owner"])
        return view

    def create(self, req: Request) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        if not body.get("title"):
            return error(422, "Title can't be blank")
        customer = str(body.get("customer_id") or body.get("customer") or "")
        if customer.removeprefix("guess:").count("@") != 1:
            return error(422, f"Invalid email {customer!r} of customer")
        if body.get("group") not in self.groups:
            return error(422, "No lookup value found for 'group': " + repr(body.get("group")))
        prio = body.get("priority", "2 normal")
        if prio not in PRIORITIES:
            return error(422, f"No lookup value found for 'priority': {prio!r}")
        self._n += 1
        tid = self._n
        t = {"id": tid, "number": str(31000 + tid), "title": body["title"], "group_id": 1,
             "state_id": STATES["new"], "state": "new", "priority_id": PRIORITIES[prio], "priority": prio,
             "group": body["group"], "owner_id": 1, "owner": body.get("owner", "-"),
             "customer": customer.removeprefix("guess:"), "created_at": tid}
        art = self._article(tid, body.get("article"))
        if isinstance(art, Response):
            self._n -= 1
            return art
        self.tickets[tid] = t
        self.tags[tid] = [x for x in str(body.get("tags") or "").split(",") if x]
        return Response(201, {**self._view(t, False), "article_ids": [art["id"]]})

    def get(self, req: Request, tid: str) -> Response:
        t = self.tickets.get(int(tid))
        if t is None:
            return error(404, f"Couldn't find Ticket with 'id'={tid}")
        return Response(200, self._view(t, req.q("expand") == "true"))

    def update(self, req: Request, tid: str) -> Response:
        t = self.tickets.get(int(tid))
        if t is None:
            return error(404, f"Couldn't find Ticket with 'id'={tid}")
        body = req.body if isinstance(req.body, dict) else {}
        if "state" in body:
            if body["state"] not in STATES:
                return error(422, f"No lookup value found for 'state': {body['state']!r}")
            t["state"], t["state_id"] = body["state"], STATES[body["state"]]
        if "priority" in body:
            if body["priority"] not in PRIORITIES:
                return error(422, f"No lookup value found for 'priority': {body['priority']!r}")
            t["priority"], t["priority_id"] = body["priority"], PRIORITIES[body["priority"]]
        if "article" in body:
            art = self._article(t["id"], body["article"])
            if isinstance(art, Response):
                return art
        return Response(200, self._view(t, False))

    def add_article(self, req: Request) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        tid = body.get("ticket_id")
        if tid not in self.tickets:
            return error(422, "ticket_id is invalid")
        art = self._article(tid, body)
        if isinstance(art, Response):
            return art
        return Response(201, art)

    def add_tag(self, req: Request) -> Response:
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("object") != "Ticket" or body.get("o_id") not in self.tickets or not body.get("item"):
            return error(422, "Need object, o_id and item")
        if body["item"] not in self.tags[body["o_id"]]:
            self.tags[body["o_id"]].append(body["item"])
        return Response(201, True)

    def search(self, req: Request) -> Response:
        query = req.q("query")
        if not query.startswith("tags:"):
            return error(422, "only tags: queries are implemented by this fake")
        tag = query[len("tags:"):].strip('"')
        limit = int(req.q("limit", "10"))
        ids = [] if not self.search_indexed else sorted(
            (tid for tid, tags in self.tags.items() if tag in tags), reverse=True)[:limit]
        if req.q("expand") == "true":
            return Response(200, [self._view(self.tickets[i], True) for i in ids])
        assets = {"Ticket": {str(i): self._view(self.tickets[i], False) for i in ids}}
        return Response(200, {"tickets": ids, "tickets_count": len(ids), "assets": assets})
