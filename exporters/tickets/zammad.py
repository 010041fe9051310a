"""`zammad` backend: one Zammad ticket per incident, tagged with the fingerprint.

```yaml
tickets:
  backends:
    - name: helpdesk
      type: zammad
      url: https://zammad.example.com
      token_env: ZAMMAD_TOKEN            # or token_file:; an agent's token with ticket.agent
      group: Ops                         # the group tickets go to
      customer: monitoring@example.com   # the ticket's customer (created if unknown: "guess:" lookup)
      priority_map: {P1: "3 high", P2: "3 high", P3: "2 normal", P4: "1 low"}
      owner: jdoe                        # optional: login of the owner
      tags: [hostwarden]                 # besides the fingerprint tag
      internal: true                     # articles as internal notes
      resolved_state: closed
      reopen_state: open
      fields: {type: Incident}           # merged into the create request
```

The ticket is created with its article and its tags in one request (`POST /api/v1/tickets` with
`tags`, which Zammad adds in the same transaction, so no ticket is ever left without its fingerprint);
`find` searches `GET /api/v1/tickets/search?query=tags:"<fp>"&expand=true` and answers the newest ticket
that is not in a closed state. Zammad's search is served by Elasticsearch (without it, a tag search finds
nothing) and lags a second or so behind writes. Updates are `POST /api/v1/ticket_articles` (an internal
note; the priority follows an escalation with a `PUT`); resolve and reopen are `PUT /api/v1/tickets/{id}`
with the state and a note. Articles are HTML (render.py's `html`: every untrusted value escaped);
Zammad sanitises HTML again on its side.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from hostwarden.agent.core.incident import Incident, PermanentError, RemoteStatus, TicketRef
from hostwarden.agent.core.secrets import resolve
from hostwarden.exporters.tickets.base import BackendConfig, register
from hostwarden.exporters.tickets.http import Doc, HttpClient
from hostwarden.exporters.tickets.render import render_body, render_event, render_title

log = logging.getLogger(__name__)

DEFAULT_PRIORITIES = {"P1": "3 high", "P2": "3 high", "P3": "2 normal", "P4": "1 low"}
MAX_TITLE = 250
MAX_BODY = 100_000
FIND_LIMIT = 20


@dataclass(frozen=True)
class ZammadConfig(BackendConfig):
    url: str = ""
    token_env: str | None = None
    token_file: str | None = None
    group: str = "Users"
    customer: str = ""
    priority_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    owner: str | None = None
    tag_prefix: str = ""
    tags: list[str] = field(default_factory=lambda: ["hostwarden"])
    internal: bool = True
    resolved_state: str = "closed"
    reopen_state: str = "open"
    closed_states: list[str] = field(default_factory=lambda: ["closed", "merged", "removed"])
    sync_priority: bool = True
    fields: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> list[str]:
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        if bool(self.token_env) == bool(self.token_file):
            problems.append("set exactly one of token_env and token_file")
        if "@" not in self.customer:
            problems.append("customer must be the customer's e-mail address")
        if not self.group:
            problems.append("group must not be empty")
        if re.search(r"[\s,\"]", self.tag_prefix) or any(re.search(r"[,\"]", t) for t in self.tags):
            problems.append("tags and tag_prefix must not contain commas or quotes (tag_prefix: no spaces)")
        problems += [f"priority_map: unknown priority {k!r} (P1..P4)" for k in self.priority_map
                     if k not in DEFAULT_PRIORITIES]
        reserved = {"title", "group", "customer", "customer_id", "article", "tags", "state"} & set(self.fields)
        if reserved:
            problems.append(f"fields must not set {', '.join(sorted(reserved))}")
        return problems


@register("zammad")
class ZammadBackend:
    Config = ZammadConfig

    def __init__(self, config: ZammadConfig, *, client: HttpClient | None = None) -> None:
        self.config = config
        self.name = config.name
        token = "" if config.dry_run else resolve(env=config.token_env, file=config.token_file,
                                                  what=f"zammad backend {config.name!r} token") or ""
        self.client = client or HttpClient(config.url, timeout=config.timeout, verify=config.tls_verify,
                                           ca_file=config.ca_file, headers={"Authorization": f"Token token={token}"},
                                           secret_headers=("Authorization",), name=f"zammad {config.name}")

    def tag(self, fingerprint: str) -> str:
        return f"{self.config.tag_prefix}{fingerprint}"

    # -- TicketBackend --------------------------------------------------------------------------------
    def find(self, fingerprint: str) -> TicketRef | None:
        if self.config.dry_run:
            return None
        found = self.client.doc("GET", "/api/v1/tickets/search", params={
            "query": f'tags:"{self.tag(fingerprint)}"', "limit": FIND_LIMIT, "expand": "true",
            "sort_by": "created_at", "order_by": "desc"}).objects()
        tickets = sorted(((int(t.id()), t) for t in found if t.has("id")), key=lambda p: p[0], reverse=True)
        for _, t in tickets:
            if str(t.raw("state", "")) not in self.config.closed_states:
                return self._ref(t)
        return None

    def open(self, incident: Incident) -> TicketRef:
        payload = self._ticket_payload(incident)
        if self.config.dry_run:
            log.info("zammad %s (dry run): would create a ticket in group %r: title=%r tags=%s", self.name,
                     payload["group"], payload["title"], payload["tags"])
            return TicketRef(self.name, f"dry-run-{incident.fingerprint}")
        data = self.client.doc("POST", "/api/v1/tickets", json_body=payload)
        ref = self._ref(data)
        log.info("zammad %s: opened ticket %s (#%s) for %s", self.name, ref.id, data.raw("number", "?"),
                 incident.fingerprint)
        return ref

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        if self.config.dry_run:
            log.info("zammad %s (dry run): would add a note to ticket %s", self.name, ref.id)
            return
        if self.config.sync_priority and incident.priority in self.config.priority_map:
            self._put(ref, {"priority": self.config.priority_map[incident.priority]})
        article = {"ticket_id": int(_ticket_id(ref)), **self._article(incident, event)}
        self.client.request("POST", "/api/v1/ticket_articles", json_body=article)

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        change: dict[str, Any] = {"article": self._article(incident, "Resolved: the alert no longer fires.")}
        if self.config.on_resolve == "resolve":
            change["state"] = self.config.resolved_state
        self._put(ref, change)

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        self._put(ref, {"state": self.config.reopen_state,
                        "article": self._article(incident, "Reopened: the alert fires again.")})

    # -- PollingBackend ---------------------------------------------------------------------------------
    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]:
        out: list[RemoteStatus] = []
        if self.config.dry_run:
            return out
        for ref in refs:
            if ref.backend != self.name or not ref.id.isdigit():
                continue
            try:
                resp = self.client.request("GET", f"/api/v1/tickets/{ref.id}", params={"expand": "true"})
            except PermanentError as e:
                if re.search(r"HTTP 404\b", str(e)):
                    out.append(RemoteStatus(ref, "missing"))
                    continue
                raise
            t = self.client.decode(resp).obj()
            state_name = str(t.raw("state", ""))
            owner = str(t.raw("owner") or "")
            if state_name in self.config.closed_states:
                state: Literal["open", "acknowledged", "resolved", "closed", "missing"] = "closed"
            elif state_name != "new" or (owner not in ("", "-") and owner != (self.config.owner or "")):
                state = "acknowledged"
            else:
                state = "open"
            out.append(RemoteStatus(ref, state, assignee="" if owner == "-" else owner))
        return out

    # -- helpers ------------------------------------------------------------------------------------------
    def _article(self, incident: Incident, event: str) -> dict[str, Any]:
        return {"subject": render_title(incident, MAX_TITLE), "body": render_event(incident, event, "html"),
                "content_type": "text/html", "type": "note", "internal": self.config.internal}

    def _ticket_payload(self, incident: Incident) -> dict[str, Any]:
        c = self.config
        title = render_title(incident, MAX_TITLE)
        payload: dict[str, Any] = {
            "title": title, "group": c.group, "customer_id": f"guess:{c.customer}",
            "article": {"subject": title, "body": render_body(incident, "html", max_len=MAX_BODY),
                        "content_type": "text/html", "type": "note", "internal": c.internal},
            "tags": ",".join(dict.fromkeys([self.tag(incident.fingerprint), *c.tags])),
        }
        if incident.priority in c.priority_map:
            payload["priority"] = c.priority_map[incident.priority]
        if c.owner:
            payload["owner"] = c.owner
        for extra in (c.fields, incident.extra_fields):
            payload.update({k: v for k, v in extra.items() if k not in ("title", "group", "customer_id", "article",
                                                                        "tags", "state")})
        return payload

    def _put(self, ref: TicketRef, change: dict[str, Any]) -> None:
        if self.config.dry_run:
            log.info("zammad %s (dry run): would update ticket %s: %s", self.name, ref.id, sorted(change))
            return
        self.client.request("PUT", f"/api/v1/tickets/{_ticket_id(ref)}", json_body=change)

    def _ref(self, ticket: Doc) -> TicketRef:
        tid = ticket.id()
        return TicketRef(self.name, tid, f"{self.config.url.rstrip('/')}/#ticket/zoom/{tid}")


def _ticket_id(ref: TicketRef) -> str:
    if not ref.id.isdigit():
        raise PermanentError(f"zammad {ref.backend}: not a Zammad ticket id: {ref.id!r}")
    return ref.id
