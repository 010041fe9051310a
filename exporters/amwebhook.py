"""Alertmanager webhook notifications (payload version 4): validation, and groups → incident transitions.

Pure: no I/O except `load_groups`/`save_groups`; time is an argument. Used by exporters.receiver.

One ticket per Alertmanager group (as jiralert): a group is one incident whose fingerprint comes from the
group's `groupKey` and the `receiver` name alone, so alerts joining or leaving the group update the
same ticket. See exporters/receiver.py for the whole picture.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hostwarden.agent.core.alert import SEVERITY_ORDER, Alert, AlertState
from hostwarden.agent.core.samples import Labels
from hostwarden.rules.alerts import AlertTransition, TransitionKind

log = logging.getLogger(__name__)

GROUP_ALERTNAME = "AlertmanagerGroup"
MAX_LISTED = 50
_ZERO_TIME = "0001-01-01T00:00:00Z"


# -- the webhook payload (version 4) ----------------------------------------------------------------------
class PayloadError(ValueError):
    """The request body is not a valid Alertmanager webhook payload; str() lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class WebhookAlert:
    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels
    starts_at: float
    ends_at: float | None
    generator_url: str
    fingerprint: str  # Alertmanager's, or one computed from the labels when absent

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)


@dataclass(frozen=True, slots=True)
class Notification:
    receiver: str
    status: Literal["firing", "resolved"]
    group_key: str
    group_labels: Labels
    common_labels: Labels
    common_annotations: Labels
    external_url: str
    truncated_alerts: int
    alerts: tuple[WebhookAlert, ...]


def _str_map(value: Any, where: str, problems: list[str]) -> Labels:
    if value is None:
        return ()
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object of strings, got {type(value).__name__}")
        return ()
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:
        problems.append(f"{where}: values must be strings ({', '.join(map(repr, bad[:5]))})")
        return ()
    return tuple(sorted(value.items()))


def _time(value: Any, where: str, problems: list[str], *, optional: bool) -> float | None:
    if value in (None, "") or value == _ZERO_TIME:
        if not optional:
            problems.append(f"{where}: required RFC 3339 time is missing")
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: expected an RFC 3339 time string, got {type(value).__name__}")
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"{where}: {value[:40]!r} is not an RFC 3339 time")
        return None
    if dt.tzinfo is None:
        problems.append(f"{where}: {value[:40]!r} has no time zone")
        return None
    if dt.year <= 1:
        return None
    return dt.timestamp()


def _status(value: Any, where: str, problems: list[str]) -> Any:
    if value not in ("firing", "resolved"):
        problems.append(f"{where}: must be 'firing' or 'resolved', got {str(value)[:40]!r}")
        return "firing"
    return value


def parse_notification(doc: Any) -> Notification:
    """Validate an Alertmanager webhook payload (version 4); raise PayloadError listing every problem."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise PayloadError([f"expected a JSON object, got {type(doc).__name__}"])
    if doc.get("version") != "4":
        problems.append(f"version: expected \"4\", got {json.dumps(doc.get('version'))[:40]}")
    group_key = doc.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        problems.append("groupKey: required non-empty string")
        group_key = ""
    receiver = doc.get("receiver")
    if not isinstance(receiver, str) or not receiver:
        problems.append("receiver: required non-empty string")
        receiver = ""
    status = _status(doc.get("status"), "status", problems)
    external_url = doc.get("externalURL", "")
    if not isinstance(external_url, str):
        problems.append("externalURL: expected a string")
        external_url = ""
    truncated = doc.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        problems.append("truncatedAlerts: expected a non-negative integer")
        truncated = 0
    group_labels = _str_map(doc.get("groupLabels"), "groupLabels", problems)
    common_labels = _str_map(doc.get("commonLabels"), "commonLabels", problems)
    common_annotations = _str_map(doc.get("commonAnnotations"), "commonAnnotations", problems)
    raw_alerts = doc.get("alerts")
    alerts: list[WebhookAlert] = []
    if not isinstance(raw_alerts, list) or not raw_alerts:
        problems.append("alerts: required non-empty array")
        raw_alerts = []
    for i, a in enumerate(raw_alerts):
        where = f"alerts[{i}]"
        if not isinstance(a, dict):
            problems.append(f"{where}: expected an object")
            continue
        before = len(problems)
        a_status = _status(a.get("status"), f"{where}.status", problems)
        labels = _str_map(a.get("labels"), f"{where}.labels", problems)
        if not labels and f"{where}.labels" not in " ".join(problems[before:]):
            problems.append(f"{where}.labels: required non-empty object")
        annotations = _str_map(a.get("annotations"), f"{where}.annotations", problems)
        starts = _time(a.get("startsAt"), f"{where}.startsAt", problems, optional=False)
        ends = _time(a.get("endsAt"), f"{where}.endsAt", problems, optional=True)
        gen = a.get("generatorURL", "")
        if not isinstance(gen, str):
            problems.append(f"{where}.generatorURL: expected a string")
            gen = ""
        fp = a.get("fingerprint") or ""
        if not isinstance(fp, str):
            problems.append(f"{where}.fingerprint: expected a string")
            fp = ""
        if len(problems) == before:
            alerts.append(WebhookAlert(status=a_status, labels=labels, annotations=annotations,
                                       starts_at=starts or 0.0, ends_at=ends, generator_url=gen,
                                       fingerprint=fp or _labels_key(labels)))
    if problems:
        raise PayloadError(problems[:50])
    return Notification(receiver=receiver, status=status, group_key=group_key, group_labels=group_labels,
                        common_labels=common_labels, common_annotations=common_annotations,
                        external_url=external_url, truncated_alerts=truncated, alerts=tuple(alerts))


def _labels_key(labels: Labels) -> str:
    h = hashlib.sha256()
    for k, v in labels:
        h.update(k.encode() + b"\x00" + v.encode() + b"\x01")
    return h.hexdigest()[:16]


# -- groups → transitions (pure: time is an argument) ------------------------------------------------------
def group_identity(n: Notification) -> tuple[str, Labels]:
    """The incident's alert name and identity: stable for the group's lifetime (groupKey + receiver)."""
    rule = dict(n.group_labels).get("alertname") or GROUP_ALERTNAME
    identity = tuple(sorted({**dict(n.group_labels), "am_group_key": n.group_key, "am_receiver": n.receiver}.items()))
    return rule, identity


class GroupTracker:
    """The firing members of each group at the last notification: `{group: {member fp: severity}}`.

    `observe(notification, now)` returns the group's transitions since then: FIRING when its first member
    fires, ESCALATED/DEESCALATED when the highest severity among its firing members changes, RESOLVED when
    no member fires any more. Alertmanager lists every member of a group in each notification (unless
    `truncatedAlerts` says some were left out), so a member no longer listed has resolved.
    """

    def __init__(self, default_severity: str = "warning", groups: dict[str, dict[str, str]] | None = None) -> None:
        self.default_severity = default_severity
        self.groups: dict[str, dict[str, str]] = groups or {}

    @staticmethod
    def key(n: Notification) -> str:
        return f"{n.receiver}\x00{n.group_key}"

    def severity(self, n: Notification, a: WebhookAlert) -> str:
        return a.label("severity") or dict(n.common_labels).get("severity") or self.default_severity

    def members(self, n: Notification, known: dict[str, str]) -> dict[str, str]:
        if n.status == "resolved":
            return {}
        firing = {a.fingerprint: self.severity(n, a) for a in n.alerts if a.status == "firing"}
        if n.truncated_alerts:  # unlisted members may still fire: keep them unless listed as resolved
            resolved = {a.fingerprint for a in n.alerts if a.status != "firing"}
            return {**{fp: s for fp, s in known.items() if fp not in resolved}, **firing}
        return firing

    def observe(self, n: Notification, now: float) -> tuple[list[AlertTransition], str]:
        """The transitions, and a note on membership changes for an incident that stays open ("" if none)."""
        key = self.key(n)
        known = self.groups.get(key, {})
        members = self.members(n, known)
        alert = group_alert(n, members, self.severity, now)
        out: list[AlertTransition] = []
        note = ""
        if members and not known:
            out.append(AlertTransition(alert, TransitionKind.FIRING, now))
        elif members:
            before, after = _top(known.values()), alert.severity
            if before != after:
                up = SEVERITY_ORDER.get(after, 1) > SEVERITY_ORDER.get(before, 1)
                out.append(AlertTransition(alert, TransitionKind.ESCALATED if up else TransitionKind.DEESCALATED,
                                           now, previous_severity=before))
            note = membership_note(n, known, members)
        else:  # also for a group never seen firing: the incident manager ignores a resolution it has no incident for
            out.append(AlertTransition(alert, TransitionKind.RESOLVED, now))
        if members:
            self.groups[key] = members
        else:
            self.groups.pop(key, None)
        return out, note


def _top(severities: Iterable[str]) -> str:
    return max(severities, key=lambda s: SEVERITY_ORDER.get(s, 1), default="warning")


def group_alert(n: Notification, members: dict[str, str], severity_of: Callable[[Notification, WebhookAlert], str],
                now: float) -> Alert:
    """One Alert standing for the whole group: labels common to its firing members, value = how many fire."""
    rule, identity = group_identity(n)
    firing = [a for a in n.alerts if a.fingerprint in members and a.status == "firing"]
    basis = firing or list(n.alerts)
    common = dict(basis[0].labels) if basis else {}
    for a in basis[1:]:
        common = {k: v for k, v in common.items() if dict(a.labels).get(k) == v}
    common.update(dict(n.group_labels))
    common["alertname"] = rule
    annotations = dict(n.common_annotations)
    if len(basis) == 1:
        annotations.update(dict(basis[0].annotations))
    lines = [f"{a.status}: " + ", ".join(f"{k}={v}" for k, v in a.labels if common.get(k) != v)
             for a in n.alerts[:MAX_LISTED]]
    unlisted = max(0, len(n.alerts) - MAX_LISTED) + n.truncated_alerts
    if unlisted:
        lines.append(f"… and {unlisted} more")
    annotations["alerts"] = "\n".join(lines)
    if not annotations.get("summary"):  # the ticket's title: stable for the group's lifetime
        scope = ", ".join(f"{k}={v}" for k, v in n.group_labels if k != "alertname")
        annotations["summary"] = f"{rule} ({scope or 'Alertmanager group'})"
    if n.external_url:
        annotations["alertmanager_url"] = n.external_url
    gen = next((a.generator_url for a in basis if a.generator_url), "")
    if gen:
        annotations["generator_url"] = gen
    firing_now = bool(members)
    starts = min((a.starts_at for a in firing if a.starts_at), default=now)
    ends = max((a.ends_at for a in n.alerts if a.ends_at), default=now)
    severity = _top(members.values()) if members else _top(severity_of(n, a) for a in n.alerts)
    return Alert(
        rule=rule, group="alertmanager", labels=tuple(sorted(common.items())), identity=identity,
        state=AlertState.FIRING if firing_now else AlertState.INACTIVE, severity=severity, value=float(len(members)),
        active_since=starts, fired_at=starts if firing_now else None,
        resolved_at=None if firing_now else min(ends, now), annotations=tuple(sorted(annotations.items())),
        category=common.get("category", ""), threshold="", expr="", source=_source(n),
    )


def membership_note(n: Notification, known: dict[str, str], members: dict[str, str]) -> str:
    """A line per member that started or stopped firing (for an incident that stays open)."""
    by_fp = {a.fingerprint: a for a in n.alerts}
    lines = []
    for fp in sorted(set(members) - set(known))[:MAX_LISTED]:
        a = by_fp.get(fp)
        lines.append("+ firing: " + (", ".join(f"{k}={v}" for k, v in a.labels) if a else fp))
    for fp in sorted(set(known) - set(members))[:MAX_LISTED]:
        a = by_fp.get(fp)
        lines.append("- resolved: " + (", ".join(f"{k}={v}" for k, v in a.labels) if a else fp))
    return "\n".join(lines)


def _source(n: Notification) -> str:
    return f"alertmanager receiver {n.receiver!r} group {n.group_key}"[:300]


def load_groups(path: str) -> dict[str, dict[str, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable receiver state %s: %s", path, e)
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): {str(fp): str(sev) for fp, sev in v.items()} for k, v in doc.items() if isinstance(v, dict)}


def save_groups(path: str, groups: dict[str, dict[str, str]]) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".receiver-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(groups, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
