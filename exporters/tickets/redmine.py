"""`redmine` backend: one Redmine issue per incident, found again by a custom field holding the fingerprint.

```yaml
tickets:
  backends:
    - name: ops
      type: redmine
      url: https://redmine.example.com
      project: ops                      # identifier or numeric id
      api_key_env: REDMINE_API_KEY      # or api_key_file: (a systemd credential name or a path)
      fingerprint_field: alert_fingerprint   # custom field name or id: a string field, "used as a filter"
      # fingerprint_field_id: 7         # when the API user can see neither the project's fields nor /custom_fields
      tracker: Bug                      # name or id; default: the project's first tracker
      priority_map: {P1: Immediate, P2: Urgent, P3: High, P4: Normal}   # names or ids
      resolved_status: Resolved         # name or id (/issue_statuses.json)
      reopened_status: New
      assignee: 5                       # user/group id, or a member's name as Redmine shows it
      category_map: {disk: Storage}     # incident category -> issue category name or id
      text_formatting: textile          # the instance's Settings > Text formatting: textile | common_mark | plain
      extra_fields: {is_private: false} # merged into the issue JSON on open
```

Facts of the API this relies on: `POST /issues.json` answers 201 with the issue; `PUT /issues/<id>.json`
answers 204 with an empty body, and *silently keeps* a status the workflow does not allow (so the status
is read back after a change); issue lists hide closed issues unless `status_id=*`; a filter on a custom
field that is not "used as a filter" is ignored (so every found issue's field is checked). Names are
resolved to ids once, lazily, from `/trackers.json`, `/issue_statuses.json`,
`/enumerations/issue_priorities.json`, `/projects/<p>.json?include=issue_custom_fields` (or, for admins,
`/custom_fields.json`), `/projects/<p>/memberships.json` and `/projects/<p>/issue_categories.json`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from hostwarden.agent.core import secrets
from hostwarden.agent.core.incident import Incident, PermanentError, RemoteStatus, TicketRef
from hostwarden.exporters.tickets.base import BackendConfig, register
from hostwarden.exporters.tickets.http import Doc, HttpClient
from hostwarden.exporters.tickets.render import Flavour, last_event, render_body, render_event, render_title

log = logging.getLogger(__name__)

DEFAULT_PRIORITIES = {"P1": "Immediate", "P2": "Urgent", "P3": "High", "P4": "Normal"}
FLAVOUR_OF: dict[str, Flavour] = {"textile": "textile", "common_mark": "markdown", "markdown": "markdown",
                                  "plain": "plain"}
MAX_DESCRIPTION = 60_000  # characters; MySQL's TEXT column holds 64 KiB
POLL_BATCH = 100  # Redmine's maximum page size


@dataclass(frozen=True, kw_only=True)
class RedmineConfig(BackendConfig):
    url: str
    project: str
    api_key_env: str | None = None
    api_key_file: str | None = None
    fingerprint_field: str = "alert_fingerprint"
    fingerprint_field_id: int | None = None
    tracker: str | None = None
    priority_map: dict[str, str] = field(default_factory=dict)
    resolved_status: str = "Resolved"
    reopened_status: str = "New"
    assignee: str | None = None
    category_map: dict[str, str] = field(default_factory=dict)
    text_formatting: Literal["textile", "common_mark", "markdown", "plain"] = "textile"
    sync_priority: bool = True  # an escalation changes the issue's priority too
    extra_fields: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> list[str]:
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        if not self.project:
            problems.append("project must not be empty")
        if bool(self.api_key_env) == bool(self.api_key_file):
            problems.append("set exactly one of api_key_env and api_key_file")
        problems += [f"priority_map: unknown priority {k!r} (P1..P4)" for k in self.priority_map
                     if k not in DEFAULT_PRIORITIES]
        reserved = {"project_id", "subject", "description"} & set(self.extra_fields)
        if reserved:
            problems.append(f"extra_fields must not set {', '.join(sorted(reserved))}")
        return problems


@dataclass(frozen=True, slots=True)
class _Meta:
    """Names resolved to this instance's ids."""

    project_id: int
    fingerprint_field_id: int
    tracker_id: int | None
    priority_ids: dict[str, int]
    resolved_status_id: int
    reopened_status_id: int
    closed_status_ids: frozenset[int]
    initial_status_ids: frozenset[int]
    assignee_id: int | None
    self_id: int  # the API user
    category_ids: dict[str, int]


@register("redmine")
class RedmineBackend:
    Config = RedmineConfig

    def __init__(self, config: RedmineConfig, *, client: HttpClient | None = None, **_context: Any) -> None:
        self.config = config
        self.name = config.name
        key = "" if config.dry_run else secrets.resolve(env=config.api_key_env, file=config.api_key_file,
                                                        what=f"redmine backend {config.name!r} api key") or ""
        self.client = client or HttpClient(config.url, timeout=config.timeout, verify=config.tls_verify,
                                           ca_file=config.ca_file, headers={"X-Redmine-API-Key": key},
                                           secret_headers=("X-Redmine-API-Key",), name=f"redmine {config.name}")
        self.flavour: Flavour = FLAVOUR_OF[config.text_formatting]
        self._meta: _Meta | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ TicketBackend

    def find(self, fingerprint: str) -> TicketRef | None:
        if self.config.dry_run:
            return None
        m = self.meta()
        cf = f"cf_{m.fingerprint_field_id}"
        params = {"project_id": m.project_id, "status_id": "*", cf: fingerprint, "sort": "id:desc", "limit": 25}
        issues = self.client.doc("GET", "/issues.json", params=params).objects("issues", optional=True)
        found = [i for i in issues if _cf_value(i, m.fingerprint_field_id) == fingerprint]
        if issues and not found:
            raise PermanentError(f"redmine {self.name}: the search by custom field {m.fingerprint_field_id} returned "
                                 f"other issues: make the field 'Used as a filter' and visible to the API user")
        return self._ref(found[0].id()) if found else None

    def preview(self, incident: Incident) -> dict[str, Any]:
        """What `open` would send (names as configured: a preview sends no request, not even discovery)."""
        return {"method": "POST", "url": f"{self.config.url.rstrip('/')}/issues.json",
                "body": {"issue": self._issue_payload(incident, offline=True)}}

    def open(self, incident: Incident) -> TicketRef:
        payload = self._issue_payload(incident, offline=self.config.dry_run)
        if self.config.dry_run:
            log.info("redmine %s (dry run): would POST /issues.json %s", self.name, _summary(payload))
            return TicketRef(self.name, f"dry-run-{incident.fingerprint}")
        ref = self._ref(self.client.doc("POST", "/issues.json", json_body={"issue": payload}).id("issue.id"))
        log.info("redmine %s: opened issue #%s for %s", self.name, ref.id, incident.fingerprint)
        return ref

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        change: dict[str, Any] = {"notes": render_event(incident, event, self.flavour)}
        if self.config.sync_priority and not self.config.dry_run:
            pid = self.meta().priority_ids.get(incident.priority)
            if pid is not None:
                change["priority_id"] = pid
        self._put(ref, change)

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        note = render_event(incident, last_event(incident, "resolved"), self.flavour)
        if self.config.on_resolve == "comment" or self.config.dry_run:
            self._put(ref, {"notes": note})
            return
        m = self.meta()
        current = self._status_of(ref)
        if current in m.closed_status_ids or current == m.resolved_status_id:
            self._put(ref, {"notes": note})  # a person closed it already: say so, never undo their close
            return
        self._put(ref, {"notes": note, "status_id": m.resolved_status_id})
        self._expect_status(ref, m.resolved_status_id, "resolve")

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        note = render_event(incident, last_event(incident, "reopened"), self.flavour)
        if self.config.dry_run:
            self._put(ref, {"notes": note})
            return
        m = self.meta()
        self._put(ref, {"notes": note, "status_id": m.reopened_status_id})
        self._expect_status(ref, m.reopened_status_id, "reopen")

    # ------------------------------------------------------------ PollingBackend

    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]:
        refs = [r for r in refs if r.backend == self.name and r.id.isdigit()]
        if self.config.dry_run or not refs:
            return []
        m = self.meta()
        out: list[RemoteStatus] = []
        for start in range(0, len(refs), POLL_BATCH):
            batch = refs[start:start + POLL_BATCH]
            params = {"issue_id": ",".join(r.id for r in batch), "status_id": "*", "limit": POLL_BATCH}
            answer = self.client.doc("GET", "/issues.json", params=params)
            issues = {i.id(): i for i in answer.objects("issues", optional=True)}
            for r in batch:
                issue = issues.get(r.id)
                out.append(RemoteStatus(r, "missing") if issue is None else self._remote_status(r, issue, m))
        return out

    # ------------------------------------------------------------ discovery

    def meta(self) -> _Meta:
        with self._lock:
            if self._meta is None:
                self._meta = self._discover()
                log.info("redmine %s: project %s, fingerprint field %s, statuses resolved %s / reopened %s",
                         self.name, self._meta.project_id, self._meta.fingerprint_field_id,
                         self._meta.resolved_status_id, self._meta.reopened_status_id)
            return self._meta

    def _discover(self) -> _Meta:
        c = self.config
        # Redmine treats an unknown API key as the anonymous user, who may well read a public project:
        # /users/current.json is the one call that says 401 then.
        me = self.client.doc("GET", "/users/current.json").obj("user")
        project = self.client.doc("GET", f"/projects/{c.project}.json",
                                  params={"include": "trackers,issue_custom_fields"}).obj("project")
        pid = project.get("id", int)
        statuses = self.client.doc("GET", "/issue_statuses.json").objects("issue_statuses")
        all_trackers = self.client.doc("GET", "/trackers.json").objects("trackers")
        tracker_id = _pick(project.objects("trackers", optional=True) or all_trackers, c.tracker,
                           "tracker", self.name) if c.tracker else None
        initial = {t.get("default_status.id", int) for t in all_trackers if t.get("default_status", dict, None)}
        priorities = self.client.doc("GET", "/enumerations/issue_priorities.json").objects("issue_priorities")
        priority_ids: dict[str, int] = {}
        for p, want in (c.priority_map or DEFAULT_PRIORITIES).items():
            found = _find(priorities, want)
            if found is not None:
                priority_ids[p] = found
            elif c.priority_map:
                raise _not_found(priorities, want, "priority", self.name)
            else:
                log.info("redmine %s: no priority named %r: %s tickets get the default priority", self.name, want, p)
        resolved = _pick(statuses, c.resolved_status, "resolved_status", self.name)
        reopened = _pick(statuses, c.reopened_status, "reopened_status", self.name)
        closed = frozenset(s.get("id", int) for s in statuses if s.raw("is_closed"))
        return _Meta(
            project_id=pid, fingerprint_field_id=self._fingerprint_field(project), tracker_id=tracker_id,
            priority_ids=priority_ids, resolved_status_id=resolved, reopened_status_id=reopened,
            closed_status_ids=closed, initial_status_ids=frozenset(initial | {reopened}),
            assignee_id=self._assignee(pid) if c.assignee else None, self_id=me.get("id", int),
            category_ids=self._categories(pid))

    def _fingerprint_field(self, project: Doc) -> int:
        c = self.config
        if c.fingerprint_field_id is not None:
            return c.fingerprint_field_id
        if c.fingerprint_field.isdigit():
            return int(c.fingerprint_field)
        fields = project.objects("issue_custom_fields", optional=True)
        if not any(f.raw("name") == c.fingerprint_field for f in fields):
            try:
                answer = self.client.doc("GET", "/custom_fields.json")
            except PermanentError as e:
                raise PermanentError(f"redmine {self.name}: custom field {c.fingerprint_field!r} is not enabled "
                                     f"for project {c.project!r} and /custom_fields.json needs an admin ({e}); "
                                     f"enable the field for the project or set fingerprint_field_id") from None
            fields = [f for f in answer.objects("custom_fields") if f.raw("customized_type") == "issue"]
        return _pick(fields, c.fingerprint_field, "fingerprint_field", self.name)

    def _assignee(self, project_id: int) -> int:
        want = str(self.config.assignee)
        if want.isdigit():
            return int(want)
        members = self.client.doc("GET", f"/projects/{project_id}/memberships.json", params={"limit": 100})
        for m in members.objects("memberships", optional=True):
            who = m.obj("user" if m.raw("user") else "group", optional=True)
            if who.raw("name") == want:
                return who.get("id", int)
        raise PermanentError(f"redmine {self.name}: assignee {want!r} is not a member of project "
                             f"{self.config.project!r} (give a user or group id, or the member's name)")

    def _categories(self, project_id: int) -> dict[str, int]:
        if not self.config.category_map:
            return {}
        cats = self.client.doc("GET", f"/projects/{project_id}/issue_categories.json").objects("issue_categories")
        return {k: _pick(cats, v, f"category_map.{k}", self.name) for k, v in self.config.category_map.items()}

    # ------------------------------------------------------------ helpers

    def _issue_payload(self, incident: Incident, *, offline: bool) -> dict[str, Any]:
        c = self.config
        body = render_body(incident, self.flavour, max_len=MAX_DESCRIPTION)
        payload: dict[str, Any] = {"subject": render_title(incident, 255), "description": body}
        if offline:  # names as configured: a dry run or preview sends nothing, not even discovery requests
            payload.update(project_id=c.project, custom_fields=[{"id": c.fingerprint_field_id or c.fingerprint_field,
                                                                 "value": incident.fingerprint}])
            payload["priority"] = (c.priority_map or DEFAULT_PRIORITIES).get(incident.priority)
            if c.tracker:
                payload["tracker"] = c.tracker
        else:
            m = self.meta()
            payload.update(project_id=m.project_id,
                           custom_fields=[{"id": m.fingerprint_field_id, "value": incident.fingerprint}])
            if m.tracker_id is not None:
                payload["tracker_id"] = m.tracker_id
            if incident.priority in m.priority_ids:
                payload["priority_id"] = m.priority_ids[incident.priority]
            if m.assignee_id is not None:
                payload["assigned_to_id"] = m.assignee_id
            if incident.category in m.category_ids:
                payload["category_id"] = m.category_ids[incident.category]
        for extra in (c.extra_fields, incident.extra_fields):
            for k, v in extra.items():
                if k == "custom_fields" and isinstance(v, list):
                    payload["custom_fields"] = payload["custom_fields"] + list(v)
                elif k not in ("project_id", "subject", "description"):
                    payload[k] = v
        return payload

    def _put(self, ref: TicketRef, change: dict[str, Any]) -> None:
        if self.config.dry_run:
            log.info("redmine %s (dry run): would PUT /issues/%s.json %s", self.name, ref.id, _summary(change))
            return
        self.client.request("PUT", f"/issues/{_issue_id(ref)}.json", json_body={"issue": change})

    def _status_of(self, ref: TicketRef) -> int:
        return self.client.doc("GET", f"/issues/{_issue_id(ref)}.json").get("issue.status.id", int)

    def _expect_status(self, ref: TicketRef, want: int, what: str) -> None:
        got = self._status_of(ref)
        if got != want:
            raise PermanentError(f"redmine {self.name}: {what} of issue #{ref.id} kept status {got} instead of "
                                 f"{want}: the workflow does not allow the API user this transition")

    def _remote_status(self, ref: TicketRef, issue: Doc | dict[str, Any], m: _Meta) -> RemoteStatus:
        issue = Doc.of(issue, f"redmine {self.name}")
        status = issue.get("status.id", int)
        assignee = issue.obj("assigned_to", optional=True)
        changed = _parse_time(issue.raw("updated_on"))
        if status in m.closed_status_ids:
            state: Literal["open", "acknowledged", "resolved", "closed", "missing"] = "closed"
        elif status == m.resolved_status_id:
            state = "resolved"
        elif (assignee.value and assignee.get("id", int, None) not in (m.assignee_id, m.self_id)) \
                or status not in m.initial_status_ids:
            state = "acknowledged"
        else:
            state = "open"
        return RemoteStatus(ref, state, assignee=str(assignee.raw("name", "")), changed_at=changed)

    def _ref(self, issue_id: Any) -> TicketRef:
        return TicketRef(self.name, str(issue_id), f"{self.config.url.rstrip('/')}/issues/{issue_id}")


def _issue_id(ref: TicketRef) -> str:
    if not ref.id.isdigit():
        raise PermanentError(f"redmine {ref.backend}: not a Redmine issue id: {ref.id!r}")
    return ref.id


def _pick(items: list[Doc] | list[dict[str, Any]], want: str | int, what: str, backend: str = "") -> int:
    """The id of the item named (or numbered) `want`; PermanentError listing the choices when absent."""
    docs = [Doc.of(it, f"redmine {backend}".rstrip()) for it in items]
    found = _find(docs, want)
    if found is None:
        raise _not_found(docs, want, what, backend)
    return found


def _find(items: list[Doc], want: str | int) -> int | None:
    w = str(want)
    for it in items:
        if str(it.raw("id")) == w or it.raw("name") == w:
            return it.get("id", int)
    for it in items:  # names are case-insensitive in Redmine's UI
        if str(it.raw("name", "")).casefold() == w.casefold():
            return it.get("id", int)
    return None


def _not_found(items: list[Doc], want: str | int, what: str, backend: str) -> PermanentError:
    choices = ", ".join(f"{it.raw('name')} ({it.raw('id')})" for it in items[:50]) or "none visible"
    return PermanentError(f"redmine {backend}: {what} {str(want)!r} not found; known: {choices}"[:2000])


def _cf_value(issue: Doc, cf_id: int) -> str | None:
    for f in issue.objects("custom_fields", optional=True):
        if f.raw("id") == cf_id:
            value = f.raw("value")
            return value if isinstance(value, str) else None
    return None


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _summary(payload: dict[str, Any]) -> str:
    """A log-safe one-line summary: field names and short values, the long texts by size only."""
    parts = []
    for k, v in payload.items():
        if k in ("description", "notes"):
            parts.append(f"{k}=<{len(str(v))} chars>")
        else:
            parts.append(f"{k}={v!r}")
    return " ".join(parts)
