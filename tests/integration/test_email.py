"""The `email` backend against a real SMTP server process (aiosmtpd) on 127.0.0.1: threading, TLS, auth."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.tickets.base import reset_idempotency_key, set_idempotency_key
from hostwarden.exporters.tickets.email import EmailBackend, EmailConfig

from tests.contract.incidents import HOSTILE, make_incident, resolved
from tests.support.agent import ROOT, free_port
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration
PASSWORD = "smtp-pass-1234"


@dataclass
class Sink:
    proc: subprocess.Popen
    port: int
    maildir: Path

    def messages(self, want: int, timeout: float = 10) -> list[tuple[EmailMessage, dict]]:
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(self.maildir.glob("*.eml"), key=lambda p: int(p.stem))
            if len(files) >= want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        out = []
        for f in files:
            msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
            out.append((msg, json.loads(f.with_suffix(".json").read_text())))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_sink(directory: Path, *args: str, env: dict[str, str] | None = None) -> Sink:
    port = free_port()
    maildir = directory / "mail"
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.smtp_sink", "--listen", f"127.0.0.1:{port}",
                             "--maildir", str(maildir), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until READY (or EOF when it died)
    if not line.startswith("READY"):
        proc.wait(5)
        raise RuntimeError(f"smtp sink did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return Sink(proc, port, maildir)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Sink]:
    s = start_sink(tmp_path, "--refuse-rcpt", "full@example.com=452", "--refuse-rcpt", "gone@example.com=550")
    yield s
    s.stop()


def backend(port: int, **kw: object) -> EmailBackend:
    cfg = dict(name="mail", type="email", host="127.0.0.1", port=port, security="none",
               from_address="hostwarden@ops.example.com", to=["helpdesk@example.com"], timeout=5.0) | kw
    return EmailBackend(EmailConfig(**cfg))  # type: ignore[arg-type]


def test_email_lifecycle_threads_every_message_to_the_first(sink: Sink) -> None:
    b = backend(sink.port, subject_prefix="[ops]")
    inc = make_incident()
    assert b.find(inc.fingerprint) is None
    ref = b.open(inc)
    root = f"<hostwarden.{inc.fingerprint}.{int(inc.opened_at)}@ops.example.com>"
    assert ref == TicketRef("mail", root, "")
    b.update(ref, inc, "escalated: warning -> critical")
    b.resolve(ref, resolved(inc))
    b.reopen(ref, inc)
    msgs = sink.messages(4)
    assert len(msgs) == 4
    first, meta = msgs[0]
    short = inc.fingerprint[:8]
    assert first["Subject"] == f"[ops] [hw:{short}] FilesystemAlmostFull on web1 /srv"
    assert first["Message-ID"] == root and first["In-Reply-To"] is None
    assert first["From"] == "hostwarden@ops.example.com" and first["To"] == "helpdesk@example.com"
    assert first["X-Hostwarden-Fingerprint"] == inc.fingerprint and first["Auto-Submitted"] == "auto-generated"
    assert meta == {"mail_from": "hostwarden@ops.example.com", "rcpt_tos": ["helpdesk@example.com"], "login": None,
                    "tls": False}
    body = first.get_content()
    assert "== Alert ==" in body and inc.fingerprint in body
    ids = {root}
    for msg, _ in msgs[1:]:
        assert msg["Subject"] == f"Re: [ops] [hw:{short}] FilesystemAlmostFull on web1 /srv"
        assert msg["In-Reply-To"] == root and msg["References"] == root
        assert msg["Message-ID"] not in ids
        ids.add(msg["Message-ID"])
    assert "escalated: warning -> critical" in msgs[1][0].get_content()
    assert "Resolved after 9m" in msgs[2][0].get_content()
    assert "Firing again" in msgs[3][0].get_content()


def test_email_retried_operation_reuses_its_message_id(sink: Sink) -> None:
    b = backend(sink.port)
    inc = make_incident()
    ref = b.open(inc)
    assert b.open(inc) == ref  # a retried open: the same Message-ID, which the helpdesk drops as a duplicate
    token = set_idempotency_key("hw-op-42")
    try:
        b.update(ref, inc, "note")
        b.update(ref, inc, "note")  # the outbox retrying the same operation
    finally:
        reset_idempotency_key(token)
    token = set_idempotency_key("hw-op-43")
    try:
        b.update(ref, inc, "note")  # another operation with the same text
    finally:
        reset_idempotency_key(token)
    ids = [m["Message-ID"] for m, _ in sink.messages(5)]
    assert ids[0] == ids[1] and ids[2] == ids[3] and len(set(ids)) == 3


def test_email_hostile_labels_cannot_inject_headers_or_recipients(sink: Sink) -> None:
    b = backend(sink.port)
    inc = make_incident(labels={"team": HOSTILE}, title=f"disk full {HOSTILE}", diagnosis=HOSTILE)
    b.open(inc)
    (msg, meta), = sink.messages(1)
    assert meta["rcpt_tos"] == ["helpdesk@example.com"]
    assert msg["Bcc"] is None and msg.get_all("To") == ["helpdesk@example.com"]
    assert "\n" not in msg["Subject"] and "Bcc: x@evil" in msg["Subject"]  # inert text in one header line
    assert HOSTILE.replace("\r\n", "\n") in msg.get_content().replace("\r\n", "\n")


def test_email_refused_recipient_temporary_is_transient_permanent_is_permanent(sink: Sink) -> None:
    with pytest.raises(TransientError, match="452"):
        backend(sink.port, to=["full@example.com"]).open(make_incident())
    with pytest.raises(PermanentError, match="550"):
        backend(sink.port, to=["gone@example.com"]).open(make_incident())
    b = backend(sink.port, to=["helpdesk@example.com", "gone@example.com"])
    b.open(make_incident())  # one recipient accepted: delivered (the refusal is logged)
    assert [m["rcpt_tos"] for _, m in sink.messages(1)] == [["helpdesk@example.com"]]


def test_email_server_down_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientError, match="cannot send mail"):
        backend(free_port()).open(make_incident())


def test_email_starttls_with_auth_and_custom_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = make_pki(tmp_path / "pki")
    s = start_sink(tmp_path, "--starttls", str(pki.server_cert), str(pki.server_key), "--auth-user", "bot",
                   env={"SMTP_SINK_PASSWORD": PASSWORD})
    try:
        monkeypatch.setenv("HW_SMTP_PASSWORD", PASSWORD)
        good = backend(s.port, security="starttls", ca_file=str(pki.ca_cert), username="bot",
                       password_env="HW_SMTP_PASSWORD")
        good.open(make_incident())
        (_msg, meta), = s.messages(1)
        assert meta["tls"] is True and meta["login"] == "bot"

        untrusted = backend(s.port, security="starttls", username="bot", password_env="HW_SMTP_PASSWORD")
        with pytest.raises(PermanentError, match="certificate"):  # the system CAs do not know the test CA
            untrusted.open(make_incident())

        monkeypatch.setenv("HW_SMTP_PASSWORD", "wrong-password")
        wrong = backend(s.port, security="starttls", ca_file=str(pki.ca_cert), username="bot",
                        password_env="HW_SMTP_PASSWORD")
        with pytest.raises(PermanentError, match="535") as exc:
            wrong.open(make_incident())
        assert "wrong-password" not in str(exc.value)

        plain = backend(s.port, security="none")  # the server requires STARTTLS before anything else
        with pytest.raises(PermanentError, match="530"):
            plain.open(make_incident())
        assert len(s.messages(1, timeout=0.2)) == 1
    finally:
        s.stop()


def test_email_implicit_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    s = start_sink(tmp_path, "--smtps", str(pki.server_cert), str(pki.server_key))
    try:
        backend(s.port, security="tls", ca_file=str(pki.ca_cert)).open(make_incident())
        (_msg, meta), = s.messages(1)
        assert meta["tls"] is True
        with pytest.raises(TransientError):  # plain SMTP against a TLS port: the dialogue breaks, retry later
            backend(s.port, security="none", timeout=0.5).open(make_incident())
    finally:
        s.stop()


def test_email_starttls_required_but_not_offered_is_permanent(sink: Sink) -> None:
    with pytest.raises(PermanentError, match="does not offer STARTTLS"):
        backend(sink.port, security="starttls").open(make_incident())


def test_email_dry_run_sends_nothing(sink: Sink) -> None:
    b = backend(sink.port, dry_run=True)
    inc = make_incident()
    ref = b.open(inc)
    b.update(ref, inc, "x")
    b.resolve(ref, resolved(inc))
    assert ref.id == f"dry-run-{inc.fingerprint}"
    assert sink.messages(0, timeout=0.2) == []


class DribblingServer:
    """A TCP server on 127.0.0.1 that greets with endless `220-` continuation lines, one every 50 ms: each read
    returns well within the timeout, so only a deadline on the whole session ends it (bounded here: 30 s)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = int(self.sock.getsockname()[1])
        self.lines_sent = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    conn.sendall(b"220-still greeting\r\n")
                except OSError:
                    return  # the client gave up
                self.lines_sent += 1
                time.sleep(0.05)

    def close(self) -> None:
        self.sock.close()
        self._thread.join(35)


def test_email_server_dribbling_endless_reply_aborted_at_session_deadline_transient() -> None:
    server = DribblingServer()
    try:
        b = EmailBackend(EmailConfig(name="mail", host="127.0.0.1", port=server.port, security="none",
                                     from_address="hw@ops.example.com", to=["desk@example.com"], timeout=0.5))
        with pytest.raises(TransientError, match=r"mail: SMTP session with 127\.0\.0\.1 took longer than 2s"):
            b.open(make_incident())
    finally:
        server.close()
    assert 10 < server.lines_sent < 600  # it was answering all along, and the client left long before 30 s
