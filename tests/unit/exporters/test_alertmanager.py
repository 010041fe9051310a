"""The `alertmanager` backend's payloads and re-send throttle, without a server.
(Against a real Alertmanager: tests/integration/test_alertmanager.py.)"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from hostwarden.exporters.tickets.alertmanager import AlertmanagerBackend, AlertmanagerConfig, label_name, rfc3339

from tests.contract.incidents import make_incident, with_ref
from tests.support.doc_examples import parse_tickets_example


def backend(**kw: object) -> AlertmanagerBackend:
    return AlertmanagerBackend(AlertmanagerConfig(**(dict(name="am", url="http://127.0.0.1:1") | kw)))


def test_alertmanager_documented_example_is_valid() -> None:
    cfg, problems = parse_tickets_example("alertmanager")
    assert problems == []
    am = cfg.backends[0]
    assert am.targets == ["https://am-1.example.com:9093", "https://am-2.example.com:9093"]
    assert am.resend_interval == 60.0


def test_alertmanager_config_validation() -> None:
    text = "\n".join(AlertmanagerConfig(name="a", resend_interval=1.0, extra_labels={"bad-name": "x"},
                                        user="u", token_env="T").validate())
    for needle in ("set url", "resend_interval", "'bad-name'", "either a bearer token"):
        assert needle in text


def test_label_name_and_rfc3339() -> None:
    assert [label_name(n) for n in ("ok_name", "with-dash", "9lives", "ünï")] == ["ok_name", "with_dash",
                                                                                   "_9lives", "_n_"]
    assert rfc3339(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"


def test_alert_payload_labels_annotations_and_lease() -> None:
    b = backend(extra_labels={"source": "hostwarden"}, generator_url="http://{host}:9842/")
    inc = make_incident(labels={"empty": "", "odd.name": "v"})
    a = b.alert(inc, ends_at=inc.opened_at + 240)
    assert a["labels"] == {"alertname": "FilesystemAlmostFull", "severity": "critical", "host": "web1",
                           "instance": dict(inc.labels)["instance"], "mountpoint": "/srv", "odd_name": "v",
                           "source": "hostwarden"}
    assert a["annotations"] == {"summary": "/srv is 97% full", "value": "0.97 (threshold > 0.95)",
                                "priority": "P2", "hostwarden_fingerprint": inc.fingerprint, "category": "disk"}
    assert a["startsAt"] == rfc3339(inc.alert.fired_at) and a["endsAt"] == rfc3339(inc.opened_at + 240)
    assert a["generatorURL"] == "http://web1:9842/"


def test_resend_is_throttled_to_the_interval_and_only_for_own_incidents(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hostwarden.exporters.tickets.alertmanager")
    b = backend(dry_run=True, resend_interval=60.0)
    inc = make_incident()
    ref = b.open(inc)
    mine = with_ref(inc, dataclasses.replace(ref, backend="am"))
    theirs = with_ref(make_incident(), dataclasses.replace(ref, backend="other"))
    caplog.clear()
    for now in (1000.0, 1010.0, 1059.0, 1060.0, 1200.0):
        b.resend(now, [mine, theirs])
        assert b.wait_resend(5)
    sends = [r.getMessage() for r in caplog.records if "would POST" in r.getMessage()]
    assert sends == ["alertmanager am (dry run): would POST 1 alert(s) to /api/v2/alerts (re-send of 1 alert(s))"] * 3


def test_resend_does_not_wait_for_an_unreachable_alertmanager() -> None:
    import socket
    import time

    with socket.socket() as listener:  # accepts connections, never answers: the worst case for a caller
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        b = backend(url=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        inc = make_incident()
        ref_inc = with_ref(inc, dataclasses.replace(b._ref(inc), backend="am"))
        start = time.monotonic()
        b.resend(1000.0, [ref_inc])
        b.resend(2000.0, [ref_inc])  # the first is still in flight: skipped, not queued
        assert time.monotonic() - start < 0.5
        assert not b.wait_resend(0.1)
        assert b.wait_resend(10)
