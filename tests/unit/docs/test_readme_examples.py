"""The README's configuration examples are what users copy: each must load exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hostwarden.agent.config import load_config
from hostwarden.agent.core.schema import ConfigErrors, Errors
from hostwarden.rules.loader import load_rule_files

README = Path(__file__).resolve().parents[3] / "README.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)


def block_with(key: str) -> str:
    found = [b for b in yaml_blocks() if re.search(rf"^{key}:", b, re.M)]
    assert found, f"README has no yaml block starting with {key}:"
    return found[-1]


@pytest.mark.parametrize("section", ["checks", "tickets", "receiver", "maintenance"])
def test_readme_section_example_loads_without_errors(tmp_path: Path, section: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REDMINE_API_KEY", "JIRA_API_TOKEN", "SNOW_PASSWORD", "ZAMMAD_TOKEN", "GITHUB_TOKEN",
                "SMTP_PASSWORD", "HOOK_SECRET", "HOSTWARDEN_RECEIVER_TOKEN"):
        monkeypatch.setenv(var, "example-secret")
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global: {{state_dir: {tmp_path / 'state'}}}\n{block_with(section)}")
    try:
        config = load_config(str(cfg))
    except ConfigErrors as e:
        pytest.fail(f"README {section} example does not load:\n{e}")
    assert config.sections[section]


def test_readme_rule_example_loads_and_config_shape_example_is_valid(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(block_with("groups"))
    errors = Errors()
    groups = load_rule_files([str(rules)], errors, default_interval=10.0)
    assert [str(i) for i in errors.issues] == []
    assert [r.name for g in groups for r in g.rules] == ["HostOutOfMemory", "HostHighCpuUsage"]
    shape = block_with("global")
    cfg = tmp_path / "shape.yaml"
    (tmp_path / "rules").mkdir()
    cfg.write_text(shape.replace("/var/lib/hostwarden", str(tmp_path / "state")))
    load_config(str(cfg))
