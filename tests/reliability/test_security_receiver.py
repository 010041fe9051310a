"""The webhook receiver's front door: authentication, body limits, content checks, constant-time comparison.

A real WebhookServer on 127.0.0.1 with raw `http.client` requests (so the tests can send what a
hostile client sends: no token, a wrong one, a lying Content-Length, chunked bodies).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import types
from collections.abc import Iterator
from pathlib import Path

import hostwarden.exporters.receiver as receiver_module
import pytest
from hostwarden.agent.config import load_config
from hostwarden.agent.core.schema import ConfigErrors
from hostwarden.exporters.receiver import Notification, ReceiverConfig, WebhookServer

from tests.reliability.servers import post_webhook

TOKEN = "rcv-secret-token-9f8e7d6c5b4a"
VALID = {"version": "4", "groupKey": "{}:{alertname=\"Sec\"}", "receiver": "hw", "status": "firing",
         "groupLabels": {"alertname": "Sec"},
         "alerts": [{"status": "firing", "labels": {"alertname": "Sec"}, "startsAt": "2024-05-01T10:00:00Z"}]}


def _server(config: ReceiverConfig, token: str | None) -> tuple[WebhookServer, list[Notification]]:
    got: list[Notification] = []

    def on_notification(n: Notification, now: float) -> int:
        got.append(n)
        return len(n.alerts)

    server = WebhookServer(config, on_notification, token=token, listen_address="127.0.0.1:0", clock=time.time)
    server.start()
    return server, got


@pytest.fixture(scope="module")
def bearer() -> Iterator[tuple[WebhookServer, list[Notification]]]:
    server, got = _server(ReceiverConfig(token_env="UNUSED", max_body_bytes=4096), TOKEN)
    yield server, got
    server.stop()


# -- authentication -------------------------------------------------------------------------------------------
def test_receiver_config_bearer_without_token_rejected_at_load(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("receiver:\n  listen_address: 127.0.0.1:0\n")
    with pytest.raises(ConfigErrors) as e:
        load_config(str(cfg))
    assert "token_env or token_file" in str(e.value) and str(cfg) in str(e.value)


def test_receiver_config_auth_none_must_be_explicit_and_is_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("receiver:\n  listen_address: 127.0.0.1:0\n  auth: none\n")
    assert load_config(str(cfg)).receiver.auth == "none"


def test_receiver_server_bearer_without_token_refuses_to_start() -> None:
    with pytest.raises(ValueError):
        WebhookServer(ReceiverConfig(token_env="X"), lambda n, now: 0, token=None, listen_address="127.0.0.1:0",
                      clock=time.time)


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
                                           f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN.upper()}", f"{TOKEN}"])
def test_receiver_missing_or_wrong_token_401_nothing_handled(bearer: tuple[WebhookServer, list[Notification]],
                                                             authorization: str | None) -> None:
    server, got = bearer
    before = len(got)
    headers = {} if authorization is None else {"Authorization": authorization}
    status, body = post_webhook(server.address[1], None, json.dumps(VALID).encode(), headers=headers)
    assert status == 401 and json.loads(body)["error"]
    assert len(got) == before


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_receiver_right_token_any_scheme_case_accepted(bearer: tuple[WebhookServer, list[Notification]],
                                                       scheme: str) -> None:
    server, got = bearer
    status, _ = post_webhook(server.address[1], None, json.dumps(VALID).encode(),
                     headers={"Authorization": f"{scheme} {TOKEN}"})
    assert status == 200 and got[-1].group_key == VALID["groupKey"]


def test_receiver_auth_none_accepts_without_token() -> None:
    server, got = _server(ReceiverConfig(auth="none"), None)
    try:
        status, _ = post_webhook(server.address[1], None, json.dumps(VALID).encode())
        assert status == 200 and len(got) == 1
    finally:
        server.stop()


def test_receiver_token_comparison_goes_through_hmac_compare_digest(
        bearer: tuple[WebhookServer, list[Notification]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: every token check is one hmac.compare_digest of the supplied and configured bytes."""
    calls: list[tuple[bytes, bytes]] = []
    real = receiver_module.hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(receiver_module, "hmac", types.SimpleNamespace(compare_digest=recording))
    server, _ = bearer
    assert post_webhook(server.address[1], "nearly-" + TOKEN, json.dumps(VALID).encode())[0] == 401
    assert post_webhook(server.address[1], TOKEN, json.dumps(VALID).encode())[0] == 200
    assert calls == [(b"nearly-" + TOKEN.encode(), TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


# -- body limits and content ----------------------------------------------------------------------------------
def test_receiver_oversized_content_length_413_without_reading_body(
        bearer: tuple[WebhookServer, list[Notification]]) -> None:
    """The server answers from the headers alone: a client announcing 10 GB and sending nothing gets 413 at once."""
    server, _ = bearer
    with socket.create_connection(("127.0.0.1", server.address[1]), timeout=10) as s:
        s.sendall((f"POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n").encode())
        start = time.monotonic()
        answer = s.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert time.monotonic() - start < 5


def test_receiver_body_just_over_limit_413_at_limit_processed(bearer: tuple[WebhookServer, list[Notification]]) -> None:
    server, _ = bearer
    doc = json.dumps(VALID).encode()
    padded_ok = doc[:-1] + b" " * (4096 - len(doc)) + b"}"
    assert len(padded_ok) == 4096
    assert post_webhook(server.address[1], TOKEN, padded_ok)[0] == 200
    assert post_webhook(server.address[1], TOKEN, padded_ok + b" ")[0] == 413


def test_receiver_chunked_or_missing_length_411(bearer: tuple[WebhookServer, list[Notification]]) -> None:
    server, _ = bearer
    for extra in ("Transfer-Encoding: chunked\r\n", ""):
        with socket.create_connection(("127.0.0.1", server.address[1]), timeout=10) as s:
            s.sendall((f"POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                       f"Content-Type: application/json\r\n{extra}\r\n").encode())
            assert s.recv(4096).decode().startswith("HTTP/1.1 411")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "", "application/jsonp"])
def test_receiver_non_json_content_type_415(bearer: tuple[WebhookServer, list[Notification]], ctype: str) -> None:
    server, _ = bearer
    status, body = post_webhook(server.address[1], TOKEN, json.dumps(VALID).encode(), content_type=ctype)
    assert status == 415 and "Content-Type" in json.loads(body)["error"]


@pytest.mark.parametrize("raw", [b"not json", b"{", b"\xff\xfe\x00", b""])
def test_receiver_malformed_json_400(bearer: tuple[WebhookServer, list[Notification]], raw: bytes) -> None:
    server, _ = bearer
    status, body = post_webhook(server.address[1], TOKEN, raw)
    assert status == 400 and json.loads(body)["error"] == "invalid JSON"


def test_receiver_wrong_schema_400_lists_every_problem(bearer: tuple[WebhookServer, list[Notification]]) -> None:
    server, got = bearer
    before = len(got)
    bad = {"version": "3", "receiver": 5, "alerts": [{"status": "maybe", "labels": {"a": 1}}]}
    status, body = post_webhook(server.address[1], TOKEN, json.dumps(bad).encode())
    doc = json.loads(body)
    assert status == 400
    text = " ".join(doc["problems"])
    for field in ("version", "groupKey", "receiver", "alerts[0].status", "alerts[0].labels", "alerts[0].startsAt"):
        assert field in text
    assert len(got) == before


def test_receiver_other_methods_and_paths_4xx(bearer: tuple[WebhookServer, list[Notification]]) -> None:
    server, _ = bearer
    assert post_webhook(server.address[1], TOKEN, json.dumps(VALID).encode(), path="/other")[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=10)
    try:
        for method in ("GET", "PUT", "DELETE"):
            conn.request(method, "/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 405
            conn.close()
    finally:
        conn.close()
