"""The README's two set-up commands: the ones the tests run, usable from a root shell and by a sudo user."""

from __future__ import annotations

from pathlib import Path

from tests.systemd.conftest import ROOT, readme_setup_commands


def test_readme_setup_commands_are_install_sh_and_test_sh_without_sudo():
    commands = readme_setup_commands()
    # No `sudo` in front: it fails in a root shell where sudo is absent; the scripts use sudo themselves.
    assert commands == ["./install.sh", "./test.sh"], commands
    for command in commands:
        script = ROOT / command.removeprefix("./")
        assert script.is_file() and script.stat().st_mode & 0o111, script
        assert 'command -v sudo' in script.read_text(), f"{script.name} does not handle non-root users via sudo"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"exec {readme_setup_commands()[1]}\n" in ci


def test_install_sh_and_test_sh_use_the_system_interpreter():
    for name in ("install.sh", "test.sh"):
        assert "/usr/bin/python3" in (Path(ROOT) / name).read_text(), name
