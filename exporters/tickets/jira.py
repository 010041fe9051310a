"""`jira` backend: one Jira issue per incident, Cloud (`/rest/api/3`, ADF) or Server/Data Center (`/rest/api/2`).

```yaml
tickets:
  backends:
    - name: jira
      type: jira
      url: https://acme.atlassian.net
      api: cloud                         # cloud (/rest/api/3) | server (/rest/api/2, Data Center too)
      project: OPS
      issue_type: Task
      auth: basic                        # basic: user (Cloud: the account e-mail) + API token | bearer: a PAT
      user: hostwarden@acme.example
      api_token_env: JIRA_API_TOKEN      # or api_token_file:
      labels: [hostwarden]
      priority_map: {P1: Highest, P2: High, P3: Medium, P4: Low}   # "" = leave the priority unset
      assignee: 5b10a2844c20165700ede21g # Cloud: accountId, Server: user name
      components: [Infrastructure]
      category_field: components         # incident category -> components | labels | customfield_NNNNN
      resolve_transition: Done           # optional: a transition name; default: one into status category "done"
      reopen_transition: Reopen          # optional; default: one into "new", else "indeterminate"
      fields: {customfield_10010: {value: "Production"}}   # merged into the create request
```

The fingerprint is a label (`hostwarden-<fp>`: no spaces, at most 255 characters) and a `hostwarden
fingerprint` line at the end of the description. `find` runs `project = "X" AND labels = "<label>"`
(Cloud: `POST /rest/api/3/search/jql`, the old `/search` is gone; Server/DC: `GET /rest/api/2/search`) and
answers the newest issue not in status category "done". Resolve and reopen discover their transition per
issue (`GET …/transitions`): by the configured name (transition or target status), else by the target's
status category; an issue already in the target category is left alone. Summary (255) and description
(32 767 characters, for Cloud the ADF document) are bounded by truncation with a note, never by a 400.
Description and comments are ADF on Cloud (all untrusted text in code blocks) and `{noformat}` wiki
markup on Server (render.py's `jira_wiki`), so neither mentions nor links can be injected.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from hostwarden.agent.core.incident import Incident, PermanentError, RemoteStatus, TicketRef
from hostwarden.agent.core.secrets import resolve
from hostwarden.exporters.tickets.base import BackendConfig, register
from hostwarden.exporters.tickets.http import Doc, HttpClient
from hostwarden.exporters.tickets.render import render_body, render_event, render_title

log = logging.getLogger(__name__)

DEFAULT_PRIORITIES = {"P1": "Highest", "P2": "High", "P3": "Medium", "P4": "Low"}
MAX_SUMMARY = 255
MAX_TEXT = 32_767
MAX_LABEL = 255
FIND_PAGES = 3
PAGE_SIZE = 50
POLL_BATCH = 50
_HEADING = re.compile(r"^== (.+) ==$")
_KEY = re.compile(r"[A-Z][A-Z0-9_]*-\d+")
_T = TypeVar("_T", Doc, dict[str, Any])
_TRUNCATED_NOTE = "(truncated by hostwarden to fit Jira's 32767 character limit)"


@dataclass(frozen=True)
class JiraConfig(BackendConfig):
    url: str = ""
    api: Literal["cloud", "server"] = "cloud"
    project: str = ""
    issue_type: str = "Task"
    auth: Literal["basic", "bearer"] = "basic"
    user: str | None = None
    api_token_env: str | None = None
    api_token_file: str | None = None
    label_prefix: str = "hostwarden-"
    labels: list[str] = field(default_factory=lambda: ["hostwarden"])
    priority_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    assignee: str | None = None
    components: list[str] = field(default_factory=list)
    category_field: str | None = None
    resolve_transition: str | None = None
    reopen_transition: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> list[str]:
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", self.project):
            problems.append(f"project must be a project key such as OPS, got {self.project!r}")
        if bool(self.api_token_env) == bool(self.api_token_file):
            problems.append("set exactly one of api_token_env and api_token_file")
        if self.auth == "basic" and not self.user:
            problems.append("auth: basic needs user (Jira Cloud: the account's e-mail address)")
        if not re.fullmatch(r"[^\s\"]*", self.label_prefix) or len(self.label_prefix) + 16 > MAX_LABEL:
            problems.append("label_prefix must not contain spaces or quotes")
        problems += [f"label {lab!r}: Jira labels cannot contain spaces" for lab in self.labels
                     if re.search(r"\s", lab)]
        problems += [f"priority_map: unknown priority {k!r} (P1..P4)" for k in self.priority_map
                     if k not in DEFAULT_PRIORITIES]
        reserved = {"project", "summary", "description", "issuetype"} & set(self.fields)
        if reserved:
            problems.append(f"fields must not set {', '.join(sorted(reserved))}")
        if self.category_field and not re.fullmatch(r"components|labels|customfield_\d+", self.category_field):
            problems.append("category_field must be components, labels or customfield_<id>")
        return problems


# -- Atlassian Document Format ---------------------------------------------------------------------------
def adf_from_plain(text: str) -> dict[str, Any]:
    """An ADF document from render.py's plain text: `== X ==` lines become headings, the rest code blocks.

    Text nodes are literal in ADF (no markup is parsed), and code blocks are neither linked nor mentioned.
    """
    content: list[dict[str, Any]] = []
    block: list[str] = []

    def flush() -> None:
        body = "\n".join(block).strip("\n")
        block.clear()
        if body.strip():
            content.append({"type": "codeBlock", "content": [{"type": "text", "text": body}]})

    for line in text.split("\n"):
        m = _HEADING.match(line)
        if m:
            flush()
            content.append({"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": m[1]}]})
        else:
            block.append(line)
    flush()
    if not content:
        content.append({"type": "paragraph", "content": [{"type": "text", "text": "(empty)"}]})
    return {"type": "doc", "version": 1, "content": content}


def bounded(render: Any, limit: int = MAX_TEXT) -> Any:
    """Call `render(max_len)` with shrinking budgets until its JSON (or text) form fits `limit`."""
    budget = limit - len(_TRUNCATED_NOTE) - 200
    for _ in range(12):
        out = render(budget)
        size = len(out) if isinstance(out, str) else len(json.dumps(out))
        if size <= limit:
            return out
        budget = int(budget * min(0.9, limit / size))
    raise PermanentError("cannot fit the description into Jira's limit")


@register("jira")
class JiraBackend:
    Config = JiraConfig

    def __init__(self, config: JiraConfig, *, client: HttpClient | None = None) -> None:
        self.config = config
        self.name = config.name
        self.v = "3" if config.api == "cloud" else "2"
        token = "" if config.dry_run else resolve(env=config.api_token_env, file=config.api_token_file,
                                                  what=f"jira backend {config.name!r} api token") or ""
        headers = {"Authorization": f"Bearer {token}"} if config.auth == "bearer" else {}
        auth = (config.user or "", token) if config.auth == "basic" else None
        self.client = client or HttpClient(config.url, timeout=config.timeout, verify=config.tls_verify,
                                           ca_file=config.ca_file, headers=headers, auth=auth,
                                           secret_headers=("Authorization",), name=f"jira {config.name}")

    def label(self, fingerprint: str) -> str:
        return f"{self.config.label_prefix}{fingerprint}"[:MAX_LABEL]

    # -- TicketBackend --------------------------------------------------------------------------------
    def find(self, fingerprint: str) -> TicketRef | None:
        if self.config.dry_run:
            return None
        jql = f'project = "{self.config.project}" AND labels = "{self.label(fingerprint)}"'
        issues = self._search(jql, ["status", "labels"])
        issues.sort(key=lambda i: i.get("id", int, 0), reverse=True)
        for issue in issues:
            if _category(issue) != "done":
                return self._ref(_key_of(issue))
        return None

    def open(self, incident: Incident) -> TicketRef:
        fields = self._fields(incident)
        if self.config.dry_run:
            log.info("jira %s (dry run): would create %s issue in %s: summary=%r labels=%s", self.name,
                     self.config.issue_type, self.config.project, fields["summary"], fields["labels"])
            return TicketRef(self.name, f"dry-run-{incident.fingerprint}")
        ref = self._ref(_key_of(self.client.doc("POST", f"/rest/api/{self.v}/issue", json_body={"fields": fields})))
        log.info("jira %s: opened %s for %s", self.name, ref.id, incident.fingerprint)
        return ref

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        self._comment(ref, incident, event)

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        if self.config.on_resolve == "resolve":
            self._transition(ref, "resolve")
        self._comment(ref, incident, "Resolved: the alert no longer fires.")

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        self._transition(ref, "reopen")
        self._comment(ref, incident, "Reopened: the alert fires again.")

    # -- PollingBackend --------------------------------------------------------------------------------
    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]:
        mine = [r for r in refs if r.backend == self.name and re.fullmatch(r"[A-Z][A-Z0-9_]*-\d+", r.id)]
        if self.config.dry_run or not mine:
            return []
        out: list[RemoteStatus] = []
        for start in range(0, len(mine), POLL_BATCH):
            batch = mine[start:start + POLL_BATCH]
            jql = f"key in ({', '.join(r.id for r in batch)})"
            found = {_key_of(i): i for i in self._search(jql, ["status", "assignee"])}
            for r in batch:
                issue = found.get(r.id)
                if issue is None:
                    out.append(RemoteStatus(r, "missing"))
                    continue
                assignee = issue.obj("fields", optional=True).obj("assignee", optional=True)
                who = str(assignee.raw("accountId") or assignee.raw("name") or "")
                cat = _category(issue)
                if cat == "done":
                    state: Literal["open", "acknowledged", "resolved", "closed", "missing"] = "closed"
                elif cat == "indeterminate" or (who and who != (self.config.assignee or "")):
                    state = "acknowledged"
                else:
                    state = "open"
                out.append(RemoteStatus(r, state, assignee=str(assignee.raw("displayName") or who)))
        return out

    # -- requests ---------------------------------------------------------------------------------------
    def _search(self, jql: str, fields: list[str]) -> list[Doc]:
        issues: list[Doc] = []
        if self.config.api == "cloud":
            token: str | None = None
            for _ in range(FIND_PAGES):
                body: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": PAGE_SIZE}
                if token:
                    body["nextPageToken"] = token
                data = self.client.doc("POST", "/rest/api/3/search/jql", json_body=body)
                issues += data.objects("issues", optional=True)
                token = data.get("nextPageToken", str, None)
                if data.raw("isLast", True) is not False or not token:
                    break
        else:
            start = 0
            for _ in range(FIND_PAGES):
                data = self.client.doc("GET", "/rest/api/2/search", params={
                    "jql": jql, "fields": ",".join(fields), "startAt": start, "maxResults": PAGE_SIZE})
                page = data.objects("issues", optional=True)
                issues += page
                start += len(page)
                if not page or start >= data.get("total", int, 0):
                    break
        return [i for i in issues if i.raw("key")]

    def _comment(self, ref: TicketRef, incident: Incident, event: str) -> None:
        if self.config.api == "cloud":
            body: Any = bounded(lambda n: adf_from_plain(_cut(render_event(incident, event, "plain"), n)))
        else:
            body = bounded(lambda n: _cut(render_event(incident, event, "jira_wiki"), n))
        if self.config.dry_run:
            log.info("jira %s (dry run): would comment on %s", self.name, ref.id)
            return
        self.client.request("POST", f"/rest/api/{self.v}/issue/{_key(ref)}/comment", json_body={"body": body})

    def _transition(self, ref: TicketRef, which: Literal["resolve", "reopen"]) -> None:
        if self.config.dry_run:
            log.info("jira %s (dry run): would %s %s", self.name, which, ref.id)
            return
        key = _key(ref)
        current = _category(self.client.doc("GET", f"/rest/api/{self.v}/issue/{key}", params={"fields": "status"}))
        wanted = ("done",) if which == "resolve" else ("new", "indeterminate")
        if current in wanted:
            return  # already there (a person did it, or a retry after the transition went through)
        data = self.client.doc("GET", f"/rest/api/{self.v}/issue/{key}/transitions")
        transitions = data.objects("transitions", optional=True)
        name = self.config.resolve_transition if which == "resolve" else self.config.reopen_transition
        chosen = _pick_transition(transitions, name, wanted)
        if chosen is None:
            names = ", ".join(f"{t.raw('name')} -> {t.raw('to.name')}" for t in transitions[:20]) or "none"
            want = repr(name) if name else f"into status category {' or '.join(wanted)}"
            raise PermanentError(f"jira {self.name}: {key} has no transition {want}; available: {names}"[:2000])
        self.client.request("POST", f"/rest/api/{self.v}/issue/{key}/transitions",
                            json_body={"transition": {"id": str(chosen.get("id", int))}})
        log.info("jira %s: %s %s via transition %r", self.name, "resolved" if which == "resolve" else "reopened",
                 key, chosen.raw("name"))

    # -- payloads -------------------------------------------------------------------------------------------
    def _fields(self, incident: Incident) -> dict[str, Any]:
        c = self.config
        marker = f"\n\nhostwarden fingerprint: {incident.fingerprint}\n"
        if c.api == "cloud":
            description: Any = bounded(lambda n: adf_from_plain(render_body(incident, "plain", max_len=n) + marker))
        else:
            description = bounded(lambda n: render_body(incident, "jira_wiki", max_len=n) + marker)
        labels = [self.label(incident.fingerprint), *c.labels]
        fields: dict[str, Any] = {
            "project": {"key": c.project}, "issuetype": {"name": c.issue_type},
            "summary": render_title(incident, MAX_SUMMARY), "description": description,
        }
        priority = c.priority_map.get(incident.priority)
        if priority:
            fields["priority"] = {"name": priority}
        if c.assignee:
            fields["assignee"] = {"accountId": c.assignee} if c.api == "cloud" else {"name": c.assignee}
        components = list(c.components)
        category = re.sub(r"\s+", "_", incident.category.strip())
        if c.category_field and category:
            if c.category_field == "components":
                components.append(incident.category.strip())
            elif c.category_field == "labels":
                labels.append(category[:MAX_LABEL])
            else:
                fields[c.category_field] = incident.category
        if components:
            fields["components"] = [{"name": n} for n in dict.fromkeys(components)]
        fields["labels"] = list(dict.fromkeys(labels))
        for extra in (c.fields, incident.extra_fields):
            fields.update({k: v for k, v in extra.items() if k not in ("project", "summary", "description",
                                                                        "issuetype")})
        return fields

    def _ref(self, key: str) -> TicketRef:
        return TicketRef(self.name, key, f"{self.config.url.rstrip('/')}/browse/{key}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n" + _TRUNCATED_NOTE


def _category(issue: Doc) -> str:
    return str(issue.raw("fields.status.statusCategory.key", ""))


def _key_of(issue: Doc) -> str:
    """The issue's key, checked to be one (PROJ-123)."""
    key = issue.get("key", str)
    if not _KEY.fullmatch(key):
        raise issue.error(f"{issue.path + '.' if issue.path else ''}key {key[:80]!r} is not an issue key")
    return key


def _pick_transition(transitions: Sequence[_T], name: str | None, categories: tuple[str, ...]) -> _T | None:
    """The transition (a Doc or a dict, as given) named `name` (or leading to a status so named), else the
    first into one of `categories`."""
    docs = [Doc.of(t, "jira") for t in transitions]
    if name:
        for t, d in zip(transitions, docs, strict=True):
            if name.casefold() in (str(d.raw("name", "")).casefold(), str(d.raw("to.name", "")).casefold()):
                return t
        return None
    for cat in categories:
        for t, d in zip(transitions, docs, strict=True):
            if d.raw("to.statusCategory.key") == cat:
                return t
    return None


def _key(ref: TicketRef) -> str:
    if not _KEY.fullmatch(ref.id):
        raise PermanentError(f"jira {ref.backend}: not a Jira issue key: {ref.id!r}")
    return ref.id
