"""`github` backend: one issue per incident on GitHub, or Gitea/Forgejo (same issues API, `flavor: gitea`).

```yaml
tickets:
  backends:
    - name: gh
      type: github
      repo: acme/ops                     # owner/name
      token_env: GITHUB_TOKEN            # or token_file:; fine-grained token with "Issues: read and write"
      # api_url: https://gitea.example.com/api/v1   flavor: gitea   (Gitea/Forgejo)
      labels: [hostwarden]               # on every issue, besides the fingerprint label
      priority_labels: {P1: "priority/critical", P2: "priority/high"}
      category_label_prefix: "area/"     # category "disk" -> label "area/disk"; "" = no category label
      assignees: [oncall-bot]
      fields: {milestone: 3}             # merged into the create request
```

The fingerprint is a label (`hostwarden:<fp>`, the prefix configurable) and a hidden body marker
`<!-- hostwarden:fp=<fp> -->`. `find` lists `GET /repos/{o}/{r}/issues?state=all&labels=<label>` newest
first (pull requests, which the endpoint also returns, are skipped) and answers the newest *open* issue:
a closed one belongs to an incident that ended. Comments for updates; resolve closes with
`state_reason: completed`, reopen sets `state: open` (GitHub records the reason `reopened`).

Untrusted text is rendered as Markdown code (render.py), so labels and diagnoses can neither mention
people nor reference issues; the title (which GitHub does not render as Markdown but links `#123` in)
gets a zero-width joiner after `@` and `#`.

Rate limits: every answer's `x-ratelimit-remaining`/`x-ratelimit-reset` is remembered; when the limit is
exhausted, calls fail fast with TransientError(retry_after = seconds to the reset) without a request;
403/429 with `retry-after` (secondary limit) or with remaining 0 are transient, not permanent.
GitHub silently drops labels when the token lacks push access: that is logged as an error (without the
label, `find` cannot see the issue). Gitea wants label ids, so its labels are created/looked up first.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from hostwarden.agent.core.incident import Incident, PermanentError, RemoteStatus, TicketRef, TransientError
from hostwarden.agent.core.secrets import resolve
from hostwarden.exporters.tickets.base import BackendConfig, register
from hostwarden.exporters.tickets.http import MAX_RETRY_AFTER, Doc, HttpClient, parse_retry_after
from hostwarden.exporters.tickets.render import render_body, render_event, render_title

log = logging.getLogger(__name__)

MAX_BODY = 60_000  # GitHub's limit is 65 536 characters
MAX_LABEL = 50  # GitHub's label name limit
FIND_PAGES = 3
PAGE_SIZE = 50
API_VERSION = "2022-11-28"
_WJ = "\u2060"  # WORD JOINER: invisible, breaks @mention and #123 autolinks
_HEADER_INT = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class GitHubConfig(BackendConfig):
    repo: str = ""  # owner/name
    api_url: str = "https://api.github.com"
    flavor: Literal["github", "gitea"] = "github"
    token_env: str | None = None
    token_file: str | None = None
    label_prefix: str = "hostwarden:"
    labels: list[str] = field(default_factory=lambda: ["hostwarden"])
    priority_labels: dict[str, str] = field(default_factory=dict)
    category_label_prefix: str = ""
    assignees: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    label_color: str = "ededed"

    def validate(self) -> list[str]:
        problems = []
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", self.repo):
            problems.append(f"repo must be owner/name, got {self.repo!r}")
        if not self.api_url.startswith(("http://", "https://")):
            problems.append(f"api_url must start with http:// or https://, got {self.api_url!r}")
        if bool(self.token_env) == bool(self.token_file):
            problems.append("set exactly one of token_env and token_file")
        if len(self.label_prefix) + 16 > MAX_LABEL or "," in self.label_prefix:
            problems.append(f"label_prefix must be at most {MAX_LABEL - 16} characters without commas")
        problems += [f"priority_labels: unknown priority {k!r} (P1..P4)" for k in self.priority_labels
                     if k not in ("P1", "P2", "P3", "P4")]
        problems += [f"label {lab!r} is longer than {MAX_LABEL} characters" for lab in
                     [*self.labels, *self.priority_labels.values()] if len(lab) > MAX_LABEL]
        reserved = {"title", "body", "labels"} & set(self.fields)
        if reserved:
            problems.append(f"fields must not set {', '.join(sorted(reserved))}")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", self.label_color):
            problems.append("label_color must be 6 hex digits")
        return problems


class RateLimitedClient(HttpClient):
    """HttpClient that remembers GitHub's rate-limit headers and turns rate-limit 403s into TransientError."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.clock = clock
        self.remaining: int | None = None
        self.reset_at: float | None = None
        self._last: requests.Response | None = None
        self._session.hooks["response"].append(self._observe)

    def _observe(self, resp: requests.Response, *_args: Any, **_kw: Any) -> None:
        self._last = resp
        remaining = resp.headers.get("x-ratelimit-remaining") or ""
        reset = resp.headers.get("x-ratelimit-reset") or ""
        if _HEADER_INT.fullmatch(remaining):
            self.remaining = int(remaining)
        if _HEADER_INT.fullmatch(reset):
            self.reset_at = float(reset)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        now = self.clock()
        if self.remaining == 0 and self.reset_at is not None and self.reset_at > now:
            raise TransientError(f"{self.where(method, self.url(path))}: rate limit exhausted until the reset",
                                 retry_after=min(self.reset_at - now, MAX_RETRY_AFTER))
        self._last = None
        try:
            return super().request(method, path, **kw)
        except PermanentError as e:
            resp = self._last
            if resp is None or resp.status_code not in (403, 429):
                raise
            retry = parse_retry_after(resp.headers.get("retry-after"), now)
            if retry is None and resp.headers.get("x-ratelimit-remaining") == "0" and self.reset_at is not None:
                retry = min(max(1.0, self.reset_at - now), MAX_RETRY_AFTER)
            if retry is None:
                raise
            raise TransientError(f"{e} (rate limited)", retry_after=retry) from None


def neutralise_title(text: str) -> str:
    """No @mention or #123 reference can be formed from untrusted title text."""
    return re.sub(r"([@#])(?=[\w-])", r"\1" + _WJ, text)


def marker(fingerprint: str) -> str:
    return f"<!-- hostwarden:fp={fingerprint} -->"


@register("github")
class GitHubBackend:
    Config = GitHubConfig

    def __init__(self, config: GitHubConfig, *, client: HttpClient | None = None) -> None:
        self.config = config
        self.name = config.name
        token = "" if config.dry_run else resolve(env=config.token_env, file=config.token_file,
                                                  what=f"github backend {config.name!r} token") or ""
        if config.flavor == "gitea":
            headers = {"Authorization": f"token {token}"}
        else:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                       "X-GitHub-Api-Version": API_VERSION}
        self.client = client or RateLimitedClient(config.api_url, timeout=config.timeout, verify=config.tls_verify,
                                                  ca_file=config.ca_file, headers=headers,
                                                  secret_headers=("Authorization",),
                                                  name=f"{config.flavor} {config.name}")
        self.base = f"/repos/{config.repo}"
        self._label_ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def label(self, fingerprint: str) -> str:
        return f"{self.config.label_prefix}{fingerprint}"

    # -- TicketBackend --------------------------------------------------------------------------------
    def find(self, fingerprint: str) -> TicketRef | None:
        if self.config.dry_run:
            return None
        label = self.label(fingerprint)
        size_key = "limit" if self.config.flavor == "gitea" else "per_page"
        params: dict[str, Any] = {"state": "all", "labels": label, size_key: PAGE_SIZE, "sort": "created",
                                  "direction": "desc"}
        if self.config.flavor == "gitea":
            params["type"] = "issues"
        for page in range(1, FIND_PAGES + 1):
            resp = self.client.request("GET", f"{self.base}/issues", params={**params, "page": page})
            items = self.client.decode(resp).objects(optional=True)
            for issue in items:
                if issue.has("pull_request"):
                    continue
                if label in _label_names(issue) and issue.raw("state") == "open":
                    return self._ref(issue)
            if 'rel="next"' not in resp.headers.get("Link", "") or len(items) < PAGE_SIZE:
                break
        return None

    def open(self, incident: Incident) -> TicketRef:
        payload = self._issue_payload(incident)
        if self.config.dry_run:
            log.info("github %s (dry run): would POST %s/issues title=%r labels=%s", self.name, self.base,
                     payload["title"], payload["labels"])
            return TicketRef(self.name, f"dry-run-{incident.fingerprint}")
        if self.config.flavor == "gitea":
            payload["labels"] = [self._gitea_label_id(name) for name in payload["labels"]]
        issue = self.client.doc("POST", f"{self.base}/issues", json_body=payload)
        ref = self._ref(issue)
        if self.label(incident.fingerprint) not in _label_names(issue):
            log.error("github %s: issue #%s was created without its fingerprint label (the token needs push "
                      "access to set labels); hostwarden cannot find it again", self.name, ref.id)
        log.info("github %s: opened issue #%s for %s", self.name, ref.id, incident.fingerprint)
        return ref

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        self._comment(ref, render_event(incident, event, "markdown"))

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        # the state first: a retry after a failed comment repeats an idempotent PATCH, not a comment
        if self.config.on_resolve == "resolve":
            self._patch(ref, {"state": "closed", "state_reason": "completed"})
        self._comment(ref, render_event(incident, "Resolved: the alert no longer fires.", "markdown"))

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        self._patch(ref, {"state": "open"})
        self._comment(ref, render_event(incident, "Reopened: the alert fires again.", "markdown"))

    # -- PollingBackend ----------------------------------------------------------------------------------
    def poll(self, refs: Iterable[TicketRef]) -> list[RemoteStatus]:
        out: list[RemoteStatus] = []
        if self.config.dry_run:
            return out
        for ref in refs:
            if ref.backend != self.name or not ref.id.isdigit():
                continue
            try:
                resp = self.client.request("GET", f"{self.base}/issues/{ref.id}")
            except PermanentError as e:
                if re.search(r"HTTP (404|410)\b", str(e)):
                    out.append(RemoteStatus(ref, "missing"))
                    continue
                raise
            issue = self.client.decode(resp).obj()
            assignees = [str(a.raw("login", "")) for a in issue.objects("assignees", optional=True)]
            if issue.raw("state") == "closed":
                state: Literal["open", "acknowledged", "resolved", "closed", "missing"] = "closed"
            elif set(assignees) - set(self.config.assignees):
                state = "acknowledged"
            else:
                state = "open"
            out.append(RemoteStatus(ref, state, assignee=",".join(assignees)))
        return out

    # -- helpers -------------------------------------------------------------------------------------------
    def _issue_payload(self, incident: Incident) -> dict[str, Any]:
        c = self.config
        labels = [self.label(incident.fingerprint), *c.labels]
        if incident.priority in c.priority_labels:
            labels.append(c.priority_labels[incident.priority])
        if c.category_label_prefix and incident.category:
            labels.append((c.category_label_prefix + re.sub(r"[,\s]+", "-", incident.category))[:MAX_LABEL])
        body = render_body(incident, "markdown", max_len=MAX_BODY - 100) + "\n" + marker(incident.fingerprint) + "\n"
        payload: dict[str, Any] = {"title": neutralise_title(render_title(incident, 255)), "body": body,
                                   "labels": list(dict.fromkeys(labels))}
        if c.assignees:
            payload["assignees"] = list(c.assignees)
        for extra in (c.fields, incident.extra_fields):
            payload.update({k: v for k, v in extra.items() if k not in ("title", "body", "labels")})
        return payload

    def _comment(self, ref: TicketRef, text: str) -> None:
        if self.config.dry_run:
            log.info("github %s (dry run): would comment on #%s (%d chars)", self.name, ref.id, len(text))
            return
        self.client.request("POST", f"{self.base}/issues/{_number(ref)}/comments", json_body={"body": text[:MAX_BODY]})

    def _patch(self, ref: TicketRef, change: dict[str, Any]) -> None:
        if self.config.dry_run:
            log.info("github %s (dry run): would PATCH #%s %s", self.name, ref.id, change)
            return
        if self.config.flavor == "gitea":
            change = {k: v for k, v in change.items() if k != "state_reason"}
        self.client.request("PATCH", f"{self.base}/issues/{_number(ref)}", json_body=change)

    def _gitea_label_id(self, name: str) -> int:
        """Gitea creates issues with label ids: look the label up, create it when missing."""
        with self._lock:
            if name in self._label_ids:
                return self._label_ids[name]
            for page in range(1, 21):
                items = self.client.doc("GET", f"{self.base}/labels", params={"limit": PAGE_SIZE, "page": page})
                labels = items.objects(optional=True)
                for lab in labels:
                    self._label_ids.setdefault(str(lab.raw("name")), lab.get("id", int))
                if name in self._label_ids or len(labels) < PAGE_SIZE:
                    break
            if name not in self._label_ids:
                created = self.client.doc("POST", f"{self.base}/labels",
                                          json_body={"name": name, "color": "#" + self.config.label_color})
                self._label_ids[name] = created.get("id", int)
            return self._label_ids[name]

    def _ref(self, issue: Doc) -> TicketRef:
        return TicketRef(self.name, issue.id("number"), issue.get("html_url", str, ""))


def _label_names(issue: Doc) -> set[str]:
    return {name for lab in issue.objects("labels", optional=True) if isinstance(name := lab.raw("name"), str)}


def _number(ref: TicketRef) -> str:
    if not ref.id.isdigit():
        raise PermanentError(f"github {ref.backend}: not an issue number: {ref.id!r}")
    return ref.id
