"""The `email` backend without a server: config, subjects, Message-IDs, header safety, dry run.
(Against a real SMTP server: tests/integration/test_email.py.)"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from hostwarden.agent.core.secrets import SecretError
from hostwarden.exporters.tickets.email import EmailBackend, EmailConfig, header_text, short_fp

from tests.contract.incidents import HOSTILE, make_incident, resolved
from tests.support.doc_examples import parse_tickets_example


def cfg(**kw: object) -> EmailConfig:
    return EmailConfig(**(dict(name="mail", from_address="hw@ops.example.com", to=["desk@example.com"]) | kw))


def test_email_documented_example_is_valid_and_from_is_the_key() -> None:
    parsed, problems = parse_tickets_example("email")
    assert problems == []
    mail = parsed.backends[0]
    assert mail.from_address == "hostwarden@ops.example.com" and mail.to == ["helpdesk@example.com"]


def test_email_config_validation() -> None:
    problems = "\n".join(EmailConfig(name="m", to=["nobody"], password_env="P", port=70000).validate())
    for needle in ("'from' must be a mail address", "'to': 'nobody' is not a mail address", "a password needs",
                   "port 70000"):
        assert needle in problems
    assert "'to' must list" in "\n".join(EmailConfig(name="m", from_address="a@b").validate())


def test_header_text_is_one_bounded_line() -> None:
    assert header_text("a\r\nBcc: x@evil\tb\x00c") == "a Bcc: x@evil b c"
    assert header_text("x" * 300, 20) == "x" * 19 + "…"


def test_subject_and_message_ids() -> None:
    b = EmailBackend(cfg(subject_prefix="[ops]"))
    inc = make_incident(title=f"disk {HOSTILE}")
    subject = b.subject(inc)
    assert subject.startswith(f"[ops] [hw:{short_fp(inc.fingerprint)}] disk @admin")
    assert "\r" not in subject and "\n" not in subject
    root = b.root_message_id(inc)
    assert root == f"<hostwarden.{inc.fingerprint}.{int(inc.opened_at)}@ops.example.com>"
    assert b.root_message_id(inc) == root  # deterministic: a retried open reuses it
    later = dataclasses.replace(inc, opened_at=inc.opened_at + 3600)  # the same fingerprint firing anew
    assert b.root_message_id(later) != root
    assert EmailBackend(cfg(message_id_domain="mail.example")).root_message_id(inc).endswith("@mail.example>")


def test_email_dry_run_needs_no_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hostwarden.exporters.tickets.email")
    b = EmailBackend(cfg(dry_run=True, host="127.0.0.1", port=1))
    inc = make_incident()
    ref = b.open(inc)
    b.update(ref, inc, "x")
    b.resolve(ref, resolved(inc))
    assert ref.id == f"dry-run-{inc.fingerprint}"
    assert sum("dry run" in r.getMessage() for r in caplog.records) == 3


def test_email_password_secret_is_resolved_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HW_TEST_NO_SMTP_PASSWORD", raising=False)
    with pytest.raises(SecretError, match="HW_TEST_NO_SMTP_PASSWORD"):
        EmailBackend(cfg(username="u", password_env="HW_TEST_NO_SMTP_PASSWORD"))
