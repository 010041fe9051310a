"""web.external_url / web.runbook_base_url: validation and the defaults the agent derives from `web:`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostwarden.agent.config import load_config
from hostwarden.agent.core.schema import ConfigErrors
from hostwarden.agent.incidents.runbooks import agent_urls


def config(tmp_path: Path, web: str) -> object:
    path = tmp_path / "hostwarden.yaml"
    path.write_text(f"global: {{state_dir: {tmp_path}, hostname: web-01}}\nweb:\n{web}rule_files: []\n")
    return load_config(str(path))


def test_defaults_agent_url_from_hostname_and_port_runbooks_resolved_there(tmp_path: Path) -> None:
    cfg = config(tmp_path, "  listen_address: 0.0.0.0:19850\n")
    assert agent_urls(cfg, tls=False) == ("http://web-01:19850/", "http://web-01:19850/")
    assert agent_urls(cfg, tls=True)[0] == "https://web-01:19850/"


def test_configured_urls_win_external_gets_a_trailing_slash(tmp_path: Path) -> None:
    cfg = config(tmp_path, "  external_url: https://mon.example.org/web-01\n"
                           "  runbook_base_url: https://wiki.example.org/runbooks/\n")
    assert agent_urls(cfg, tls=False) == ("https://mon.example.org/web-01/", "https://wiki.example.org/runbooks/")


@pytest.mark.parametrize("key", ["external_url", "runbook_base_url"])
@pytest.mark.parametrize("value", ["runbooks/", "ftp://x/", "javascript:alert(1)", "http://"])
def test_urls_must_be_absolute_http(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        config(tmp_path, f"  {key}: '{value}'\n")
    assert f"web.{key}" in str(e.value)
