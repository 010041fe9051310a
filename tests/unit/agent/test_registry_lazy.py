"""Registry.get imports only the module named after the plugin: an agent with the default `local` ticket
backend does not load requests, urllib3 or smtplib (about 6 MB of RSS) for backends it does not use."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_default_config_and_backends_do_not_import_unused_backend_libraries(tmp_path: Path) -> None:
    cfg = tmp_path / "h.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\nrule_files: []\n")
    out = run(f"""
        import sys
        from hostwarden.agent.config import load_config
        from hostwarden.agent.incidents.outbox import build_backends
        from hostwarden.agent.daemon import tickets_config_of
        config = load_config({str(cfg)!r})
        backends = build_backends(tickets_config_of(config), state_dir={str(tmp_path / 'state')!r})
        print(sorted(backends), "requests" in sys.modules, "smtplib" in sys.modules,
              "hostwarden.exporters.tickets.jira" in sys.modules)
    """)
    assert out == "['local'] False False False"


def test_named_backend_type_is_built_and_unknown_type_still_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "h.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\nrule_files: []\ntickets:\n  backends:\n"
                   "    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/x'}\n    - {name: bad, type: jiraa}\n")
    out = run(f"""
        from hostwarden.agent.config import load_config
        from hostwarden.agent.core.schema import ConfigErrors
        try:
            load_config({str(cfg)!r})
        except ConfigErrors as e:
            print(str(e))
    """)
    assert "unknown type 'jiraa'" in out and "did you mean 'jira'" in out
    assert "webhook" in out  # the list of known types still names every backend
