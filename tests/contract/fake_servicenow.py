"""ServiceNow Table API for `incident`, as documented, in memory.

`POST /api/now/table/incident` → 201 `{"result": {record}}`; `GET /api/now/table/incident?sysparm_query=
correlation_id=<fp>^active=true&sysparm_limit=1&sysparm_fields=…` → 200 `{"result": [records]}` with
`X-Total-Count`; `PATCH /api/now/table/incident/{sys_id}` → 200 `{"result": {record}}`;
`GET …/incident/{sys_id}`. States: 1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled;
`active` is false from 6 on. Resolving (6) without `close_code` and `close_notes` is refused (a data
policy on stock instances). Errors: `{"error": {"message", "detail"}, "status": "failure"}` — 401
"User Not Authenticated", 403 "User Not Authorized", 404 "No Record found", 400 "Invalid …".
Rate limit: 429 with `Retry-After` (seconds), `X-RateLimit-Limit`, `X-RateLimit-Reset` (epoch).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from tests.contract.fakeapi import FakeAPI, Request, Response

WRITABLE = {"short_description", "description", "correlation_id", "correlation_display", "urgency", "impact",
            "assignment_group", "caller_id", "category", "subcategory", "cmdb_ci", "work_notes", "comments",
            "state", "close_code", "close_notes", "contact_type", "assigned_to", "u_custom"}
CLOSE_CODES = {"Duplicate", "Known error", "No resolution provided", "Resolved by caller", "Resolved by change",
               "Resolved by problem", "Resolved by request", "Solution provided", "Workaround provided", "User error"}


def failure(status: int, message: str, detail: str = "") -> Response:
    return Response(status, {"error": {"message": message, "detail": detail}, "status": "failure"})


class FakeServiceNow(FakeAPI):
    def __init__(self, user: str = "hostwarden", password: str = "sn_password", token: str = "sn_oauth_token") -> None:
        super().__init__()
        self.user, self.password, self.token = user, password, token
        self.records: dict[str, dict[str, Any]] = {}
        self.work_notes: dict[str, list[str]] = {}
        self._n = 0
        self.route("POST", r"/api/now/table/incident", self.create)
        self.route("GET", r"/api/now/table/incident", self.query)
        self.route("GET", r"/api/now/table/incident/([0-9a-f]{32})", self.get)
        self.route("PATCH", r"/api/now/table/incident/([0-9a-f]{32})", self.patch)

    def authorize(self, request: Request) -> Response | None:
        basic = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if request.headers.get("authorization") not in (basic, f"Bearer {self.token}"):
            return failure(401, "User Not Authenticated", "Required to provide Auth information")
        return None

    def not_found(self, request: Request) -> Response:
        return failure(400, "Requested URI does not represent any resource", "")

    def _bad_fields(self, body: dict[str, Any]) -> Response | None:
        unknown = sorted(set(body) - WRITABLE)
        if unknown:
            return failure(400, "Invalid field(s)", ", ".join(unknown))
        return None

    def _view(self, rec: dict[str, Any], fields: str) -> dict[str, Any]:
        if not fields:
            return dict(rec)
        return {k: rec.get(k, "") for k in fields.split(",")}

    def create(self, req: Request) -> Response:
        body = req.body if isinstance(req.body, dict) else None
        if body is None:
            return failure(400, "Exception while reading request", "The payload is not valid JSON.")
        bad = self._bad_fields(body)
        if bad:
            return bad
        self._n += 1
        sys_id = uuid.uuid4().hex
        rec = {"sys_id": sys_id, "number": f"INC{self._n:07d}", "state": "1", "active": "true",
               "sys_created_on": str(self._n), "assigned_to": "", **{k: str(v) for k, v in body.items()
                                                                      if k != "work_notes"}}
        self.records[sys_id] = rec
        self.work_notes[sys_id] = [body["work_notes"]] if body.get("work_notes") else []
        return Response(201, {"result": self._view(rec, req.q("sysparm_fields"))},
                        {"Location": f"{self.url}/api/now/table/incident/{sys_id}"})

    def query(self, req: Request) -> Response:
        terms = [t for t in req.q("sysparm_query").split("^") if t]
        matched = []
        for rec in self.records.values():
            ok = True
            for term in terms:
                if term.startswith("ORDERBYDESC"):
                    continue
                if term.startswith("sys_idIN"):
                    ok = ok and rec["sys_id"] in term[len("sys_idIN"):].split(",")
                    continue
                key, _, value = term.partition("=")
                if rec.get(key, "") != value:
                    ok = False
            if ok:
                matched.append(rec)
        if any(t == "ORDERBYDESCsys_created_on" for t in terms):
            matched.sort(key=lambda r: int(r["sys_created_on"]), reverse=True)
        limit = int(req.q("sysparm_limit", "10000"))
        offset = int(req.q("sysparm_offset", "0"))
        page = matched[offset:offset + limit]
        return Response(200, {"result": [self._view(r, req.q("sysparm_fields")) for r in page]},
                        {"X-Total-Count": str(len(matched))})

    def get(self, req: Request, sys_id: str) -> Response:
        rec = self.records.get(sys_id)
        if rec is None:
            return failure(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        return Response(200, {"result": self._view(rec, req.q("sysparm_fields"))})

    def patch(self, req: Request, sys_id: str) -> Response:
        rec = self.records.get(sys_id)
        if rec is None:
            return failure(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        body = req.body if isinstance(req.body, dict) else None
        if body is None:
            return failure(400, "Exception while reading request", "The payload is not valid JSON.")
        bad = self._bad_fields(body)
        if bad:
            return bad
        state = str(body.get("state", rec["state"]))
        if state == "6" and rec["state"] != "6":
            code = body.get("close_code", rec.get("close_code", ""))
            if code not in CLOSE_CODES or not body.get("close_notes", rec.get("close_notes")):
                return failure(403, "Operation Failed", "Data Policy Exception: Resolution code, Resolution notes "
                                                        "are mandatory")
        if body.get("work_notes"):
            self.work_notes[sys_id].append(body["work_notes"])
        rec.update({k: str(v) for k, v in body.items() if k != "work_notes"})
        rec["active"] = "false" if int(rec["state"]) >= 6 else "true"
        return Response(200, {"result": self._view(rec, req.q("sysparm_fields"))})
