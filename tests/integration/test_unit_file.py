"""config/hostwarden.service: `systemd-analyze verify` accepts it without a single warning, its
offline security exposure stays low, and the settings the agent relies on are there."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hostwarden.agent import install
from hostwarden.agent.cmd_run import add_commands as add_run_commands
from hostwarden.agent.core.paths import PACKAGE_CONFIG_DIR

pytestmark = pytest.mark.integration

UNIT = PACKAGE_CONFIG_DIR / "hostwarden.service"


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze (Debian package 'systemd') is not installed")
    return path


def unit_with_existing_binary(tmp_path: Path) -> Path:
    """verify checks that ExecStart's binary exists: point it at one that does, keep everything else."""
    text = install.render_unit(UNIT.read_text(), Path("/usr"))
    text = text.replace("ExecStart=/usr/bin/hostwarden", "ExecStart=/bin/true", 1)
    assert "ExecStart=/bin/true run --config /etc/hostwarden/hostwarden.yaml\n" in text
    out = tmp_path / "hostwarden.service"
    out.write_text(text)
    return out


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def our_findings(output: str) -> list[str]:
    """verify also loads every installed unit; other packages' warnings (e.g. request-tracker5.service's
    dependencies on mysql/apache2, installed by the RT test setup) are not about our unit."""
    return [line for line in output.splitlines()
            if line.strip() and not re.match(r"^/(lib|usr/lib|etc)/systemd/system/(?!hostwarden)", line)]


def test_unit_file_systemd_analyze_verify_no_warnings(tmp_path: Path) -> None:
    res = subprocess.run([systemd_analyze(), "verify", str(unit_with_existing_binary(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert our_findings(res.stdout + res.stderr) == []


def test_unit_file_as_installed_verifies_no_warnings(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    launcher = venv / "bin" / "hostwarden"
    launcher.symlink_to("/bin/true")
    out = tmp_path / "hostwarden.service"
    out.write_text(install.render_unit(UNIT.read_text(), venv))
    res = subprocess.run([systemd_analyze(), "verify", str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert our_findings(res.stdout + res.stderr) == []


def test_unit_file_missing_binary_verify_reports_it(tmp_path: Path) -> None:
    """Guards the test above: verify does look at ExecStart (so the rewrite is needed and sufficient)."""
    out = tmp_path / "hostwarden.service"
    out.write_text(install.render_unit(UNIT.read_text(), tmp_path / "no-such-venv"))
    res = subprocess.run([systemd_analyze(), "verify", str(out)], capture_output=True, text=True, timeout=60)
    assert "is not executable" in res.stdout + res.stderr


def test_unit_file_security_exposure_at_most_2(tmp_path: Path) -> None:
    res = subprocess.run([systemd_analyze(), "security", "--offline=true", "--threshold=20", "--no-pager",
                          str(unit_with_existing_binary(tmp_path))], capture_output=True, text=True, timeout=60)
    summary = [line for line in res.stdout.splitlines() if "Overall exposure level" in line]
    assert res.returncode == 0, summary or res.stderr
    assert summary and ("OK" in summary[0] or "SAFE" in summary[0])


def test_unit_file_declares_notify_watchdog_reload_and_sandbox() -> None:
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert d["ExecStart"] == ["/opt/hostwarden/venv/bin/hostwarden run --config /etc/hostwarden/hostwarden.yaml"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"]
    assert d["User"] == ["hostwarden"] and d["StateDirectory"] == ["hostwarden"]
    assert "ConfigurationDirectory" not in d  # it would bind /etc/hostwarden read-write into the sandbox
    assert d["CapabilityBoundingSet"] == [""] and d["NoNewPrivileges"] == ["yes"]
    assert d["ProtectSystem"] == ["strict"]
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert "@system-service" in d["SystemCallFilter"]
    watchdog = float(d["WatchdogSec"][0].removesuffix("s"))
    assert watchdog >= 10  # the agent pings every second; leave room for a slow reload


def test_unit_file_stop_timeout_exceeds_drain_timeout() -> None:
    parser = argparse.ArgumentParser()
    add_run_commands(parser.add_subparsers(dest="command"))
    drain = parser.parse_args(["run"]).drain_timeout
    stop = float(directives(UNIT.read_text())["TimeoutStopSec"][0].removesuffix("s"))
    assert stop >= drain + 10, f"TimeoutStopSec={stop}s leaves no margin over the {drain}s drain timeout"
