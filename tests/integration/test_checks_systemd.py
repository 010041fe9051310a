"""The systemd check over a real dbus-daemon, with tests/support/fake_systemd.py owning
org.freedesktop.systemd1 on it (CI machines run no systemd)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.schema import Duration
from hostwarden.collectors.check_systemd import SystemdCheck, SystemdConfig
from hostwarden.collectors.checks import CheckRunner, Status

from tests.support.fake_systemd import DbusDaemon, FakeSystemd, FakeUnit

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None,
                                reason="needs dbus-daemon (Debian package: dbus)")


@pytest.fixture
def bus(tmp_path) -> Iterator[DbusDaemon]:
    daemon = DbusDaemon(str(tmp_path))
    yield daemon
    daemon.stop()


@pytest.fixture
def systemd(bus: DbusDaemon) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(bus.address, [
        FakeUnit("ssh.service", restarts=2),
        FakeUnit("cron.service"),
        FakeUnit("nginx@a.service"),
        FakeUnit("nginx@b.service", "failed", "failed", restarts=5),
        FakeUnit("backup.timer", "active", "waiting"),
        FakeUnit("stopped.service", "inactive", "dead", loaded=False),
    ])
    yield fake
    fake.stop()


def check(bus: DbusDaemon, **kw: object) -> SystemdCheck:
    kw.setdefault("timeout", Duration(2))
    config = SystemdConfig(name="sd", type="systemd", bus_address=bus.address, **kw)
    assert config.validate() == []
    return SystemdCheck(config)


def run(c: SystemdCheck, timeout: float = 2.0):
    return c.run(time.monotonic() + timeout)


def states(result) -> dict[str, str]:
    return {s.label("name"): s.label("state") for s in result.samples
            if s.name == "node_systemd_unit_state" and s.value == 1}


def single(result, metric: str, **labels: str) -> float:
    (value,) = [s.value for s in result.samples if s.name == metric and all(s.label(k) == v for k, v in labels.items())]
    return value


def test_systemd_active_unit_is_up_with_state_series(bus, systemd) -> None:
    result = run(check(bus, unit="ssh.service"))
    assert result.ok and result.message == "ssh.service active (running)"
    series = {(s.label("state"), s.label("type")): s.value for s in result.samples
              if s.name == "node_systemd_unit_state"}
    assert series == {("active", "service"): 1, ("activating", "service"): 0, ("deactivating", "service"): 0,
                      ("inactive", "service"): 0, ("failed", "service"): 0}
    assert single(result, "hostwarden_systemd_unit_restarts_total", name="ssh.service") == 2
    assert single(result, "hostwarden_systemd_units_failed") == 0


def test_systemd_failed_unit_is_down(bus, systemd) -> None:
    systemd.set("cron.service", active_state="failed", sub_state="failed")
    result = run(check(bus, units=["ssh.service", "cron.service"]))
    assert not result.ok and result.status == Status.CRITICAL
    assert result.message == "cron.service failed (failed)"
    assert states(result) == {"ssh.service": "active", "cron.service": "failed"}
    assert single(result, "hostwarden_systemd_units_failed") == 1


def test_systemd_unknown_and_unloaded_units(bus, systemd) -> None:
    result = run(check(bus, units=["nosuch.service", "stopped.service"]))
    assert not result.ok
    assert result.message == "nosuch.service not found; stopped.service inactive (dead)"
    assert states(result) == {"nosuch.service": "inactive", "stopped.service": "inactive"}


def test_systemd_pattern_matches_loaded_units(bus, systemd) -> None:
    result = run(check(bus, pattern=r"nginx@.+\.service"))
    assert not result.ok and result.message == "nginx@b.service failed (failed)"
    assert states(result) == {"nginx@a.service": "active", "nginx@b.service": "failed"}
    assert single(result, "hostwarden_systemd_unit_restarts_total", name="nginx@b.service") == 5
    timers = run(check(bus, pattern=r".+\.timer"))
    assert timers.ok and states(timers) == {"backup.timer": "active"}
    assert not [s for s in timers.samples if s.name == "hostwarden_systemd_unit_restarts_total"]
    none = run(check(bus, pattern=r"absent-.*"))
    assert not none.ok and none.message == "0 loaded unit(s) match 'absent-.*', expected at least 1"


def test_systemd_state_change_seen_on_the_next_run_over_one_connection(bus, systemd) -> None:
    c = check(bus, unit="ssh.service")
    assert run(c).ok
    systemd.set("ssh.service", active_state="activating", sub_state="auto-restart", restarts=3)
    second = run(c)
    assert not second.ok and second.message == "ssh.service activating (auto-restart)"
    assert single(second, "hostwarden_systemd_unit_restarts_total", name="ssh.service") == 3
    assert len(set(systemd.senders)) == 1  # the D-Bus connection is reused across runs
    c.close()


def test_systemd_bus_absent_is_unknown_and_logged_once(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    config = SystemdConfig(name="sd", type="systemd", unit="ssh.service",
                           bus_address=f"unix:path={tmp_path}/no-bus-here")
    runner = CheckRunner([config])
    with caplog.at_level(logging.INFO):
        for now in (0.0, 10.0, 20.0):
            runner.collect(now)
    result = runner.last_results()["sd"]
    assert result.status == Status.UNKNOWN
    assert result.message == "system bus not available: No such file or directory"
    assert caplog.text.count("system bus not available") == 1


def test_systemd_not_running_on_bus_is_unknown(bus) -> None:
    result = run(check(bus, unit="ssh.service"))
    assert result.status == Status.UNKNOWN
    assert result.message == "systemd is not running on this bus (org.freedesktop.systemd1 has no owner)"


def test_systemd_reconnects_after_bus_restart(tmp_path) -> None:
    first = DbusDaemon(str(tmp_path))
    fake = FakeSystemd(first.address, [FakeUnit("ssh.service")])
    c = SystemdCheck(SystemdConfig(name="sd", type="systemd", unit="ssh.service", bus_address=first.address))
    try:
        assert run(c).ok
        fake.stop()
        first.stop()
        down = run(c)
        assert not down.ok and down.status == Status.UNKNOWN
        second = DbusDaemon(str(tmp_path))  # same socket path, new daemon
        fake = FakeSystemd(second.address, [FakeUnit("ssh.service")])
        assert run(c).ok
    finally:
        c.close()
        fake.stop()
        if "second" in locals():
            second.stop()


def test_systemd_unresponsive_service_times_out(bus, systemd) -> None:
    systemd.hang = True
    t0 = time.monotonic()
    result = run(check(bus, unit="ssh.service"), timeout=0.3)
    assert time.monotonic() - t0 < 3
    assert result.status == Status.UNKNOWN and result.message == "D-Bus call timed out"
