"""The Alertmanager webhook receiver: the `receiver:` config, the HTTP endpoint, feeding the incident manager."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.core.schema import MISSING, Errors
from hostwarden.agent.core.yamlsrc import load_yaml
from hostwarden.exporters.amwebhook import parse_notification
from hostwarden.exporters.receiver import Receiver, ReceiverConfig, WebhookServer, parse_receiver
from hostwarden.rules.alerts import AlertTransition, TransitionKind

from tests.unit.exporters.am_payloads import T, am_alert, payload


# -- config --------------------------------------------------------------------------------------------------
def parse(text: str) -> tuple[Any, Errors]:
    node = load_yaml(text, "/etc/hostwarden/hostwarden.yaml")
    errors = Errors()
    return parse_receiver(node, errors, node.loc, "/etc/hostwarden"), errors


def test_parse_receiver_defaults_and_relative_web_config_resolved() -> None:
    cfg, errors = parse("token_env: RECEIVER_TOKEN\nweb_config_file: web.yml\n")
    assert not errors
    assert cfg == ReceiverConfig(token_env="RECEIVER_TOKEN", web_config_file="/etc/hostwarden/web.yml")
    assert (cfg.listen_address, cfg.path, cfg.auth, cfg.max_body_bytes) == ("127.0.0.1:9843", "/alerts", "bearer",
                                                                          1 << 20)


def test_parse_receiver_bearer_without_token_is_an_error_with_location() -> None:
    cfg, errors = parse("listen_address: nope\npath: alerts\nmax_body_bytes: 10\n")
    assert cfg is MISSING
    text = "\n".join(str(i) for i in errors.issues)
    assert "hostwarden.yaml:1:1" in text
    for needle in ("expected HOST:PORT", "must start with '/'", "needs token_env or token_file",
                   "max_body_bytes"):
        assert needle in text


def test_parse_receiver_auth_none_must_be_explicit_and_unknown_keys_reported() -> None:
    cfg, errors = parse("auth: none\n")
    assert not errors and cfg.auth == "none"
    _cfg, errors = parse("auth: none\ntoken_env: X\ntokn_file: y\n")
    text = "\n".join(str(i) for i in errors.issues)
    assert "did you mean 'token_file'" in text and "auth: none ignores" not in text  # unknown key stops the build


class RecordingIncidents:
    """Collects what the receiver hands to the incident manager (the unit under test is the receiver)."""

    def __init__(self, fail: bool = False) -> None:
        self.handled: list[tuple[list[AlertTransition], float]] = []
        self.fail = fail

    def handle(self, transitions: list[AlertTransition], now: float) -> None:
        if self.fail:
            raise RuntimeError("state database is read-only")
        self.handled.append((transitions, now))


def test_receiver_failed_handling_keeps_group_state_for_the_retry(tmp_path: Path) -> None:
    incidents = RecordingIncidents(fail=True)
    rec = Receiver(incidents, state_path=str(tmp_path / "g.json"))
    n = parse_notification(payload(am_alert()))
    with pytest.raises(RuntimeError):
        rec.handle(n, T)
    assert rec.tracker.groups == {}
    incidents.fail = False
    assert rec.handle(n, T + 30) == 1  # Alertmanager's retry produces the FIRING again
    assert [t.kind for t in incidents.handled[0][0]] == [TransitionKind.FIRING]
    assert json.loads((tmp_path / "g.json").read_text()) == rec.tracker.groups


# -- the HTTP endpoint ----------------------------------------------------------------------------------------------
TOKEN = "s3cret-receiver-token"


@pytest.fixture
def server() -> Iterator[tuple[WebhookServer, RecordingIncidents]]:
    incidents = RecordingIncidents()
    rec = Receiver(incidents, state_path=None)
    cfg = ReceiverConfig(listen_address="127.0.0.1:0", token_env="X", max_body_bytes=4096)
    srv = WebhookServer(cfg, rec.handle, token=TOKEN, clock=lambda: T)
    srv.start()
    yield srv, incidents
    srv.stop()


def post(srv: WebhookServer, body: bytes, *, token: str | None = TOKEN, ctype: str = "application/json",
         path: str = "/alerts", method: str = "POST") -> tuple[int, dict]:
    host, port = srv.address
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=body, method=method)
    req.add_header("Content-Type", ctype)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def stat(srv: WebhookServer, name: str, **labels: str) -> float:
    """One series of the server's ReceiverStats (hostwarden_receiver_*)."""
    want = tuple(sorted(labels.items()))
    (value,) = [s.value for s in srv.stats.samples(T) if s.name == name and s.labels == want]
    return value


def test_webhook_server_accepts_valid_notification(server: tuple[WebhookServer, RecordingIncidents]) -> None:
    srv, incidents = server
    assert stat(srv, "hostwarden_receiver_last_request_timestamp_seconds") == 0
    status, doc = post(srv, json.dumps(payload(am_alert())).encode())
    assert (status, doc) == (200, {"status": "ok", "transitions": 1})
    (transitions, now), = incidents.handled
    assert now == T and transitions[0].kind is TransitionKind.FIRING
    assert stat(srv, "hostwarden_receiver_requests_total", code="200") == 1
    assert stat(srv, "hostwarden_receiver_alerts_total", status="firing") == 1
    assert stat(srv, "hostwarden_receiver_alerts_total", status="resolved") == 0
    assert stat(srv, "hostwarden_receiver_last_request_timestamp_seconds") == T


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 401), ("", 401), (TOKEN + "x", 401)])
def test_webhook_server_rejects_missing_or_wrong_token(server: tuple[WebhookServer, RecordingIncidents],
                                                       token: str | None, status: int) -> None:
    srv, incidents = server
    got, doc = post(srv, json.dumps(payload(am_alert())).encode(), token=token)
    assert got == status and "bearer token" in doc["error"]
    assert incidents.handled == []


def test_webhook_server_rejects_bad_requests_with_clear_answers(server: tuple[WebhookServer,
                                                                              RecordingIncidents]) -> None:
    srv, incidents = server
    assert post(srv, b"x" * 5000)[0] == 413
    assert post(srv, b"{}", ctype="text/plain")[0] == 415
    status, doc = post(srv, b"{not json")
    assert status == 400 and doc["error"] == "invalid JSON"
    status, doc = post(srv, json.dumps({"version": "4"}).encode())
    assert status == 400 and "groupKey: required non-empty string" in doc["problems"]
    assert post(srv, b"{}", path="/other")[0] == 404
    assert post(srv, b"{}", method="PUT")[0] == 405
    assert incidents.handled == []
    # every POST counted by its answer (the PUT is no webhook request); no alert accepted, no last request
    assert {c: stat(srv, "hostwarden_receiver_requests_total", code=c) for c in ("200", "400", "404", "413", "415")} \
        == {"200": 0, "400": 2, "404": 1, "413": 1, "415": 1}
    assert stat(srv, "hostwarden_receiver_alerts_total", status="firing") == 0
    assert stat(srv, "hostwarden_receiver_last_request_timestamp_seconds") == 0


def test_webhook_server_answers_500_when_handling_fails_so_alertmanager_retries() -> None:
    rec = Receiver(RecordingIncidents(fail=True), state_path=None)
    srv = WebhookServer(ReceiverConfig(listen_address="127.0.0.1:0", auth="none"), rec.handle, token=None,
                        clock=time.time)
    srv.start()
    try:
        status, _ = post(srv, json.dumps(payload(am_alert())).encode(), token=None)
        assert status == 500
        assert stat(srv, "hostwarden_receiver_requests_total", code="500") == 1
        assert stat(srv, "hostwarden_receiver_alerts_total", status="firing") == 0  # not accepted: retried
    finally:
        srv.stop()


def test_webhook_server_handles_concurrent_notifications_of_one_group_once(
        server: tuple[WebhookServer, RecordingIncidents]) -> None:
    srv, incidents = server
    body = json.dumps(payload(am_alert())).encode()
    threads = [threading.Thread(target=post, args=(srv, body)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    kinds = [t.kind for batch, _ in incidents.handled for t in batch]
    assert kinds == [TransitionKind.FIRING]
    # each notification answered and its alert counted, none lost between threads
    assert stat(srv, "hostwarden_receiver_requests_total", code="200") == 8
    assert stat(srv, "hostwarden_receiver_alerts_total", status="firing") == 8


def test_receiver_with_real_incident_manager_one_incident_per_group(tmp_path: Path) -> None:
    from hostwarden.agent.incidents.manager import IncidentManager
    from hostwarden.agent.incidents.state import StateDB
    from hostwarden.exporters.tickets.config import parse_tickets

    errors = Errors()
    node = load_yaml("backends: [{name: ops, type: local}]\nupdate_interval: 0s\n", str(tmp_path / "c.yaml"))
    tickets = parse_tickets(node, errors, node.loc, str(tmp_path))
    assert not errors.issues
    state = StateDB(str(tmp_path / "state.db"))
    try:
        incidents = IncidentManager(tickets, state=state, hostname="receiver1", external_labels={})
        rec = Receiver(incidents, state_path=str(tmp_path / "groups.json"))
        for i, doc in enumerate([
            payload(am_alert()),
            payload(am_alert()),  # Alertmanager's repeat: nothing new
            payload(am_alert(), am_alert(severity="critical", instance="b:9100")),
            payload(am_alert("resolved"), am_alert("resolved", severity="critical", instance="b:9100")),
        ]):
            rec.handle(parse_notification(doc), T + 60 * i)
        rows = state.query("SELECT fingerprint, rule, status, severity FROM incidents")
        assert [tuple(r) for r in rows] == [(rows[0]["fingerprint"], "DiskFull", "resolved", "critical")]
        ops = [r["op"] for r in state.query("SELECT op FROM outbox ORDER BY id")]
        assert ops == ["open", "update", "resolve"]
    finally:
        state.close()


def test_receiver_documented_example_is_valid() -> None:
    from tests.support.doc_examples import DOC, yaml_blocks

    doc = load_yaml(yaml_blocks("Receiver mode")[0], str(DOC))
    errors = Errors()
    cfg = parse_receiver(doc["receiver"], errors, doc.value_loc("receiver"), str(DOC.parent))
    assert not errors.issues
    assert cfg.listen_address == "0.0.0.0:9843" and cfg.token_file == "receiver-token"
    assert cfg.web_config_file == str(DOC.parent / "web.yml")
