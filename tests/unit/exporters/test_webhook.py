"""The webhook backend against a real HTTP(S) server on 127.0.0.1: payloads, auth, signatures, error classes."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from email.utils import formatdate
from pathlib import Path

import pytest
from hostwarden.agent.core.incident import Incident, PermanentError, TicketRef, TimelineEntry, TransientError
from hostwarden.exporters.tickets.base import reset_idempotency_key, set_idempotency_key
from hostwarden.exporters.tickets.webhook import WebhookBackend, WebhookConfig, parse_retry_after

from tests.support.incidents import HOST, alert
from tests.support.tls import make_pki
from tests.support.webhook_receiver import CountingReceiver, Reply

T0 = 1_700_000_000.0


@pytest.fixture
def receiver() -> CountingReceiver:
    r = CountingReceiver().up()
    yield r
    r.close()


def incident(**kw: object) -> Incident:
    a = alert(at=T0, mountpoint="/var")
    base = dict(fingerprint=a.fingerprint, alert=a, title="HighCPU on testhost", priority="P2", category="performance",
                host=HOST, labels=(*a.identity, ("env", "prod")), opened_at=T0, diagnosis="diag",
                timeline=(TimelineEntry(T0, "opened", "HighCPU warning on testhost"),),
                extra_fields={"ack_due": T0 + 3600, "resolve_due": T0 + 86400})
    base.update(kw)
    return Incident(**base)  # type: ignore[arg-type]


def backend(url: str, **kw: object) -> WebhookBackend:
    return WebhookBackend(WebhookConfig(name="hook", type="webhook", url=url, **kw))  # type: ignore[arg-type]


def call(key: str, fn, *args):  # type: ignore[no-untyped-def]
    token = set_idempotency_key(key)
    try:
        return fn(*args)
    finally:
        reset_idempotency_key(token)


def test_webhook_open_posts_documented_json_with_idempotency_key(receiver: CountingReceiver) -> None:
    b = backend(receiver.url)
    ref = call("hw-abc", b.open, incident())
    assert ref == TicketRef("hook", "T-1", f"http://127.0.0.1:{receiver.port}/tickets/T-1")
    (req,) = receiver.requests
    assert req.headers["Idempotency-Key"] == "hw-abc" and req.headers["Content-Type"] == "application/json"
    body = req.body
    assert (body["version"], body["operation"], body["idempotency_key"], body["ticket"]) == ("1", "open", "hw-abc",
                                                                                           None)
    inc = body["incident"]
    assert inc["fingerprint"] == incident().fingerprint and inc["status"] == "firing"
    assert (inc["priority"], inc["severity"], inc["alertname"], inc["host"]) == ("P2", "warning", "HighCPU", HOST)
    assert inc["labels"] == {"env": "prod", "host": HOST, "mountpoint": "/var"}
    assert inc["opened_at"] == "2023-11-14T22:13:20.000000Z" and inc["resolved_at"] is None
    assert inc["ack_due"] == "2023-11-14T23:13:20.000000Z"
    assert inc["timeline"] == [{"at": "2023-11-14T22:13:20.000000Z", "kind": "opened",
                                "text": "HighCPU warning on testhost"}]
    assert body["event"] == "HighCPU warning on testhost"


def test_webhook_update_resolve_reopen_carry_ticket_and_event(receiver: CountingReceiver) -> None:
    b = backend(receiver.url)
    ref = TicketRef("hook", "T-9", "")
    call("k1", b.update, ref, incident(), "Escalated warning → critical")
    done = incident(resolved_at=T0 + 60, timeline=(TimelineEntry(T0 + 60, "resolved", "Resolved after 1m"),))
    call("k2", b.resolve, ref, done)
    call("k3", b.reopen, ref, incident(reopen_count=1))
    ops = [(r.body["operation"], r.body["ticket"]["id"], r.body["event"]) for r in receiver.requests]
    assert ops == [("update", "T-9", "Escalated warning → critical"), ("resolve", "T-9", "Resolved after 1m"),
                   ("reopen", "T-9", "")]
    assert receiver.requests[1].body["incident"]["status"] == "resolved"


def test_webhook_bearer_token_and_hmac_signature(receiver: CountingReceiver, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_HOOK_TOKEN", "s3cret-token")
    (tmp_path / "hmac").write_text("hmac-key-123\n")
    b = backend(receiver.url, token_env="HW_TEST_HOOK_TOKEN", hmac_secret_file=str(tmp_path / "hmac"))
    call("k", b.open, incident())
    (req,) = receiver.requests
    assert req.headers["Authorization"] == "Bearer s3cret-token"
    raw = json.dumps(req.body, separators=(",", ":")).encode()
    expected = "sha256=" + hmac.new(b"hmac-key-123", raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Hostwarden-Signature"], expected)


def test_webhook_alertmanager_format_is_v4_payload(receiver: CountingReceiver) -> None:
    b = backend(receiver.url, format="alertmanager", receiver="ops", external_url="http://hw.example")
    call("k1", b.open, incident())
    call("k2", b.resolve, TicketRef("hook", "x"), incident(resolved_at=T0 + 90))
    firing_doc, resolved_doc = (r.body for r in receiver.requests)
    assert firing_doc["version"] == "4" and firing_doc["status"] == "firing" and firing_doc["receiver"] == "ops"
    assert firing_doc["truncatedAlerts"] == 0 and firing_doc["externalURL"] == "http://hw.example"
    assert firing_doc["groupLabels"] == {"alertname": "HighCPU"}
    assert firing_doc["groupKey"] == resolved_doc["groupKey"]
    (a,) = firing_doc["alerts"]
    assert a["labels"]["alertname"] == "HighCPU" and a["labels"]["env"] == "prod"
    assert a["endsAt"] == "0001-01-01T00:00:00Z" and a["fingerprint"] == incident().fingerprint
    assert a["annotations"]["summary"].startswith("HighCPU")
    (r,) = resolved_doc["alerts"]
    assert (resolved_doc["status"], r["status"], r["endsAt"]) == ("resolved", "resolved", "2023-11-14T22:14:50.000000Z")
    assert receiver.requests[0].headers["Idempotency-Key"] == "k1"


@pytest.mark.parametrize(("reply", "transient", "retry_after"), [
    (Reply(500), True, None),
    (Reply(503, {"Retry-After": "7"}), True, 7.0),
    (Reply(429, {"Retry-After": "120"}), True, 120.0),
    (Reply(408), True, None),
    (Reply(400), False, None),
    (Reply(401), False, None),
    (Reply(403), False, None),
    (Reply(404), False, None),
    (Reply(302, {"Location": "http://127.0.0.1:1/"}), False, None),
])
def test_webhook_status_classified_transient_or_permanent(receiver: CountingReceiver, reply: Reply, transient: bool,
                                                          retry_after: float | None) -> None:
    receiver.script([reply])
    b = backend(receiver.url)
    with pytest.raises(TransientError if transient else PermanentError) as e:
        call("k", b.open, incident())
    assert str(reply.status) in str(e.value)
    if transient:
        assert e.value.retry_after == retry_after  # type: ignore[attr-defined]


def test_webhook_connection_refused_and_timeout_are_transient(receiver: CountingReceiver) -> None:
    b = backend(receiver.url, timeout=0.3)
    receiver.script([Reply(200, delay=1.5)])
    with pytest.raises(TransientError, match="timed out"):
        call("k", b.open, incident())
    receiver.down()
    with pytest.raises(TransientError, match="cannot connect"):
        call("k", b.open, incident())


def test_webhook_retry_after_http_date_parsed() -> None:
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1.5)
    assert parse_retry_after("-5", now) == 0.0 and parse_retry_after("99999", now) == 3600.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_webhook_tls_verified_untrusted_cert_is_transient_and_ca_file_works(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    r = CountingReceiver(ssl_context=ctx).up()
    try:
        with pytest.raises(TransientError, match="TLS"):
            call("k", backend(r.url).open, incident())
        assert call("k", backend(r.url, ca_file=str(pki.ca_cert)).open, incident()).id == "T-1"
    finally:
        r.close()


def test_webhook_config_rejects_secret_headers_and_bad_url() -> None:
    bad = WebhookConfig(name="h", url="ftp://x", headers={"Authorization": "Bearer x"}, token_env="A", token_file="b")
    problems = " | ".join(bad.validate())
    assert "http:// or https://" in problems and "must not set Authorization" in problems
    assert "only one of token_env and token_file" in problems


def test_webhook_preview_redacts_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_HOOK_TOKEN2", "zzz-secret")
    b = backend("https://hooks.example/x", token_env="HW_TEST_HOOK_TOKEN2")
    out = b.preview(incident())
    assert out["headers"]["Authorization"] == "<redacted>" and "zzz-secret" not in json.dumps(out)
    assert out["body"]["operation"] == "open"
