"""exporters.tickets.rt without a server: config from YAML, credentials, dry run, TicketSQL quoting, poll mapping.
The REST2 requests are exercised against a real RT in tests/integration/test_rt.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hostwarden.agent.core.incident import TicketRef
from hostwarden.agent.core.schema import ConfigErrors, Errors
from hostwarden.agent.core.yamlsrc import load_yaml
from hostwarden.exporters.tickets.base import registry
from hostwarden.exporters.tickets.config import parse_tickets
from hostwarden.exporters.tickets.rt import RtBackend, RtConfig, _sql_quote

from tests.support.agent import free_port
from tests.support.ticket_incidents import make_incident

BASE = "name: helpdesk, type: rt, url: 'https://rt.example.com', queue: General"


def parse(backend_yaml: str) -> RtConfig:
    errors = Errors()
    node = load_yaml(f"backends:\n  - {{{backend_yaml}}}\n", "agent.yaml")
    cfg = parse_tickets(node, errors, node.loc, "/etc/hostwarden")
    errors.raise_if_any()
    return cfg.backends[0]


def test_rt_registered_with_its_config() -> None:
    assert registry()["rt"] is RtBackend and RtBackend.Config is RtConfig


def test_rt_config_from_yaml_token_file_and_mapping() -> None:
    cfg = parse(f"{BASE}, token_file: /run/credentials/hostwarden.service/rt, priority_map: {{P1: 99}}, "
                "owner: oncall, category_field: Category, content_type: text/html, extra_fields: {AdminCc: [a@b]}")
    assert isinstance(cfg, RtConfig)
    assert (cfg.queue, cfg.priority_map, cfg.owner, cfg.content_type) == ("General", {"P1": 99}, "oncall", "text/html")


@pytest.mark.parametrize(("extra", "problem"), [
    ("", "credentials: set token_env or token_file, or username"),
    (", token_env: T, username: u, password_env: P", "either a token"),
    (", token_env: T, token_file: f", "at most one of"),
    (", username: u", "credentials: set token_env"),
    (", token_env: T, fingerprint_field: \"a}b\"", "must not contain braces"),
    (", token_env: T, priority_map: {P1: high}", "expected an integer"),
    (", token_env: T, extra_fields: {Subject: x}", "must not set Subject"),
])
def test_rt_config_invalid_reports_problem(extra: str, problem: str) -> None:
    with pytest.raises(ConfigErrors, match=r"agent.yaml:2:\d+: .*" + problem):
        parse(BASE + extra)


def test_rt_basic_auth_password_from_file_is_used(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2-secret\n")
    b = RtBackend(RtConfig(name="h", url="https://rt.example.com", queue="General", username="hw",
                           password_file=str(pw)))
    assert b.client._session.auth == ("hw", "hunter2-secret")
    assert b.client.base_url == "https://rt.example.com/REST/2.0"


def test_rt_token_sent_as_authorization_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_RT_TOKEN", "1-2-abcdef")
    b = RtBackend(RtConfig(name="h", url="https://rt.example.com/", queue="General", token_env="HW_RT_TOKEN"))
    assert b.client._session.headers["Authorization"] == "token 1-2-abcdef"
    assert b.client.redact("x token 1-2-abcdef y") == "x <redacted> y"


def test_rt_sql_quote_escapes_quote_and_backslash() -> None:
    assert _sql_quote("a'b\\c") == "a\\'b\\\\c"


def test_rt_dry_run_sends_nothing_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    b = RtBackend(RtConfig(name="h", url=f"http://127.0.0.1:{free_port()}", queue="General", token_env="UNSET",
                           dry_run=True, category_field="Category"))
    inc = make_incident(priority="P2")
    with caplog.at_level(logging.INFO, logger="hostwarden.exporters.tickets.rt"):
        assert b.find(inc.fingerprint) is None
        ref = b.open(inc)
        b.update(ref, inc, "escalated")
        b.resolve(ref, inc)
        b.reopen(ref, inc)
        assert b.poll([ref]) == []
    assert ref.id == f"dry-run-{inc.fingerprint}"
    assert "would POST /ticket" in caplog.text and "Priority=75" in caplog.text
    assert f"'alert_fingerprint': '{inc.fingerprint}'" in caplog.text and "'Category': 'disk'" in caplog.text
    assert caplog.text.count("would comment") == 3 and "would PUT /ticket/" in caplog.text


def test_rt_create_payload_extra_fields_never_override_fingerprint() -> None:
    b = RtBackend(RtConfig(name="h", url="https://rt.example.com", queue="General", token_env="UNSET", dry_run=True,
                           owner="oncall", extra_fields={"AdminCc": ["ops@example.com"],
                                                         "CustomFields": {"alert_fingerprint": "x", "Team": "db"}}))
    inc = make_incident(priority="P4")
    body = b._create_payload(inc)
    assert body["CustomFields"] == {"alert_fingerprint": inc.fingerprint, "Team": "db"}
    assert (body["Queue"], body["Owner"], body["Priority"], body["AdminCc"]) == \
        ("General", "oncall", 25, ["ops@example.com"])
    assert body["ContentType"] == "text/plain" and "== Labels ==" in body["Content"]


@pytest.mark.parametrize(("item", "state", "assignee"), [
    ({"Status": "new", "Owner": {"id": "Nobody"}}, "open", ""),
    ({"Status": "open", "Owner": {"id": "Nobody"}}, "open", ""),  # our reopened status
    ({"Status": "open", "Owner": {"id": "ann"}}, "acknowledged", "ann"),
    ({"Status": "new", "Owner": {"id": "oncall"}}, "open", ""),  # the configured owner is not a person's action
    ({"Status": "stalled", "Owner": {"id": "Nobody"}}, "acknowledged", ""),
    ({"Status": "resolved", "Owner": {"id": "ann"}}, "resolved", "ann"),
    ({"Status": "rejected", "Owner": {"id": "Nobody"}}, "closed", ""),
])
def test_rt_remote_status_maps_person_actions(item: dict, state: str, assignee: str) -> None:
    b = RtBackend(RtConfig(name="h", url="https://rt.example.com", queue="General", token_env="UNSET", dry_run=True,
                           owner="oncall"))
    ref = TicketRef("h", "7")
    got = b._remote_status(ref, item | {"LastUpdated": "2024-01-02T03:04:05Z"})
    assert (got.state, got.assignee, got.changed_at) == (state, assignee, 1704164645.0)


def test_rt_preview_is_the_open_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_RT_TOKEN", "1-2-abcdef")
    b = RtBackend(RtConfig(name="h", url="https://rt.example.com/", queue="General", token_env="HW_RT_TOKEN"),
                  state_dir="/nonexistent", check_only=True)
    inc = make_incident()
    got = b.preview(inc)
    assert (got["method"], got["url"]) == ("POST", "https://rt.example.com/REST/2.0/ticket")
    assert got["body"]["CustomFields"] == {"alert_fingerprint": inc.fingerprint}
    assert got["body"]["Subject"] == inc.title
