"""Where state lives, so the defaults work for whoever runs the agent.

systemd (`StateDirectory=`) → $STATE_DIRECTORY; root → /var/lib/hostwarden; anyone else →
$XDG_STATE_HOME/hostwarden or ~/.local/state/hostwarden.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
DEFAULT_CONFIG = PACKAGE_CONFIG_DIR / "hostwarden.yaml"


def default_state_dir() -> str:
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return env.split(":")[0]
    if os.geteuid() == 0:
        return "/var/lib/hostwarden"
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return str(base / "hostwarden")


def default_config_path() -> str:
    """/etc/hostwarden/hostwarden.yaml when installed, else the shipped default."""
    etc = Path("/etc/hostwarden/hostwarden.yaml")
    if etc.exists() and os.access(etc, os.R_OK):
        return str(etc)
    return str(DEFAULT_CONFIG)


def ensure_dir(path: str, mode: int = 0o750) -> str:
    Path(path).mkdir(parents=True, exist_ok=True, mode=mode)
    return path
