"""exporters.tickets.redmine without a server: config from YAML, dry run, name resolution, poll state mapping.
The requests themselves are exercised against a real Redmine in tests/integration/test_redmine.py."""

from __future__ import annotations

import logging

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef
from hostwarden.agent.core.schema import ConfigErrors, Errors
from hostwarden.agent.core.secrets import SecretError
from hostwarden.agent.core.yamlsrc import load_yaml
from hostwarden.exporters.tickets.base import registry
from hostwarden.exporters.tickets.config import parse_tickets
from hostwarden.exporters.tickets.redmine import RedmineBackend, RedmineConfig, _Meta, _pick

from tests.support.agent import free_port
from tests.support.ticket_incidents import make_incident


def parse(backend_yaml: str) -> RedmineConfig:
    errors = Errors()
    node = load_yaml(f"backends:\n  - {backend_yaml}\n", "agent.yaml")
    cfg = parse_tickets(node, errors, node.loc, "/etc/hostwarden")
    errors.raise_if_any()
    return cfg.backends[0]


def test_redmine_registered_with_its_config() -> None:
    assert registry()["redmine"] is RedmineBackend and RedmineBackend.Config is RedmineConfig


def test_redmine_config_from_yaml_all_keys() -> None:
    cfg = parse("{name: ops, type: redmine, url: 'https://redmine.example.com', project: ops, api_key_env: K, "
                "fingerprint_field: 7, tracker: Bug, priority_map: {P1: Immediate, P4: 2}, resolved_status: 3, "
                "reopened_status: New, assignee: 'Ann Oncall', category_map: {disk: Storage}, "
                "text_formatting: common_mark, extra_fields: {is_private: false}, timeout: 5s, tls_verify: false}")
    assert isinstance(cfg, RedmineConfig)
    assert (cfg.fingerprint_field, cfg.priority_map, cfg.resolved_status) == ("7", {"P1": "Immediate", "P4": "2"}, "3")
    assert (cfg.timeout, cfg.tls_verify, cfg.extra_fields) == (5.0, False, {"is_private": False})


@pytest.mark.parametrize(("yaml_text", "problem"), [
    ("{name: ops, type: redmine, project: ops, api_key_env: K}", "missing required key 'url'"),
    ("{name: ops, type: redmine, url: 'ftp://x', project: ops, api_key_env: K}", "url must start with http"),
    ("{name: ops, type: redmine, url: 'https://x', project: ops}", "exactly one of api_key_env and api_key_file"),
    ("{name: ops, type: redmine, url: 'https://x', project: ops, api_key_env: K, api_key_file: f}", "exactly one"),
    ("{name: ops, type: redmine, url: 'https://x', project: ops, api_key_env: K, priority_map: {P9: Low}}",
     "unknown priority 'P9'"),
    ("{name: ops, type: redmine, url: 'https://x', project: ops, api_key_env: K, extra_fields: {subject: s}}",
     "extra_fields must not set subject"),
    ("{name: ops, type: redmine, url: 'https://x', project: ops, api_key_env: K, text_formatting: wiki}",
     "must be one of 'textile'"),
])
def test_redmine_config_invalid_reports_problem_with_location(yaml_text: str, problem: str) -> None:
    with pytest.raises(ConfigErrors, match=r"agent.yaml:2:\d+: .*" + problem):
        parse(yaml_text)


def test_redmine_missing_secret_raises_secret_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HW_NO_SUCH_KEY", raising=False)
    with pytest.raises(SecretError, match="HW_NO_SUCH_KEY"):
        RedmineBackend(RedmineConfig(name="ops", url="https://x", project="ops", api_key_env="HW_NO_SUCH_KEY"))


def test_redmine_dry_run_sends_nothing_and_logs_payload(caplog: pytest.LogCaptureFixture) -> None:
    # the URL points at a closed port: any request would raise TransientError
    b = RedmineBackend(RedmineConfig(name="ops", url=f"http://127.0.0.1:{free_port()}", project="ops",
                                     api_key_env="UNSET_IN_DRY_RUN", dry_run=True, tracker="Bug"))
    inc = make_incident(priority="P1")
    with caplog.at_level(logging.INFO, logger="hostwarden.exporters.tickets.redmine"):
        assert b.find(inc.fingerprint) is None
        ref = b.open(inc)
        b.update(ref, inc, "escalated")
        b.resolve(ref, inc)
        b.reopen(ref, inc)
        assert b.poll([ref]) == []
    assert ref == TicketRef("ops", f"dry-run-{inc.fingerprint}")
    text = caplog.text
    assert "would POST /issues.json" in text and "priority='Immediate'" in text and "tracker='Bug'" in text
    assert f"'value': '{inc.fingerprint}'" in text and text.count("would PUT") == 3


def test_pick_by_id_name_and_case_insensitive_name_else_lists_choices() -> None:
    items = [{"id": 1, "name": "New"}, {"id": 3, "name": "Resolved"}]
    assert _pick(items, "3", "status") == 3
    assert _pick(items, "Resolved", "status") == 3
    assert _pick(items, "resolved", "status") == 3
    with pytest.raises(PermanentError, match=r"status 'Done' not found; known: New \(1\), Resolved \(3\)"):
        _pick(items, "Done", "status")


def _meta(**kw: object) -> _Meta:
    base = dict(project_id=1, fingerprint_field_id=1, tracker_id=None, priority_ids={}, resolved_status_id=3,
                reopened_status_id=1, closed_status_ids=frozenset({5, 6}), initial_status_ids=frozenset({1}),
                assignee_id=None, self_id=9, category_ids={})
    return _Meta(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("issue", "state", "assignee"), [
    ({"status": {"id": 1}}, "open", ""),
    ({"status": {"id": 1}, "assigned_to": {"id": 6, "name": "Ann Oncall"}}, "acknowledged", "Ann Oncall"),
    ({"status": {"id": 1}, "assigned_to": {"id": 9, "name": "Hostwarden"}}, "open", "Hostwarden"),  # ourselves
    ({"status": {"id": 1}, "assigned_to": {"id": 4, "name": "Team"}}, "open", "Team"),  # configured assignee
    ({"status": {"id": 2}}, "acknowledged", ""),  # In Progress
    ({"status": {"id": 3}}, "resolved", ""),
    ({"status": {"id": 5}, "assigned_to": {"id": 6, "name": "Ann Oncall"}}, "closed", "Ann Oncall"),
])
def test_redmine_remote_status_maps_person_actions(issue: dict, state: str, assignee: str) -> None:
    b = RedmineBackend(RedmineConfig(name="ops", url="https://x", project="ops", api_key_env="K", dry_run=True))
    ref = TicketRef("ops", "12")
    got = b._remote_status(ref, issue | {"updated_on": "2024-01-02T03:04:05Z"}, _meta(assignee_id=4))
    assert (got.ref, got.state, got.assignee, got.changed_at) == (ref, state, assignee, 1704164645.0)


def test_redmine_poll_without_own_refs_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_KEY", "k" * 40)
    b = RedmineBackend(RedmineConfig(name="ops", url=f"http://127.0.0.1:{free_port()}", project="ops",
                                     api_key_env="HW_TEST_KEY"))  # a request would raise TransientError
    assert b.poll([TicketRef("other", "1"), TicketRef("ops", "dry-run-x")]) == []


def test_redmine_preview_is_the_open_request_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_KEY", "k" * 40)
    b = RedmineBackend(RedmineConfig(name="ops", url=f"http://127.0.0.1:{free_port()}/", project="ops",
                                     api_key_env="HW_TEST_KEY", fingerprint_field_id=7,
                                     extra_fields={"is_private": True, "custom_fields": [{"id": 3, "value": "x"}]}),
                       state_dir="/nonexistent", check_only=True)  # build_backends' context is accepted
    inc = make_incident(priority="P3")
    got = b.preview(inc)
    assert (got["method"], got["url"]) == ("POST", f"{b.config.url.rstrip('/')}/issues.json")
    issue = got["body"]["issue"]
    assert issue["custom_fields"] == [{"id": 7, "value": inc.fingerprint}, {"id": 3, "value": "x"}]
    assert (issue["project_id"], issue["priority"], issue["is_private"]) == ("ops", "High", True)
    assert issue["subject"] == inc.title and "h3. Labels" in issue["description"]
    assert "k" * 40 not in repr(got)
