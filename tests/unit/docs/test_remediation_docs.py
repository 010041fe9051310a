"""docs/remediation.md documents every remediation key with its default, and the README's remediation
example (a ```yml block, so the README rule-example test keeps its own block) loads as written."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from hostwarden.agent.core.remedy import (
    ACTION_KINDS,
    ACTION_OPTIONS,
    DEFAULT_AFTER,
    DEFAULT_MAX,
    DEFAULT_TIMEOUT,
    DEFAULT_VERIFY_WITHIN,
    DEFAULT_WITHIN,
    PLAN_KEYS,
    RemediationSettings,
)
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.units import format_duration
from hostwarden.rules.loader import load_rule_files

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "remediation.md"


def table_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `([a-z_.]+)` \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_every_key_is_documented_with_its_default():
    rows = table_rows()
    for key in (*PLAN_KEYS, *ACTION_KINDS, *ACTION_OPTIONS):
        assert key in rows, f"docs/remediation.md does not document {key!r}"
    for f in dataclasses.fields(RemediationSettings):
        assert f"remediation.{f.name}" in rows
        assert f"`{str(f.default).lower()}`" in rows[f"remediation.{f.name}"]
    assert f"`{format_duration(DEFAULT_AFTER)}`" in rows["after"]
    assert f"`{format_duration(DEFAULT_VERIFY_WITHIN)}`" in rows["verify_within"]
    assert f"`{DEFAULT_MAX} within {format_duration(DEFAULT_WITHIN)}`" in rows["max"]
    assert f"`{format_duration(DEFAULT_TIMEOUT)}`" in rows["timeout"]
    assert "`critical`" in rows["severity"]


def test_doc_and_readme_rule_examples_load(tmp_path: Path):
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    readme = re.findall(r"```yml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    examples = [b for b in blocks if b.startswith("groups:")] + [b for b in readme if "remediate:" in b]
    assert len(examples) == 2
    for i, text in enumerate(examples):
        f = tmp_path / f"r{i}.yaml"
        f.write_text(text)
        errors = Errors()
        (group,) = load_rule_files([str(f)], errors, default_interval=10.0)
        assert [str(e) for e in errors.issues] == []
        assert group.rules[0].remediate is not None
