"""`rt` backend: Request Tracker 5 through REST2, one ticket per incident, found by a ticket custom field.

```yaml
tickets:
  backends:
    - name: helpdesk
      type: rt
      url: https://rt.example.com          # RT's WebBaseURL + WebPath; REST2 lives under /REST/2.0
      queue: General
      token_file: /run/credentials/hostwarden.service/rt   # or token_env:, or username: + password_env:/password_file:
      fingerprint_field: alert_fingerprint # a ticket custom field (name or id) applied to the queue
      priority_map: {P1: 100, P2: 75, P3: 50, P4: 25}
      resolved_status: resolved
      reopened_status: open
      owner: oncall                        # an RT user name; default Nobody
      category_field: Category             # a ticket custom field that receives the incident's category
      content_type: text/plain             # or text/html
      extra_fields: {AdminCc: [ops@example.com]}   # merged into the create request
```

The API user needs, on the queue: SeeQueue, CreateTicket, ShowTicket, ModifyTicket, CommentOnTicket,
SeeCustomField and ModifyCustomField. Facts of REST2 this relies on: a search is TicketSQL in the
`query` parameter (`CF.{alert_fingerprint} = '<fp>'`; deleted tickets are left out, resolved ones are
not); `PUT /ticket/<id>` answers 200 with a list of messages even when it changed nothing (an unknown
status, a lifecycle or rights refusal), so a status change is read back; a custom field the user may
not set is silently dropped on create, so the new ticket's field is read back too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from hostwarden.agent.core import secrets
from hostwarden.agent.core.incident import Incident, PermanentError, RemoteStatus, TicketRef
from hostwarden.exporters.tickets.base import BackendConfig, register
from hostwarden.exporters.tickets.http import Doc, HttpClient
from hostwarden.exporters.tickets.render import last_event, render_body, render_event, render_title

log = logging.getLogger(__name__)

API = "/REST/2.0"
DEFAULT_PRIORITIES = {"P1": 100, "P2": 75, "P3": 50, "P4": 25}
INACTIVE = frozenset({"resolved", "rejected", "deleted"})  # RT's default lifecycle
MAX_CONTENT = 500_000  # characters
MAX_SUBJECT = 200  # RT's Subject column
POLL_BATCH = 100
_SAFE_NAME = re.compile(r"^[^{}'\"\\]+$")


@dataclass(frozen=True, kw_only=True)
class RtConfig(BackendConfig):
    url: str
    queue: str
    token_env: str | None = None
    token_file: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    fingerprint_field: str = "alert_fingerprint"
    priority_map: dict[str, int] = field(default_factory=dict)
    resolved_status: str = "resolved"
    reopened_status: str = "open"
    owner: str | None = None
    category_field: str | None = None
    content_type: Literal["text/plain", "text/html"] = "text/plain"
    sync_priority: bool = True
    extra_fields: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> list[str]:
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        token = bool(self.token_env) + bool(self.token_file)
        password = bool(self.password_env) + bool(self.password_file)
        if token > 1 or password > 1:
            problems.append("set at most one of token_env/token_file and one of password_env/password_file")
        if token and (self.username or password):
            problems.append("use either a token (token_env/token_file) or username + password, not both")
        if not token and not (self.username and password == 1):
            problems.append("credentials: set token_env or token_file, or username with password_env or password_file")
        for what in ("fingerprint_field", "category_field"):
            v = getattr(self, what)
            if v is not None and not _SAFE_NAME.match(v):
                problems.append(f"{what} must not contain braces, quotes or backslashes: {v!r}")
        problems += [f"priority_map: unknown priority {k!r} (P1..P4)" for k in self.priority_map
                     if k not in DEFAULT_PRIORITIES]
        reserved = {"Queue", "Subject", "Content", "ContentType"} & set(self.extra_fields)
        if reserved:
            problems.append(f"extra_fields must not set {', '.join(sorted(reserved))}")
        return problems


@register("rt")
class RtBackend:
    Config = RtConfig

    def __init__(self, config: RtConfig, *, client: HttpClient | None = None, **_context: Any) -> None:
        self.config = config
        self.name = config.name
        self.flavour: Literal["plain", "html"] = "html" if config.content_type == "text/html" else "plain"
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if not config.dry_run:
            what = f"rt backend {config.name!r}"
            token = secrets.resolve(env=config.token_env, file=config.token_file, what=f"{what} token")
            if token:
                headers["Authorization"] = f"token {token}"
            else:
                pw = secrets.resolve(env=config.password_env, file=config.password_file, what=f"{what} password")
                auth = (config.username or "", pw or "")
        self.client = client or HttpClient(config.url.rstrip("/") + API, timeout=config.timeout,
                                           verify=config.tls_verify, ca_file=config.ca_file, headers=headers,
                                           auth=auth, secret_headers=("Authorization",), name=f"rt {config.name}")
        self.priorities = config.priority_map or DEFAULT_PRIORITIES

    # ------------------------------------------------------------ TicketBackend

    def find(self, fingerprint: str) -> TicketRef | None:
        if self.config.dry_run:
            return None
        query = f"CF.{{{self.config.fingerprint_field}}} = '{_sql_quote(fingerprint)}'"
        data = self.client.doc("GET", "/tickets", params={"query": query, "orderby": "id", "order": "DESC",
                                                          "per_page": 10, "fields": "CustomFields"})
        for item in data.objects("items", optional=True):
            if _cf_values(item, self.config.fingerprint_field) == [fingerprint]:
                return self._ref(item.id())
        return None

    def preview(self, incident: Incident) -> dict[str, Any]:
        """What `open` would send."""
        return {"method": "POST", "url": f"{self.config.url.rstrip('/')}{API}/ticket",
                "body": self._create_payload(incident)}

    def open(self, incident: Incident) -> TicketRef:
        c = self.config
        body = self._create_payload(incident)
        if c.dry_run:
            log.info("rt %s (dry run): would POST /ticket %s", self.name, _summary(body))
            return TicketRef(self.name, f"dry-run-{incident.fingerprint}")
        tid = self.client.doc("POST", "/ticket", json_body=body).id()
        ref = self._ref(tid)
        ticket = self.client.doc("GET", f"/ticket/{tid}").obj()
        if _cf_values(ticket, c.fingerprint_field) != [incident.fingerprint]:
            raise PermanentError(f"rt {self.name}: ticket {tid} was created without its fingerprint: apply the "
                                 f"custom field {c.fingerprint_field!r} to queue {c.queue!r} and grant the API user "
                                 f"SeeCustomField and ModifyCustomField")
        log.info("rt %s: opened ticket %s for %s", self.name, tid, incident.fingerprint)
        return ref

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        self._comment(ref, render_event(incident, event, self.flavour))
        if self.config.sync_priority and incident.priority in self.priorities:
            self._set(ref, {"Priority": self.priorities[incident.priority]})

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        self._comment(ref, render_event(incident, last_event(incident, "resolved"), self.flavour))
        if self.config.on_resolve == "comment" or self.config.dry_run:
            return
        if self._status(ref) in INACTIVE | {self.config.resolved_status}:
            return  # a person resolved or rejected it already: never undo that
        self._set_status(ref, self.config.resolved_status, "resolve")

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        self._comment(ref, render_event(incident, last_event(incident, "reopened"), self.flavour))
        if not self.config.dry_run:
            self._set_status(ref, self.config.reopened_status, "reopen")

    # ------------------------------------------------------------ PollingBackend

    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]:
        refs = [r for r in refs if r.backend == self.name and r.id.isdigit()]
        if self.config.dry_run or not refs:
            return []
        out: list[RemoteStatus] = []
        for start in range(0, len(refs), POLL_BATCH):
            batch = refs[start:start + POLL_BATCH]
            query = " OR ".join(f"id = {r.id}" for r in batch)
            data = self.client.doc("GET", "/tickets", params={"query": query, "per_page": POLL_BATCH,
                                                              "fields": "Status,Owner,LastUpdated"})
            items = {i.id(): i for i in data.objects("items", optional=True)}
            for r in batch:
                item = items.get(r.id)
                out.append(RemoteStatus(r, "missing") if item is None else self._remote_status(r, item))
        return out

    # ------------------------------------------------------------ helpers

    def _create_payload(self, incident: Incident) -> dict[str, Any]:
        c = self.config
        fields: dict[str, Any] = {c.fingerprint_field: incident.fingerprint}
        if c.category_field and incident.category:
            fields[c.category_field] = incident.category
        body: dict[str, Any] = {
            "Queue": c.queue, "Subject": render_title(incident, MAX_SUBJECT),
            "Content": render_body(incident, self.flavour, max_len=MAX_CONTENT), "ContentType": c.content_type,
        }
        if incident.priority in self.priorities:
            body["Priority"] = self.priorities[incident.priority]
        if c.owner:
            body["Owner"] = c.owner
        for extra in (c.extra_fields, incident.extra_fields):
            for k, v in extra.items():
                if k == "CustomFields" and isinstance(v, dict):
                    fields.update(v)
                elif k not in ("Queue", "Subject", "Content", "ContentType"):
                    body[k] = v
        fields[c.fingerprint_field] = incident.fingerprint  # never overridden by extra fields
        body["CustomFields"] = fields
        return body

    def _comment(self, ref: TicketRef, text: str) -> None:
        if self.config.dry_run:
            log.info("rt %s (dry run): would comment on ticket %s (%d chars)", self.name, ref.id, len(text))
            return
        self.client.request("POST", f"/ticket/{_ticket_id(ref)}/comment",
                            json_body={"Content": text, "ContentType": self.config.content_type})

    def _set(self, ref: TicketRef, change: dict[str, Any]) -> None:
        if self.config.dry_run:
            log.info("rt %s (dry run): would PUT /ticket/%s %s", self.name, ref.id, _summary(change))
            return
        self.client.request("PUT", f"/ticket/{_ticket_id(ref)}", json_body=change)

    def _status(self, ref: TicketRef) -> str:
        return self.client.doc("GET", f"/ticket/{_ticket_id(ref)}").get("Status", str, "")

    def _set_status(self, ref: TicketRef, status: str, what: str) -> None:
        resp = self.client.request("PUT", f"/ticket/{_ticket_id(ref)}", json_body={"Status": status})
        got = self._status(ref)
        if got != status:
            said = " ".join(resp.content[:1200].decode("utf-8", "replace").split())[:300]
            raise PermanentError(f"rt {self.name}: {what} of ticket {ref.id} left status {got[:80]!r} instead of "
                                 f"{status!r}: {said}")

    def _remote_status(self, ref: TicketRef, item: Doc | dict[str, Any]) -> RemoteStatus:
        item = Doc.of(item, f"rt {self.name}")
        status = str(item.raw("Status", ""))
        owner = str(item.obj("Owner", optional=True).raw("id", ""))
        person = owner if owner not in ("", "Nobody", self.config.owner or "", self.config.username or "") else ""
        state: Literal["open", "acknowledged", "resolved", "closed", "missing"]
        if status == self.config.resolved_status:
            state = "resolved"
        elif status in INACTIVE:
            state = "closed"
        elif person or status not in ("new", self.config.reopened_status):
            state = "acknowledged"
        else:
            state = "open"
        return RemoteStatus(ref, state, assignee=person, changed_at=_parse_time(item.raw("LastUpdated")))

    def _ref(self, tid: Any) -> TicketRef:
        return TicketRef(self.name, str(tid), f"{self.config.url.rstrip('/')}/Ticket/Display.html?id={tid}")


def _ticket_id(ref: TicketRef) -> str:
    if not ref.id.isdigit():
        raise PermanentError(f"rt {ref.backend}: not an RT ticket id: {ref.id!r}")
    return ref.id


def _sql_quote(value: str) -> str:
    """A TicketSQL single-quoted string body."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _cf_values(obj: Doc, name_or_id: str) -> list[str] | None:
    for f in obj.objects("CustomFields", optional=True):
        if f.raw("name") == name_or_id or str(f.raw("id")) == name_or_id:
            return [str(v) for v in f.get("values", list, [])]
    return None


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text or text.startswith("1970-01-01"):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _summary(payload: dict[str, Any]) -> str:
    return " ".join(f"{k}=<{len(str(v))} chars>" if k in ("Content",) else f"{k}={v!r}" for k, v in payload.items())
