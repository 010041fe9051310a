"""The YAML examples of docs/backends.md, so tests keep the documented configs valid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.yamlsrc import load_yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends.md"


def yaml_blocks(heading: str) -> list[str]:
    """The ```yaml blocks of the `## <heading>` section."""
    text = DOC.read_text()
    m = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"no section '## {heading}' in {DOC}"
    return re.findall(r"```yaml\n(.*?)```", m.group(1), re.S)


def parse_tickets_example(heading: str) -> tuple[Any, list[str]]:
    """The section's first example's `tickets:` parsed as the agent would; (config, problems)."""
    from hostwarden.exporters.tickets.config import parse_tickets

    doc = load_yaml(yaml_blocks(heading)[0], str(DOC))
    errors = Errors()
    cfg = parse_tickets(doc["tickets"], errors, doc.value_loc("tickets"), str(DOC.parent))
    return cfg, [str(i) for i in errors.issues]
