"""`servicenow` backend: one ServiceNow incident per hostwarden incident, through the Table API.

```yaml
tickets:
  backends:
    - name: snow
      type: servicenow
      url: https://acme.service-now.com
      auth: basic                        # basic: user + password_env/_file | bearer: an OAuth token (token_env/_file)
      user: hostwarden.integration
      password_env: SNOW_PASSWORD
      assignment_group: Linux Ops        # name or sys_id
      caller_id: hostwarden.integration  # user name or sys_id
      category: software                 # default category; category_map overrides per incident category
      category_map: {disk: hardware, network: network}
      urgency_impact: {P1: [1, 1], P2: [1, 2], P3: [2, 2], P4: [3, 2]}   # [urgency, impact]
      close_code: Solution provided      # your instance's Resolution code choice
      reopen_state: 2                    # 2 In Progress (1 New)
      notes_field: work_notes            # work_notes (internal) | comments (customer-visible)
      fields: {contact_type: monitoring}
```

The fingerprint is the incident's `correlation_id` (`correlation_display` = "hostwarden"). `find` asks
`sysparm_query=correlation_id=<fp>^active=true^ORDERBYDESCsys_created_on&sysparm_limit=1`: only an active
incident is adopted; a resolved one belongs to an incident that ended (reopening within the reopen
window uses the stored reference). Updates are `PATCH …/incident/{sys_id}` with `work_notes`; resolve
sets `state=6` with `close_code` and `close_notes` (both mandatory on stock instances); reopen sets
`reopen_state`. Priority is derived by ServiceNow from urgency × impact, so hostwarden's P1–P4 map to
those two. Text fields are plain text; `[code]…[/code]` (which journal fields render as HTML) is
defused in untrusted text. `short_description` is at most 160 characters, `description` and notes at
most `max_text` (4000, the stock column size) — truncated with a note.
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

DEFAULT_URGENCY_IMPACT = {"P1": [1, 1], "P2": [1, 2], "P3": [2, 2], "P4": [3, 2]}
MAX_SHORT = 160
POLL_BATCH = 100
RESOLVED, CLOSED, CANCELED = 6, 7, 8
_CODE_TAG = re.compile(r"\[(/?)(code)\]", re.IGNORECASE)
_SYS_ID = re.compile(r"[0-9a-f]{32}")
_STATE = re.compile(r"[0-9]{1,3}")
_TRUNCATED = "\n(truncated by hostwarden: {n} characters left out)"


@dataclass(frozen=True)
class ServiceNowConfig(BackendConfig):
    url: str = ""
    table: str = "incident"
    auth: Literal["basic", "bearer"] = "basic"
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    assignment_group: str | None = None
    caller_id: str | None = None
    category: str | None = None
    category_map: dict[str, str] = field(default_factory=dict)
    urgency_impact: dict[str, list[int]] = field(default_factory=lambda: {k: list(v) for k, v in
                                                                         DEFAULT_URGENCY_IMPACT.items()})
    correlation_display: str = "hostwarden"
    close_code: str = "Solution provided"
    reopen_state: int = 2
    notes_field: Literal["work_notes", "comments"] = "work_notes"
    max_text: int = 4000
    fields: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> list[str]:
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        if self.auth == "basic":
            if not self.user or bool(self.password_env) == bool(self.password_file):
                problems.append("auth: basic needs user and exactly one of password_env and password_file")
        elif bool(self.token_env) == bool(self.token_file):
            problems.append("auth: bearer needs exactly one of token_env and token_file")
        for k, v in self.urgency_impact.items():
            if k not in DEFAULT_URGENCY_IMPACT:
                problems.append(f"urgency_impact: unknown priority {k!r} (P1..P4)")
            elif len(v) != 2 or not all(x in (1, 2, 3) for x in v):
                problems.append(f"urgency_impact.{k}: expected [urgency, impact], each 1, 2 or 3")
        if self.reopen_state not in (1, 2, 3):
            problems.append("reopen_state must be 1 (New), 2 (In Progress) or 3 (On Hold)")
        if not re.fullmatch(r"[a-z0-9_]+", self.table):
            problems.append(f"table {self.table!r} is not a table name")
        if self.max_text < 500:
            problems.append("max_text must be at least 500")
        reserved = {"correlation_id", "short_description", "description", "state"} & set(self.fields)
        if reserved:
            problems.append(f"fields must not set {', '.join(sorted(reserved))}")
        return problems


def defuse(text: str) -> str:
    """Plain text that ServiceNow will not render as HTML (journal fields honour `[code]…[/code]`)."""
    return _CODE_TAG.sub(r"[\1 \2]", text)


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = _TRUNCATED.format(n=len(text) - limit)
    keep = max(0, limit - len(note))
    return text[:keep] + _TRUNCATED.format(n=len(text) - keep)


@register("servicenow")
class ServiceNowBackend:
    Config = ServiceNowConfig

    def __init__(self, config: ServiceNowConfig, *, client: HttpClient | None = None) -> None:
        self.config = config
        self.name = config.name
        headers: dict[str, str] = {"Content-Type": "application/json"}
        auth = None
        if not config.dry_run:
            if config.auth == "bearer":
                token = resolve(env=config.token_env, file=config.token_file,
                                what=f"servicenow backend {config.name!r} token") or ""
                headers["Authorization"] = f"Bearer {token}"
            else:
                password = resolve(env=config.password_env, file=config.password_file,
                                   what=f"servicenow backend {config.name!r} password") or ""
                auth = (config.user or "", password)
        self.client = client or HttpClient(config.url, timeout=config.timeout, verify=config.tls_verify,
                                           ca_file=config.ca_file, headers=headers, auth=auth,
                                           secret_headers=("Authorization",), name=f"servicenow {config.name}")
        self.path = f"/api/now/table/{config.table}"

    # -- TicketBackend --------------------------------------------------------------------------------
    def find(self, fingerprint: str) -> TicketRef | None:
        if self.config.dry_run:
            return None
        result = self.client.doc("GET", self.path, params={
            "sysparm_query": f"correlation_id={fingerprint}^active=true^ORDERBYDESCsys_created_on",
            "sysparm_limit": "1", "sysparm_fields": "sys_id,number,state",
            "sysparm_exclude_reference_link": "true"}).objects("result")
        return self._ref(result[0]) if result else None

    def open(self, incident: Incident) -> TicketRef:
        record = self._record(incident)
        if self.config.dry_run:
            log.info("servicenow %s (dry run): would create %s: short_description=%r urgency=%s impact=%s",
                     self.name, self.config.table, record["short_description"], record["urgency"], record["impact"])
            return TicketRef(self.name, f"dry-run-{incident.fingerprint}")
        result = self.client.doc("POST", self.path, params={"sysparm_fields": "sys_id,number,state"},
                                 json_body=record).obj("result")
        ref = self._ref(result)
        log.info("servicenow %s: opened %s (%s) for %s", self.name, result.raw("number", "?"), ref.id,
                 incident.fingerprint)
        return ref

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        change: dict[str, Any] = {self.config.notes_field: self._note(incident, event)}
        change.update(self._urgency_impact(incident))
        self._patch(ref, change)

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        note = self._note(incident, "Resolved: the alert no longer fires.")
        if self.config.on_resolve == "comment":
            self._patch(ref, {self.config.notes_field: note})
            return
        if not self.config.dry_run and self._state(ref) >= RESOLVED:
            log.info("servicenow %s: %s is already resolved or closed; left as it is", self.name, ref.id)
            return
        self._patch(ref, {"state": str(RESOLVED), "close_code": self.config.close_code,
                          "close_notes": "Resolved by hostwarden: the alert no longer fires.",
                          self.config.notes_field: note})

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        if not self.config.dry_run and self._state(ref) in (CLOSED, CANCELED):
            raise PermanentError(f"servicenow {self.name}: incident {ref.id} is closed or canceled; ServiceNow "
                                 f"reopens only resolved incidents")
        self._patch(ref, {"state": str(self.config.reopen_state),
                          self.config.notes_field: self._note(incident, "Reopened: the alert fires again.")})

    def _state(self, ref: TicketRef) -> int:
        data = self.client.doc("GET", f"{self.path}/{_sys_id(ref)}", params={"sysparm_fields": "state"})
        return _state_no(data.obj("result", optional=True).raw("state"))

    # -- PollingBackend ----------------------------------------------------------------------------------
    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]:
        mine = [r for r in refs if r.backend == self.name and _SYS_ID.fullmatch(r.id)]
        if self.config.dry_run or not mine:
            return []
        out: list[RemoteStatus] = []
        for start in range(0, len(mine), POLL_BATCH):
            batch = mine[start:start + POLL_BATCH]
            data = self.client.doc("GET", self.path, params={
                "sysparm_query": "sys_idIN" + ",".join(r.id for r in batch),
                "sysparm_fields": "sys_id,state,assigned_to", "sysparm_limit": str(POLL_BATCH),
                "sysparm_exclude_reference_link": "true"})
            found = {r.get("sys_id", str): r for r in data.objects("result", optional=True)}
            for ref in batch:
                rec = found.get(ref.id)
                if rec is None:
                    out.append(RemoteStatus(ref, "missing"))
                    continue
                state_no = _state_no(rec.raw("state"))
                assignee = str(rec.raw("assigned_to") or "")
                if state_no in (CLOSED, CANCELED):
                    state: Literal["open", "acknowledged", "resolved", "closed", "missing"] = "closed"
                elif state_no == RESOLVED:
                    state = "resolved"
                elif assignee or state_no in (2, 3):
                    state = "acknowledged"
                else:
                    state = "open"
                out.append(RemoteStatus(ref, state, assignee=assignee))
        return out

    # -- helpers -------------------------------------------------------------------------------------------
    def _urgency_impact(self, incident: Incident) -> dict[str, str]:
        pair = self.config.urgency_impact.get(incident.priority)
        return {"urgency": str(pair[0]), "impact": str(pair[1])} if pair else {}

    def _record(self, incident: Incident) -> dict[str, Any]:
        c = self.config
        body = defuse(render_body(incident, "plain", max_len=c.max_text - 100))
        record: dict[str, Any] = {
            "short_description": render_title(incident, MAX_SHORT),
            "description": _bounded(body, c.max_text),
            "correlation_id": incident.fingerprint,
            "correlation_display": c.correlation_display,
            **self._urgency_impact(incident),
        }
        category = c.category_map.get(incident.category) or c.category
        if category:
            record["category"] = category
        if c.assignment_group:
            record["assignment_group"] = c.assignment_group
        if c.caller_id:
            record["caller_id"] = c.caller_id
        for extra in (c.fields, incident.extra_fields):
            record.update({k: v for k, v in extra.items() if k not in ("correlation_id", "short_description",
                                                                        "description", "state")})
        return record

    def _note(self, incident: Incident, event: str) -> str:
        return _bounded(defuse(render_event(incident, event, "plain")), self.config.max_text)

    def _patch(self, ref: TicketRef, change: dict[str, Any]) -> None:
        if self.config.dry_run:
            log.info("servicenow %s (dry run): would PATCH %s with %s", self.name, ref.id, sorted(change))
            return
        self.client.request("PATCH", f"{self.path}/{_sys_id(ref)}", params={"sysparm_fields": "sys_id,state"},
                            json_body=change)

    def _ref(self, record: Doc) -> TicketRef:
        sys_id = record.get("sys_id", str)
        if not _SYS_ID.fullmatch(sys_id):
            raise record.error(f"{record.path}.sys_id {sys_id[:80]!r} is not a sys_id (32 hex digits)")
        return TicketRef(self.name, sys_id, f"{self.config.url.rstrip('/')}/{self.config.table}.do?sys_id={sys_id}")


def _sys_id(ref: TicketRef) -> str:
    if not _SYS_ID.fullmatch(ref.id):
        raise PermanentError(f"servicenow {ref.backend}: not a ServiceNow sys_id: {ref.id!r}")
    return ref.id


def _state_no(value: Any) -> int:
    """An incident's state number (a string in the Table API); 1 (New) when absent or not a number."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return int(text) if _STATE.fullmatch(text) else 1
