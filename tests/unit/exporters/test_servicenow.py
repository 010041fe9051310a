"""Pure parts of the `servicenow` backend. (HTTP: tests/contract/test_servicenow.py.)"""

from __future__ import annotations

from hostwarden.exporters.tickets.servicenow import ServiceNowBackend, ServiceNowConfig, _bounded, defuse

from tests.contract.incidents import make_incident
from tests.support.doc_examples import parse_tickets_example


def test_servicenow_documented_example_is_valid() -> None:
    cfg, problems = parse_tickets_example("servicenow")
    assert problems == []
    snow = cfg.backends[0]
    assert snow.urgency_impact["P4"] == [3, 2] and snow.close_code == "Solution provided"


def test_defuse_breaks_code_tags_in_any_case() -> None:
    assert defuse("[code]<b>x</b>[/code] [CODE]y[/Code]") == "[ code]<b>x</b>[/ code] [ CODE]y[/ Code]"
    assert defuse("plain [coder] text") == "plain [coder] text"


def test_bounded_keeps_the_limit_and_says_how_much_was_cut() -> None:
    out = _bounded("x" * 5000, 1000)
    assert len(out) <= 1000 and out.endswith("characters left out)")
    assert _bounded("short", 1000) == "short"


def test_servicenow_record_maps_priority_category_and_protects_reserved_fields() -> None:
    b = ServiceNowBackend(ServiceNowConfig(name="s", url="https://sn.example", user="u", password_env="X",
                                           dry_run=True, category="software", category_map={"disk": "hardware"},
                                           fields={"contact_type": "monitoring", "correlation_id": "evil"}))
    rec = b._record(make_incident(priority="P1"))
    assert (rec["urgency"], rec["impact"], rec["category"]) == ("1", "1", "hardware")
    assert rec["correlation_id"] != "evil" and rec["contact_type"] == "monitoring"
    assert ServiceNowConfig(name="s", url="https://x", user="u", password_env="X",
                            fields={"correlation_id": "x"}).validate() == ["fields must not set correlation_id"]
