"""The namespaced-systemd harness itself (tests/support/systemdns.py): boots, isolates, powers off clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.systemdns import SystemdNamespace, _cgroup2_base, _reap_stale_cgroups, refusal_reason

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns(systemd_ns: SystemdNamespace) -> SystemdNamespace:
    """The public fixture, as other test modules use it."""
    return systemd_ns


def test_namespace_systemd_is_pid1_and_running(ns):
    assert ns.systemctl("is-system-running").stdout.strip() in ("running", "degraded")
    assert ns.run(["cat", "/proc/1/comm"], check=True).stdout.strip() == "systemd"
    assert Path(f"/proc/{ns.pid}/comm").read_text().strip() == "systemd"


def test_namespace_overlay_keeps_host_files_unchanged(ns):
    probe = f"/etc/hostwarden-systemdns-probe-{os.getpid()}"
    ns.run(["sh", "-c", f"echo inside > {probe}"], check=True)
    assert ns.run(["cat", probe], check=True).stdout == "inside\n"
    assert not Path(probe).exists()


def test_namespace_shared_directory_is_visible_both_ways(ns):
    (ns.shared / "from-host").write_text("host\n")
    ns.run(["sh", "-c", f"cat {ns.shared}/from-host > {ns.shared}/from-ns"], check=True)
    assert (ns.shared / "from-ns").read_text() == "host\n"


def test_namespace_has_private_loopback_and_runs_units(ns):
    addrs = ns.run(["ip", "-brief", "addr"], check=True).stdout
    assert "127.0.0.1" in addrs and "enp" not in addrs and "eth" not in addrs
    r = ns.run(["systemd-run", "--wait", "--quiet", "-p", "DynamicUser=yes", "/bin/sh", "-c", "exit 3"])
    assert r.returncode == 3
    assert ns.http_get("http://127.0.0.1:1/")[0] == 0


def test_namespace_poweroff_removes_its_cgroup():
    if refusal_reason() is not None:
        pytest.skip(refusal_reason())
    ns = SystemdNamespace(name="poweroff").start()
    cgroup = ns._cgroup
    pid = ns.pid
    assert cgroup is not None and (cgroup / "init.scope").is_dir()
    ns.stop()
    assert not Path(f"/proc/{pid}").exists()
    assert not cgroup.exists()
    assert not ns.workdir.exists()


def test_namespace_popen_terminating_nsenter_stops_the_command(ns):
    proc = ns.popen(["sleep", "1000"])
    try:
        deadline = time.monotonic() + 10
        while ns.run(["pgrep", "-x", "sleep"]).returncode != 0:
            assert time.monotonic() < deadline, "sleep did not start"
        proc.terminate()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while ns.run(["pgrep", "-x", "sleep"]).returncode == 0:
            assert time.monotonic() < deadline, "sleep survived its nsenter"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_namespace_dies_with_a_killed_test_process(tmp_path):
    if refusal_reason() is not None:
        pytest.skip(refusal_reason())
    script = ("import sys, time\n"
              f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
              "from tests.support.systemdns import SystemdNamespace\n"
              "ns = SystemdNamespace(name='orphan').start()\n"
              "print(ns.pid, flush=True)\n"
              "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "systemd"
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "the namespace outlived its killed test process"
        time.sleep(0.1)
    shutil.rmtree(Path(__file__).resolve().parents[2] / "build" / "systemdns" / f"orphan-{proc.pid}",
                  ignore_errors=True)
    # Its cgroup is left to the next start(), which reaps cgroups of dead test processes.
    base = _cgroup2_base()
    if base is not None:
        stale = base / f"hostwarden-systemdns-{proc.pid}-orphan"
        deadline = time.monotonic() + 10
        while stale.exists():
            _reap_stale_cgroups(base)
            assert time.monotonic() < deadline, f"{stale} was not reaped"
            time.sleep(0.1)
