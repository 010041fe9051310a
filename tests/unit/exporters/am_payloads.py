"""Alertmanager webhook payloads (version 4) as Alertmanager sends them, for the receiver tests."""

from __future__ import annotations

T = 1_700_000_000.0


def am_alert(status: str = "firing", severity: str = "warning", instance: str = "a:9100", **labels: str) -> dict:
    lab = {"alertname": "DiskFull", "severity": severity, "instance": instance, "job": "node"} | labels
    return {"status": status, "labels": lab, "annotations": {"summary": f"disk full on {instance}"},
            "startsAt": "2023-11-14T22:13:20.123456789Z",
            "endsAt": "2023-11-14T22:23:20Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"fp-{instance}"}


def payload(*alerts: dict, status: str | None = None, group_key: str = '{}:{alertname="DiskFull"}',
            truncated: int = 0) -> dict:
    firing = any(a["status"] == "firing" for a in alerts)
    return {"version": "4", "groupKey": group_key, "truncatedAlerts": truncated,
            "status": status or ("firing" if firing else "resolved"), "receiver": "hostwarden",
            "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {"alertname": "DiskFull", "job": "node"},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}
