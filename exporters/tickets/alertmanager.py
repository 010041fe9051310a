"""`alertmanager` backend: incidents pushed to Alertmanager's API v2, as Prometheus pushes its alerts.

```yaml
tickets:
  backends:
    - name: am
      type: alertmanager
      urls: ["https://am-1.example.com:9093", "https://am-2.example.com:9093"]   # or url: one instance
      resend_interval: 1m                # re-send of every firing incident; endsAt = now + 4 x this
      generator_url: "http://{host}:19842/"   # optional: each alert's generatorURL ({host} = the incident's host)
      extra_labels: {source: hostwarden}
      token_env: AM_TOKEN                # optional bearer token (or basic: user + password_env/_file)
```

Each incident is one Alertmanager alert: labels `alertname`, `severity`, the incident's identity and
external labels (so Alertmanager deduplicates, groups, silences and routes it like any Prometheus alert),
annotations `summary`, the rule's annotations, `value`, `priority`, `hostwarden_fingerprint`. Every member
of a cluster gets every alert (as Prometheus sends to all; Alertmanager's gossip dedups notifications);
one member accepting is a success.

Alertmanager resolves an alert whose `endsAt` passed, so a firing incident must be re-sent: the agent calls
`resend(now, firing)` periodically, which re-posts (throttled to `resend_interval`, from a thread of its
own so the caller never waits on the network) every firing incident this backend holds, with
`endsAt = now + 4 x resend_interval` (Prometheus' lease). Resolve posts
`endsAt` = the resolution time. An escalation that changes `severity` changes the label set: the old
alert is ended in the same post. `find` answers None: Alertmanager deduplicates by labels itself.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hostwarden.agent.core.incident import Incident, PermanentError, TicketRef, TransientError
from hostwarden.agent.core.schema import Duration
from hostwarden.agent.core.secrets import resolve
from hostwarden.exporters.tickets.base import BackendConfig, register
from hostwarden.exporters.tickets.http import HttpClient
from hostwarden.exporters.tickets.render import render_title

log = logging.getLogger(__name__)

LEASE_FACTOR = 4
MAX_ANNOTATION = 4096
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class AlertmanagerConfig(BackendConfig):
    url: str = ""
    urls: list[str] = field(default_factory=list)
    resend_interval: Duration = Duration(60)
    generator_url: str = ""
    extra_labels: dict[str, str] = field(default_factory=dict)
    token_env: str | None = None
    token_file: str | None = None
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None

    @property
    def targets(self) -> list[str]:
        return [u.rstrip("/") for u in ([self.url] if self.url else []) + list(self.urls)]

    def validate(self) -> list[str]:
        problems = []
        if not self.targets:
            problems.append("set url (one Alertmanager) or urls (every member of a cluster)")
        problems += [f"url {u!r} must start with http:// or https://" for u in self.targets
                     if not u.startswith(("http://", "https://"))]
        if not 5 <= self.resend_interval <= 3600:
            problems.append("resend_interval must be between 5s and 1h")
        if self.token_env and self.token_file:
            problems.append("set only one of token_env and token_file")
        if (self.password_env or self.password_file) and not self.user:
            problems.append("a password needs user")
        if self.user and (self.token_env or self.token_file):
            problems.append("use either a bearer token or user + password, not both")
        problems += [f"extra_labels: {k!r} is not a valid label name" for k in self.extra_labels
                     if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k)]
        return problems


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def label_name(name: str) -> str:
    """A valid Prometheus label name (Alertmanager rejects others)."""
    out = _LABEL_NAME.sub("_", name)
    return out if out and not out[0].isdigit() else "_" + out


@register("alertmanager")
class AlertmanagerBackend:
    Config = AlertmanagerConfig

    def __init__(self, config: AlertmanagerConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.name = config.name
        self.clock = clock
        headers: dict[str, str] = {}
        auth = None
        if not config.dry_run:
            if config.token_env or config.token_file:
                token = resolve(env=config.token_env, file=config.token_file,
                                what=f"alertmanager {config.name!r} token")
                headers["Authorization"] = f"Bearer {token}"
            elif config.user:
                auth = (config.user, resolve(env=config.password_env, file=config.password_file,
                                             what=f"alertmanager {config.name!r} password") or "")

        def clients() -> list[HttpClient]:
            return [HttpClient(u, timeout=config.timeout, verify=config.tls_verify, ca_file=config.ca_file,
                               headers=headers, auth=auth, secret_headers=("Authorization",),
                               name=f"alertmanager {config.name}") for u in config.targets]

        self._clients = clients()  # the outbox's thread
        self._resend_clients = clients()  # the scheduler's thread (a Session is not shared between threads)
        self._lock = threading.Lock()
        self._sent: dict[str, dict[str, str]] = {}  # fingerprint -> label set last posted while firing
        self._last_resend = float("-inf")
        self._resend_failing = False
        self._resend_thread: threading.Thread | None = None

    # -- TicketBackend --------------------------------------------------------------------------------
    def find(self, fingerprint: str) -> TicketRef | None:
        return None  # Alertmanager deduplicates by label set

    def open(self, incident: Incident) -> TicketRef:
        self._fire(incident)
        return self._ref(incident)

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        self._fire(incident, event=event)

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        self._fire(incident, event="reopened")

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        now = self.clock()
        ends = min(incident.resolved_at or now, now)
        with self._lock:
            previous = self._sent.pop(incident.fingerprint, None)
        alerts = [self.alert(incident, ends_at=ends)]
        if previous is not None and previous != alerts[0]["labels"]:
            alerts.append({**alerts[0], "labels": previous})
        self._post(self._clients, alerts, what=f"resolve {incident.fingerprint}")

    # -- periodic re-send ------------------------------------------------------------------------------
    def resend(self, now: float, firing: Iterable[Incident]) -> None:
        """Re-post firing incidents this backend holds, at most every `resend_interval` (called every few s)."""
        if now - self._last_resend < float(self.config.resend_interval):
            return
        self._last_resend = now
        with self._lock:
            held = set(self._sent)
        mine = [i for i in firing if i.fingerprint in held
                or (i.ticket_ref is not None and i.ticket_ref.backend == self.name and i.resolved_at is None)]
        if not mine:
            return
        if self._resend_thread is not None and self._resend_thread.is_alive():
            log.debug("alertmanager %s: the previous re-send is still running; skipped", self.name)
            return
        alerts = [self.alert(i, ends_at=now + LEASE_FACTOR * float(self.config.resend_interval)) for i in mine]
        # posted by a thread of its own: the caller (the agent's incident job) never waits on the network
        self._resend_thread = threading.Thread(target=self._resend_post, args=(mine, alerts), daemon=True,
                                               name=f"alertmanager-resend-{self.name}")
        self._resend_thread.start()

    def wait_resend(self, timeout: float) -> bool:
        """Wait for a re-send in flight (tests, shutdown); True when none is running any more."""
        t = self._resend_thread
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    def _resend_post(self, mine: list[Incident], alerts: list[dict[str, Any]]) -> None:
        try:
            self._post(self._resend_clients, alerts, what=f"re-send of {len(alerts)} alert(s)")
        except (TransientError, PermanentError) as e:
            if not self._resend_failing:
                log.warning("alertmanager %s: re-sending firing alerts failed (will retry every %ss): %s",
                            self.name, f"{float(self.config.resend_interval):g}", e)
            self._resend_failing = True
            return
        if self._resend_failing:
            log.info("alertmanager %s: re-sending firing alerts works again", self.name)
        self._resend_failing = False
        with self._lock:
            for i, a in zip(mine, alerts, strict=True):
                self._sent.setdefault(i.fingerprint, a["labels"])

    # -- payloads ----------------------------------------------------------------------------------------
    def labels(self, incident: Incident) -> dict[str, str]:
        labels: dict[str, str] = {}
        for k, v in (*incident.labels, *self.config.extra_labels.items()):
            if v != "":
                labels[label_name(k)] = v
        labels["alertname"] = incident.alert.rule
        if incident.alert.severity:
            labels["severity"] = incident.alert.severity
        return dict(sorted(labels.items()))

    def alert(self, incident: Incident, *, ends_at: float) -> dict[str, Any]:
        a = incident.alert
        annotations = {label_name(k): v[:MAX_ANNOTATION] for k, v in a.annotations if v}
        annotations.setdefault("summary", render_title(incident, 255))
        annotations["value"] = f"{a.value:.6g}" + (f" (threshold {a.threshold})" if a.threshold else "")
        annotations["priority"] = incident.priority
        annotations["hostwarden_fingerprint"] = incident.fingerprint
        if incident.category:
            annotations["category"] = incident.category
        starts = a.fired_at or incident.opened_at
        out: dict[str, Any] = {"labels": self.labels(incident), "annotations": annotations,
                               "startsAt": rfc3339(min(starts, ends_at)), "endsAt": rfc3339(ends_at)}
        if self.config.generator_url:
            out["generatorURL"] = self.config.generator_url.replace("{host}", incident.host)
        return out

    def _fire(self, incident: Incident, event: str = "") -> None:
        now = self.clock()
        alert = self.alert(incident, ends_at=now + LEASE_FACTOR * float(self.config.resend_interval))
        alerts = [alert]
        with self._lock:
            previous = self._sent.get(incident.fingerprint)
        if previous is not None and previous != alert["labels"]:  # severity changed: end the old label set
            alerts.append({**alert, "labels": previous, "endsAt": rfc3339(now)})
        self._post(self._clients, alerts, what=f"{event or 'open'} {incident.fingerprint}")
        with self._lock:
            self._sent[incident.fingerprint] = alert["labels"]

    def _post(self, clients: list[HttpClient], alerts: list[dict[str, Any]], *, what: str) -> None:
        if self.config.dry_run:
            log.info("alertmanager %s (dry run): would POST %d alert(s) to /api/v2/alerts (%s)", self.name,
                     len(alerts), what)
            return
        errors: list[Exception] = []
        for client in clients:
            try:
                client.request("POST", "/api/v2/alerts", json_body=alerts)
            except (TransientError, PermanentError) as e:
                errors.append(e)
        if len(errors) < len(clients):
            for e in errors:
                log.warning("alertmanager %s: %s: one cluster member failed: %s", self.name, what, e)
            return
        transient = [e for e in errors if isinstance(e, TransientError)]
        if transient:
            waits = [e.retry_after for e in transient if isinstance(e, TransientError) and e.retry_after is not None]
            raise TransientError("; ".join(map(str, errors)), retry_after=min(waits) if waits else None)
        raise PermanentError("; ".join(map(str, errors)))

    def _ref(self, incident: Incident) -> TicketRef:
        if self.config.dry_run:
            return TicketRef(self.name, f"dry-run-{incident.fingerprint}")
        return TicketRef(self.name, incident.fingerprint, f"{self.config.targets[0]}/#/alerts")
