"""Alertmanager webhook payloads (version 4) and groups → incident transitions (pure, time as argument)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostwarden.agent.core.alert import AlertState, fingerprint
from hostwarden.exporters.amwebhook import (
    GROUP_ALERTNAME,
    GroupTracker,
    PayloadError,
    load_groups,
    parse_notification,
    save_groups,
)
from hostwarden.rules.alerts import AlertTransition, TransitionKind

from tests.unit.exporters.am_payloads import T, am_alert, payload


# -- payload -------------------------------------------------------------------------------------------------
def test_parse_notification_accepts_alertmanager_payload() -> None:
    n = parse_notification(payload(am_alert(), am_alert("resolved", instance="b:9100")))
    assert n.group_key == '{}:{alertname="DiskFull"}' and n.receiver == "hostwarden" and n.status == "firing"
    first, second = n.alerts
    assert first.starts_at == pytest.approx(1700000000.123456) and first.ends_at is None
    assert second.status == "resolved" and second.ends_at == pytest.approx(1700000600.0)
    assert first.fingerprint == "fp-a:9100" and first.label("severity") == "warning"


def test_parse_notification_lists_every_problem() -> None:
    bad = {"version": "3", "groupKey": "", "status": "burning", "receiver": 5, "groupLabels": {"a": 1},
           "truncatedAlerts": -1,
           "alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}, "nope",
                      {"status": "resolved", "labels": {"x": "y"}, "startsAt": "2023-11-14T22:13:20"}]}
    with pytest.raises(PayloadError) as exc:
        parse_notification(bad)
    text = str(exc.value)
    for needle in ('version: expected "4", got "3"', "groupKey: required", "receiver: required", "status: must be",
                   "truncatedAlerts", "groupLabels: values must be strings", "alerts[0].labels: required",
                   "alerts[0].startsAt: 'yesterday' is not an RFC 3339 time", "alerts[1]: expected an object",
                   "alerts[2].startsAt: '2023-11-14T22:13:20' has no time zone"):
        assert needle in text


def test_parse_notification_rejects_non_object_and_empty_alerts() -> None:
    with pytest.raises(PayloadError, match="expected a JSON object"):
        parse_notification([1, 2])
    with pytest.raises(PayloadError, match="alerts: required non-empty array"):
        parse_notification(payload() | {"alerts": []})


# -- groups -> transitions ----------------------------------------------------------------------------------------
def observe(tracker: GroupTracker, doc: dict, now: float = T) -> tuple[list[AlertTransition], str]:
    return tracker.observe(parse_notification(doc), now)


def test_group_tracker_one_incident_per_group_fires_escalates_and_resolves() -> None:
    tr = GroupTracker()
    ts, note = observe(tr, payload(am_alert()))
    assert [t.kind for t in ts] == [TransitionKind.FIRING] and note == ""
    alert = ts[0].alert
    fp = alert.fingerprint
    assert alert.rule == "DiskFull" and alert.state is AlertState.FIRING and alert.value == 1.0
    assert dict(alert.identity) == {"alertname": "DiskFull", "am_group_key": '{}:{alertname="DiskFull"}',
                                    "am_receiver": "hostwarden"}
    assert fp == fingerprint("DiskFull", alert.identity)

    # a second member joins with a higher severity: the same incident escalates
    ts, note = observe(tr, payload(am_alert(), am_alert(severity="critical", instance="b:9100")), T + 60)
    assert [(t.kind, t.previous_severity, t.alert.severity) for t in ts] == [
        (TransitionKind.ESCALATED, "warning", "critical")]
    assert ts[0].alert.fingerprint == fp and ts[0].alert.value == 2.0
    assert note == "+ firing: alertname=DiskFull, instance=b:9100, job=node, severity=critical"
    assert dict(ts[0].alert.labels) == {"alertname": "DiskFull", "job": "node"}  # common to the members

    # the same state again: nothing
    assert observe(tr, payload(am_alert(), am_alert(severity="critical", instance="b:9100")), T + 120) == ([], "")

    # the critical one resolves: de-escalation, the incident stays open
    ts, note = observe(tr, payload(am_alert(), am_alert("resolved", severity="critical", instance="b:9100")), T + 180)
    assert [t.kind for t in ts] == [TransitionKind.DEESCALATED] and note.startswith("- resolved: ")

    # the group resolves
    ts, _ = observe(tr, payload(am_alert("resolved")), T + 240)
    assert [t.kind for t in ts] == [TransitionKind.RESOLVED]
    assert ts[0].alert.fingerprint == fp and ts[0].alert.state is AlertState.INACTIVE
    assert ts[0].alert.resolved_at == pytest.approx(1700000600.0)
    assert tr.groups == {}


def test_group_tracker_member_gone_from_group_counts_as_resolved_unless_truncated() -> None:
    tr = GroupTracker()
    observe(tr, payload(am_alert(), am_alert(instance="b:9100")))
    ts, note = observe(tr, payload(am_alert(instance="b:9100"), truncated=3), T + 60)
    assert ts == [] and note == ""  # a truncated list says nothing about the unlisted member
    ts, note = observe(tr, payload(am_alert(instance="b:9100")), T + 120)
    assert ts == [] and "- resolved: fp-a:9100" in note
    ts, _ = observe(tr, payload(am_alert("resolved", instance="b:9100"), status="resolved"), T + 180)
    assert [t.kind for t in ts] == [TransitionKind.RESOLVED]


def test_group_tracker_different_groups_and_receivers_are_different_incidents() -> None:
    tr = GroupTracker()
    a, _ = observe(tr, payload(am_alert()))
    b, _ = observe(tr, payload(am_alert(), group_key='{}/{team="db"}:{alertname="DiskFull"}'))
    other = payload(am_alert()) | {"receiver": "other"}
    c, _ = observe(tr, other)
    fps = {t[0].alert.fingerprint for t in (a, b, c)}
    assert len(fps) == 3


def test_group_tracker_without_alertname_grouping_uses_group_alertname() -> None:
    doc = payload(am_alert(), am_alert(alertname="Other", instance="b:9100")) | {"groupLabels": {"job": "node"}}
    ts, _ = observe(GroupTracker(), doc)
    assert ts[0].alert.rule == GROUP_ALERTNAME
    assert "firing: alertname=DiskFull" in ts[0].alert.annotation("alerts")


def test_group_tracker_resolution_for_unknown_group_is_still_reported() -> None:
    ts, _ = observe(GroupTracker(), payload(am_alert("resolved")))
    assert [t.kind for t in ts] == [TransitionKind.RESOLVED]  # the incident manager ignores it if nothing is open


def test_group_state_round_trips_through_file(tmp_path: Path) -> None:
    path = str(tmp_path / "receiver-groups.json")
    tr = GroupTracker()
    observe(tr, payload(am_alert(), am_alert(severity="critical", instance="b:9100")))
    save_groups(path, tr.groups)
    again = GroupTracker(groups=load_groups(path))
    assert again.groups == tr.groups
    assert observe(again, payload(am_alert(), am_alert(severity="critical", instance="b:9100")), T + 60) == ([], "")
    (tmp_path / "bad.json").write_text("{not json")
    assert load_groups(str(tmp_path / "bad.json")) == {}
    assert load_groups(str(tmp_path / "missing.json")) == {}
