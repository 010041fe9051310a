"""The `tickets:` config section: defaults, backends by type, routing, errors with locations."""

from __future__ import annotations

import pytest
from hostwarden.agent.core.schema import ConfigErrors, Errors
from hostwarden.agent.core.yamlsrc import load_yaml
from hostwarden.exporters.tickets.config import TicketsConfig, parse_tickets


def parse(text: str) -> TicketsConfig:
    errors = Errors()
    node = load_yaml(text, "agent.yaml")
    cfg = parse_tickets(node, errors, node.loc, "/etc/hostwarden")
    errors.raise_if_any()
    return cfg


def test_tickets_config_absent_section_uses_local_backend_and_defaults() -> None:
    errors = Errors()
    cfg = parse_tickets(None, errors, load_yaml("{}", "a.yaml").loc, "/")
    assert not errors
    assert [(b.name, b.type) for b in cfg.backends] == [("local", "local")]
    assert (cfg.reopen_window, cfg.update_interval, cfg.poll_interval) == (3600, 300, 300)
    assert cfg.route_for({"team": "x"}) == "local"


def test_tickets_config_backends_by_type_and_routes() -> None:
    cfg = parse("backends:\n"
                "  - {name: ops, type: local}\n"
                "  - {name: hook, type: webhook, url: 'https://hooks.example.com/x', on_resolve: comment}\n"
                "  - {name: dbhook, type: webhook, url: 'https://db.example.com/x', match: {team: db}}\n"
                "route:\n  - {match_re: {instance: 'web-.*'}, backend: hook}\n"
                "reopen_window: 0s\nstorm_threshold: 5\n"
                "priorities: {warning: {capacity: P2}}\nsla: {P2: {acknowledge: 30m}}\n")
    assert [b.type for b in cfg.backends] == ["local", "webhook", "webhook"]
    assert cfg.backend("hook").on_resolve == "comment"
    assert cfg.route_for({"instance": "web-3"}) == "hook"
    assert cfg.route_for({"team": "db"}) == "dbhook"
    assert cfg.route_for({}) == "ops"
    assert cfg.reopen_window == 0
    assert cfg.policy().priority("warning", "capacity") == "P2"
    assert cfg.policy().targets("P2").acknowledge == 1800


def test_tickets_config_errors_located_and_all_reported() -> None:
    with pytest.raises(ConfigErrors) as e:
        parse("backends:\n"
              "  - {name: ops, type: local}\n"
              "  - {name: ops, type: local}\n"
              "  - {name: x, type: jirra}\n"
              "reopen_windw: 1h\n"
              "sla: {P9: {acknowledge: 1m}}\n")
    text = str(e.value)
    assert "agent.yaml:3:5: tickets.backends[1]: backend name 'ops' is already used at agent.yaml:2:5" in text
    assert "agent.yaml:4:21: tickets.backends[2]: unknown type 'jirra'" in text
    assert "agent.yaml:5:1: unknown key 'tickets.reopen_windw' (did you mean 'reopen_window'?)" in text
    assert "agent.yaml:6:7: tickets.sla: unknown priority 'P9'" in text
    with pytest.raises(ConfigErrors) as e:
        parse("backends: [{name: ops, type: local}]\nroute: [{match: {a: b}, backend: nowhere}]\nstorm_threshold: 0\n")
    text = str(e.value)
    assert "agent.yaml:2:9: tickets.route[0]: unknown backend 'nowhere'; configured: ops" in text
    assert "storm_threshold must be at least 1" in text


def test_tickets_config_empty_backends_turns_ticketing_off() -> None:
    cfg = parse("backends: []\n")
    assert cfg.backends == () and cfg.route_for({}) is None
