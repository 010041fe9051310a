"""Pure parts of the `zammad` backend. (HTTP: tests/contract/test_zammad.py.)"""

from __future__ import annotations

from hostwarden.exporters.tickets.zammad import ZammadBackend, ZammadConfig

from tests.contract.incidents import HOSTILE, make_incident
from tests.support.doc_examples import parse_tickets_example


def test_zammad_documented_example_is_valid() -> None:
    cfg, problems = parse_tickets_example("zammad")
    assert problems == []
    assert cfg.backends[0].group == "Ops" and cfg.backends[0].internal is True


def test_zammad_payload_tags_priority_owner_and_escaped_html() -> None:
    b = ZammadBackend(ZammadConfig(name="z", url="https://z.example", token_env="X", customer="m@example.com",
                                   owner="jdoe", tag_prefix="hw-", tags=["hostwarden", "ops"], dry_run=True))
    inc = make_incident(priority="P4", diagnosis=HOSTILE)
    p = b._ticket_payload(inc)
    assert p["tags"] == f"hw-{inc.fingerprint},hostwarden,ops"
    assert (p["priority"], p["owner"], p["customer_id"]) == ("1 low", "jdoe", "guess:m@example.com")
    assert "<img" not in p["article"]["body"] and "&lt;img" in p["article"]["body"]
