"""Runbook links in tickets: a relative `runbook_url` annotation is resolved against `web.runbook_base_url`.

    resolve_url("HostHighCpuUsage", "http://web-01:19842/runbooks/")
    → "http://web-01:19842/runbooks/HostHighCpuUsage"

An absolute URL (one with a scheme) is kept as written; without a base the annotation is kept too.
Resolution is URL joining (RFC 3986), so a base should end with "/".
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urljoin, urlsplit

from hostwarden.agent.core.alert import Alert
from hostwarden.rules.alerts import AlertTransition

ANNOTATION = "runbook_url"


def agent_urls(config: Any, *, tls: bool) -> tuple[str, str]:
    """(external URL, runbook base URL) from `web:`; both default to http(s)://HOSTNAME:PORT/, where the agent
    serves docs/runbooks.md, so the shipped rules' `runbook_url: docs/runbooks.md#hosthighcpuusage` works."""
    external = config.web.external_url
    if not external:
        port = config.web.listen_address.rpartition(":")[2]
        external = f"{'https' if tls else 'http'}://{config.hostname}:{port}/"
    if not external.endswith("/"):
        external += "/"
    return external, config.web.runbook_base_url or external


def resolve_url(url: str, base: str) -> str:
    url = url.strip()
    if not url or not base or urlsplit(url).scheme:
        return url
    return urljoin(base, url)


def resolve_alert(alert: Alert, base: str) -> Alert:
    if not base or not any(k == ANNOTATION for k, _ in alert.annotations):
        return alert
    annotations = tuple((k, resolve_url(v, base) if k == ANNOTATION else v) for k, v in alert.annotations)
    return alert if annotations == alert.annotations else dataclasses.replace(alert, annotations=annotations)


def resolve_transition(t: AlertTransition, base: str) -> AlertTransition:
    alert = resolve_alert(t.alert, base)
    return t if alert is t.alert else dataclasses.replace(t, alert=alert)
