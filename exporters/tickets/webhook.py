"""`webhook` backend: one HTTP POST with a documented JSON document per ticket operation.

Two payload formats:
- `format: hostwarden` (default): `{"version": "1", "operation": "open|update|resolve|reopen", ...}`,
  documented field by field in docs/incidents.md ("Webhook payload").
- `format: alertmanager`: Alertmanager's webhook payload, version 4, one alert per notification, so an
  existing Alertmanager receiver takes hostwarden's incidents unchanged (`status: firing` for
  open/update/reopen, `resolved` with `endsAt` on resolve).

Every request carries `Idempotency-Key` (also `idempotency_key` in the hostwarden body): the same on
every retry of one operation, so the receiver can drop repeats — a webhook cannot be searched, so this
is how a crash between "sent" and "recorded" stays harmless. Optional `Authorization: Bearer` (token
from `token_env`/`token_file`) and/or an HMAC-SHA256 signature of the body (`hmac_secret_env`/`_file`)
in `X-Hostwarden-Signature: sha256=<hex>`. TLS is verified (custom CA via `ca_file`).

Errors: timeouts, connection errors, TLS failures, 408/425/429/5xx are transient (Retry-After honoured);
other 3xx/4xx are permanent (the outbox dead-letters them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import requests
from hostwarden.agent.core import __version__
from hostwarden.agent.core.incident import Incident, PermanentError, TicketRef, TransientError
from hostwarden.agent.core.secrets import resolve
from hostwarden.exporters.tickets import render
from hostwarden.exporters.tickets.base import BackendConfig, idempotency_key, register
from hostwarden.exporters.tickets.http import parse_retry_after, read_body

log = logging.getLogger(__name__)

PAYLOAD_VERSION = "1"
MAX_RESPONSE_BYTES = 64 * 1024
ZERO_TIME = "0001-01-01T00:00:00Z"
TRANSIENT_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class WebhookConfig(BackendConfig):
    url: str = ""
    format: Literal["hostwarden", "alertmanager"] = "hostwarden"
    token_env: str | None = None
    token_file: str | None = None
    hmac_secret_env: str | None = None
    hmac_secret_file: str | None = None
    signature_header: str = "X-Hostwarden-Signature"
    headers: dict[str, str] = field(default_factory=dict)
    receiver: str = "hostwarden"  # alertmanager format: the `receiver` field
    external_url: str = ""  # alertmanager format: `externalURL`
    generator_url: str = ""  # alertmanager format: each alert's `generatorURL`

    def validate(self) -> list[str]:
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        if self.token_env and self.token_file:
            problems.append("set only one of token_env and token_file")
        if self.hmac_secret_env and self.hmac_secret_file:
            problems.append("set only one of hmac_secret_env and hmac_secret_file")
        lowered = {k.lower() for k in self.headers}
        if lowered & {"authorization", "idempotency-key", "content-type", self.signature_header.lower()}:
            problems.append("headers must not set Authorization, Content-Type, Idempotency-Key or the signature "
                            "header (use token_env/token_file and hmac_secret_env/hmac_secret_file)")
        return problems


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_ticket_id(incident: Incident) -> str:
    """Deterministic, so a retried `open` names the same ticket as the first attempt."""
    return f"{incident.fingerprint}-{int(incident.opened_at)}"


def hostwarden_payload(op: str, incident: Incident, *, ref: TicketRef | None, event: str, key: str,
                       now: float) -> dict[str, Any]:
    a = incident.alert
    return {
        "version": PAYLOAD_VERSION,
        "operation": op,
        "idempotency_key": key,
        "sent_at": rfc3339(now),
        "ticket": {"id": ref.id, "url": ref.url} if ref else None,
        "event": event,
        "incident": {
            "fingerprint": incident.fingerprint,
            "title": render.render_title(incident),
            "status": "resolved" if incident.resolved_at is not None else "firing",
            "priority": incident.priority,
            "category": incident.category,
            "severity": a.severity,
            "alertname": a.rule,
            "host": incident.host,
            "labels": dict(incident.labels),
            "alert_labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "value": a.value if a.value == a.value and abs(a.value) != float("inf") else None,
            "threshold": a.threshold,
            "expr": a.expr,
            "source": a.source,
            "flapping": a.flapping,
            "opened_at": rfc3339(incident.opened_at),
            "fired_at": rfc3339(a.fired_at),
            "acknowledged_at": rfc3339(incident.acknowledged_at),
            "resolved_at": rfc3339(incident.resolved_at),
            "reopen_count": incident.reopen_count,
            "ack_due": rfc3339(incident.extra_fields.get("ack_due")),
            "resolve_due": rfc3339(incident.extra_fields.get("resolve_due")),
            "diagnosis": incident.diagnosis,
            "storm_of": list(incident.storm_of),
            "timeline": [{"at": rfc3339(e.at), "kind": e.kind, "text": e.text} for e in incident.timeline],
        },
    }


def alertmanager_payload(op: str, incident: Incident, *, config: WebhookConfig) -> dict[str, Any]:
    a = incident.alert
    labels = dict(a.labels)
    labels.setdefault("alertname", a.rule)
    for k, v in incident.labels:
        labels.setdefault(k, v)
    annotations = dict(a.annotations)
    resolved = op == "resolve" and incident.resolved_at is not None
    status = "resolved" if resolved else "firing"
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(a.fired_at if a.fired_at is not None else incident.opened_at),
        "endsAt": rfc3339(incident.resolved_at) if resolved else ZERO_TIME,
        "generatorURL": config.generator_url,
        "fingerprint": incident.fingerprint,
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{a.rule}", hostwarden_fingerprint="{incident.fingerprint}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": config.receiver,
        "groupLabels": {"alertname": a.rule},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": config.external_url,
        "alerts": [alert],
    }


@register("webhook")
class WebhookBackend:
    Config = WebhookConfig

    def __init__(self, config: WebhookConfig, **_context: Any) -> None:
        self.config = config
        self.name = config.name
        what = f"tickets backend {config.name}"
        self._token = resolve(env=config.token_env, file=config.token_file, what=f"{what}: token")
        secret = resolve(env=config.hmac_secret_env, file=config.hmac_secret_file, what=f"{what}: hmac secret")
        self._hmac = secret.encode() if secret else None
        self._session = requests.Session()
        self._verify: bool | str = config.ca_file or config.tls_verify
        if not config.tls_verify:
            log.warning("tickets backend %s: TLS certificate verification is OFF", config.name)

    # -- the TicketBackend interface --------------------------------------------------------------------------
    def find(self, fingerprint: str) -> TicketRef | None:
        return None  # a webhook cannot be searched: the Idempotency-Key lets the receiver drop repeats

    def open(self, incident: Incident) -> TicketRef:
        answer = self._post("open", incident, ref=None, event=_last_text(incident, "opened"))
        tid = str(answer.get("id") or answer.get("ticket_id") or default_ticket_id(incident))
        url = answer.get("url")
        return TicketRef(self.name, tid, url if isinstance(url, str) else "")

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        self._post("update", incident, ref=ref, event=event)

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        self._post("resolve", incident, ref=ref, event=_last_text(incident, "resolved"))

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        self._post("reopen", incident, ref=ref, event=_last_text(incident, "reopened"))

    # -- building and sending -----------------------------------------------------------------------------------
    def payload(self, op: str, incident: Incident, *, ref: TicketRef | None, event: str, key: str,
                now: float) -> dict[str, Any]:
        if self.config.format == "alertmanager":
            return alertmanager_payload(op, incident, config=self.config)
        return hostwarden_payload(op, incident, ref=ref, event=event, key=key, now=now)

    def headers(self, body: bytes, key: str) -> dict[str, str]:
        h = {"Content-Type": "application/json", "User-Agent": f"hostwarden/{__version__}",
             **self.config.headers}
        if key:
            h["Idempotency-Key"] = key
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        if self._hmac is not None:
            h[self.config.signature_header] = "sha256=" + hmac.new(self._hmac, body, hashlib.sha256).hexdigest()
        return h

    def preview(self, incident: Incident) -> dict[str, Any]:
        body = self.payload("open", incident, ref=None, event=_last_text(incident, "opened"), key="<per operation>",
                            now=time.time())
        headers = {k: ("<redacted>" if k == "Authorization" else v)
                   for k, v in self.headers(b"", "<per operation>").items() if k != self.config.signature_header}
        if self._hmac is not None:
            headers[self.config.signature_header] = "sha256=<hmac of the body>"
        return {"method": "POST", "url": self.config.url, "headers": headers, "body": body}

    def _post(self, op: str, incident: Incident, *, ref: TicketRef | None, event: str) -> dict[str, Any]:
        key = idempotency_key()
        now = time.time()
        body = json.dumps(self.payload(op, incident, ref=ref, event=event, key=key, now=now),
                          separators=(",", ":"), allow_nan=False, default=str).encode()
        if self.config.dry_run:
            log.info("tickets backend %s (dry run): would POST %s %s for %s (%d bytes)", self.name, op,
                     self.config.url, incident.fingerprint, len(body))
            return {"id": f"dry-run-{incident.fingerprint}"}
        try:
            resp = self._session.post(self.config.url, data=body, headers=self.headers(body, key),
                                      timeout=float(self.config.timeout), verify=self._verify, allow_redirects=False,
                                      stream=True)
        except requests.exceptions.SSLError as e:
            raise TransientError(f"TLS error talking to {self.config.url}: {_short(e)}") from None
        except requests.exceptions.Timeout:
            raise TransientError(f"timed out after {float(self.config.timeout):g}s: {self.config.url}") from None
        except requests.exceptions.ConnectionError as e:
            raise TransientError(f"cannot connect to {self.config.url}: {_short(e)}") from None
        except requests.exceptions.RequestException as e:
            raise PermanentError(f"bad request to {self.config.url}: {_short(e)}") from None
        with resp:
            raw, _ = read_body(resp, MAX_RESPONSE_BYTES, float(self.config.timeout), self.config.url)
            code = resp.status_code
            if 200 <= code < 300:
                return _json_object(raw)
            snippet = raw[:200].decode("utf-8", "replace").strip()
            msg = f"{self.config.url} answered {code} {resp.reason or ''}".rstrip()
            msg += f": {snippet}" if snippet else ""
            if code in TRANSIENT_STATUS or code >= 500:
                raise TransientError(msg, retry_after=parse_retry_after(resp.headers.get("Retry-After"), now))
            raise PermanentError(msg)


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _last_text(incident: Incident, kind: str) -> str:
    for e in reversed(incident.timeline):
        if e.kind == kind:
            return e.text
    return ""


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 300 else text[:300] + "…"
