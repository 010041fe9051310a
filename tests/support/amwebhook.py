"""Playing Alertmanager against a hostwarden receiver in tests: one notification (webhook payload version 4)
and whether a port still listens."""

from __future__ import annotations

import http.client
import json
import socket


def notification(group: str, *, receiver: str = "hostwarden", instance: str | None = None,
                 severity: str | None = None) -> bytes:
    """A firing notification with one alert whose alertname is `group`."""
    labels = {"alertname": group, **({"instance": instance} if instance else {}),
              **({"severity": severity} if severity else {})}
    alert = {"status": "firing", "labels": labels, "startsAt": "2026-01-01T00:00:00Z",
             **({"annotations": {"summary": f"{group} on {instance}"}} if instance else {})}
    return json.dumps({"version": "4", "groupKey": f'{{}}:{{alertname="{group}"}}', "receiver": receiver,
                       "status": "firing", "groupLabels": {"alertname": group}, "commonLabels": labels,
                       "alerts": [alert]}).encode()


def post_notification(port: int, body: bytes, *, path: str = "/alerts", token: str | None = None,
                      timeout: float = 10.0) -> int:
    """POST `body` to 127.0.0.1:`port``path` (with a bearer token if given); the HTTP status."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, headers)
        return conn.getresponse().status
    finally:
        conn.close()


def refused(port: int) -> bool:
    """Nothing listens on 127.0.0.1:`port` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False
