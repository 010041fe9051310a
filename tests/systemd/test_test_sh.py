"""The README's test command, `./test.sh`, run by a user with sudo on a fresh clone (inside a namespaced
systemd, tests/support/systemdns.py): packages and setup scripts go through sudo, `.venv` comes from
/usr/bin/python3 and belongs to the user, pytest runs as the user. (As root it is what CI runs.)
"""

from __future__ import annotations

import pytest

from tests.support.systemdns import SystemdNamespace
from tests.systemd.conftest import boot, readme_setup_commands

pytestmark = pytest.mark.integration

USER = "tester"
HOME = f"/var/lib/{USER}"  # /var is overlaid: nothing lands in the host's /home


@pytest.fixture(scope="module")
def ns():
    booted = boot("test-sh")
    try:
        yield booted
    finally:
        booted.stop()


def test_readme_test_command_as_a_sudo_user(ns: SystemdNamespace, source_tree, wheelhouse):
    if ns.run(["sh", "-c", "command -v sudo"]).returncode != 0:
        pytest.skip("sudo is not installed (tests/debian-packages.txt)")
    ns.run(["useradd", "--create-home", "--home-dir", HOME, "--shell", "/bin/sh", USER], check=True)
    ns.run(["sh", "-c", f"echo '{USER} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/{USER} && "
            f"chmod 0440 /etc/sudoers.d/{USER}"], check=True)
    # A fresh clone the user owns, and pip offline from the wheelhouse (the namespace has no network).
    ns.run(["cp", "-a", str(source_tree), f"{HOME}/clone"], check=True)
    ns.run(["chown", "-R", f"{USER}:{USER}", f"{HOME}/clone"], check=True)
    ns.run(["runuser", "-u", USER, "--", "sh", "-c", "mkdir -p ~/.config/pip && printf "
            f"'[global]\\nno-index = true\\nfind-links = {wheelhouse}\\n' > ~/.config/pip/pip.conf"], check=True)
    command = readme_setup_commands()[1]
    r = ns.run(["runuser", "-u", USER, "--", "sh", "-c",
                f"cd ~/clone && {command} -q -p no:cacheprovider tests/systemd/test_readme_setup.py"],
               env={"HOME": HOME}, timeout=900)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "3 passed" in r.stdout, r.stdout[-2000:]
    # The setup scripts ran through sudo (sudo logs each command to the journal).
    sudo_log = ns.journalctl("-t", "sudo", "-o", "cat").stdout
    assert f"COMMAND=/usr/bin/env DEBIAN_FRONTEND=noninteractive {HOME}/clone/tests/setup/install_redmine.sh" in \
        sudo_log, sudo_log[-2000:]
    cfg = ns.run(["cat", f"{HOME}/clone/.venv/pyvenv.cfg"], check=True).stdout
    assert "home = /usr/bin\n" in cfg, cfg
    assert ns.run(["stat", "-c", "%U", f"{HOME}/clone/.venv/bin/python"]).stdout.strip() == USER
