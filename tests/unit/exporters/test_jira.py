"""Pure parts of the `jira` backend: ADF, size bounds, transition choice, config. (HTTP: tests/contract.)"""

from __future__ import annotations

import json

import pytest
from hostwarden.agent.core.incident import PermanentError
from hostwarden.exporters.tickets.jira import JiraBackend, JiraConfig, _pick_transition, adf_from_plain, bounded

from tests.contract.incidents import make_incident
from tests.support.doc_examples import parse_tickets_example


def test_jira_documented_example_is_valid() -> None:
    cfg, problems = parse_tickets_example("jira")
    assert problems == []
    jira = cfg.backends[0]
    assert (jira.type, jira.api, jira.project, jira.api_token_file) == ("jira", "cloud", "OPS", "jira-token")


def test_adf_from_plain_makes_headings_and_code_blocks_only() -> None:
    doc = adf_from_plain("== Alert ==\nalert  X\nhost  h\n\n== Diagnosis ==\n[~admin] @here http://x\n")
    assert doc == {"type": "doc", "version": 1, "content": [
        {"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": "Alert"}]},
        {"type": "codeBlock", "content": [{"type": "text", "text": "alert  X\nhost  h"}]},
        {"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": "Diagnosis"}]},
        {"type": "codeBlock", "content": [{"type": "text", "text": "[~admin] @here http://x"}]},
    ]}
    empty = adf_from_plain("\n\n")["content"]
    assert empty == [{"type": "paragraph", "content": [{"type": "text", "text": "(empty)"}]}]


def test_bounded_shrinks_until_the_json_fits() -> None:
    calls: list[int] = []

    def render(budget: int) -> dict:
        calls.append(budget)
        return adf_from_plain("\"" * min(budget, 50_000))  # quotes double in JSON

    out = bounded(render)
    assert len(json.dumps(out)) <= 32_767 and len(calls) >= 2
    with pytest.raises(PermanentError):
        bounded(lambda budget: "x" * 40_000)


def test_pick_transition_by_name_then_by_category() -> None:
    ts = [{"id": "11", "name": "Start", "to": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}},
          {"id": "31", "name": "Close", "to": {"name": "Done", "statusCategory": {"key": "done"}}},
          {"id": "41", "name": "Back", "to": {"name": "Open", "statusCategory": {"key": "new"}}}]
    assert _pick_transition(ts, None, ("done",))["id"] == "31"
    assert _pick_transition(ts, None, ("new", "indeterminate"))["id"] == "41"
    assert _pick_transition(ts, "close", ("done",))["id"] == "31"  # transition name, case-insensitive
    assert _pick_transition(ts, "in progress", ("done",))["id"] == "11"  # or target status name
    assert _pick_transition(ts, "Resolve", ("done",)) is None
    assert _pick_transition(ts[:1], None, ("done",)) is None


def test_jira_fields_map_priority_category_and_extra_fields() -> None:
    b = JiraBackend(JiraConfig(name="j", url="https://j.example", project="OPS", user="u", api_token_env="X",
                               dry_run=True, api="server", category_field="labels", priority_map={"P2": ""},
                               fields={"customfield_1": "v", "summary": "ignored"}))
    inc = make_incident(category="disk io")
    fields = b._fields(inc)
    assert "priority" not in fields  # "" leaves it unset
    assert fields["labels"] == [f"hostwarden-{inc.fingerprint}", "hostwarden", "disk_io"]
    assert fields["customfield_1"] == "v" and fields["summary"] == "FilesystemAlmostFull on web1 /srv"
    assert fields["description"].startswith("h3. Alert") and isinstance(fields["description"], str)


def test_jira_missing_secret_is_reported_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    from hostwarden.agent.core.secrets import SecretError

    monkeypatch.delenv("HW_TEST_UNSET_TOKEN", raising=False)
    with pytest.raises(SecretError, match="HW_TEST_UNSET_TOKEN"):
        JiraBackend(JiraConfig(name="j", url="https://j.example", project="OPS", user="u",
                               api_token_env="HW_TEST_UNSET_TOKEN"))
