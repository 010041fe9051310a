"""The `systemd` collector (node_exporter's) over a real dbus-daemon, tests/support/fake_systemd.py owning
org.freedesktop.systemd1 on it (CI machines run no systemd); the real node_exporter's systemd collector on
the same bus is the reference."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.schema import Duration, Regex
from hostwarden.collectors.systemd import DEFAULT_EXCLUDE, SystemdCollector, SystemdUnitsConfig
from hostwarden.exporters.prometheus import Exposition
from prometheus_client.parser import text_string_to_metric_families

from tests.support.agent import free_port, start_agent, wait_for, write_config
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
        FakeUnit("ssh.service", service_type="notify"),
        FakeUnit("backup.service", "inactive", "dead", service_type="oneshot"),
        FakeUnit("nginx.service", "failed", "failed", service_type="forking"),
        FakeUnit("backup.timer", "active", "waiting", last_trigger_usec=1700000000500000),
        FakeUnit("ssh.socket", "active", "listening", accepted=7, connections=1, refused=2),
        FakeUnit("home.mount", "active", "mounted", service_type="ext4"),
        FakeUnit("user.slice", "active", "active"),
        FakeUnit("session-3.scope", "active", "running"),
        FakeUnit("dev-sda.device", "activating", "plugged"),
        FakeUnit("ghost.service", "inactive", "dead", "not-found"),
    ])
    yield fake
    fake.stop()


def collector(bus: DbusDaemon, **kw: object) -> SystemdCollector:
    kw.setdefault("timeout", Duration(2))
    config = SystemdUnitsConfig(bus_address=bus.address, **kw)
    assert config.validate() == []
    return SystemdCollector(config)


def render(col: SystemdCollector, now: float = 1.0) -> str:
    exp = Exposition(process_metrics=False)
    exp.update("systemd", col.collect(now), col.metrics)
    return exp.render().text.decode()


def unit_lines(name: str, active: str, utype: str) -> str:
    return "".join(f'node_systemd_unit_state{{name="{name}",state="{s}",type="{utype}"}} {int(s == active)}\n'
                   for s in ("active", "activating", "deactivating", "inactive", "failed"))


def test_systemd_collector_exposes_node_exporter_families_with_default_exclude(
        bus: DbusDaemon, systemd: FakeSystemd) -> None:
    col = collector(bus)
    try:
        text = render(col)
    finally:
        col.close()
    assert text == (
        "# HELP node_systemd_socket_accepted_connections_total Total number of accepted socket connections\n"
        "# TYPE node_systemd_socket_accepted_connections_total counter\n"
        'node_systemd_socket_accepted_connections_total{name="ssh.socket"} 7\n'
        "# HELP node_systemd_socket_current_connections Current number of socket connections\n"
        "# TYPE node_systemd_socket_current_connections gauge\n"
        'node_systemd_socket_current_connections{name="ssh.socket"} 1\n'
        "# HELP node_systemd_socket_refused_connections_total Total number of refused socket connections\n"
        "# TYPE node_systemd_socket_refused_connections_total gauge\n"
        'node_systemd_socket_refused_connections_total{name="ssh.socket"} 2\n'
        "# HELP node_systemd_system_running Whether the system is operational (see 'systemctl is-system-running')\n"
        "# TYPE node_systemd_system_running gauge\n"
        "node_systemd_system_running 1\n"
        "# HELP node_systemd_timer_last_trigger_seconds Seconds since epoch of last trigger.\n"
        "# TYPE node_systemd_timer_last_trigger_seconds gauge\n"
        'node_systemd_timer_last_trigger_seconds{name="backup.timer"} 1700000000.5\n'
        "# HELP node_systemd_unit_state Systemd unit\n"
        "# TYPE node_systemd_unit_state gauge\n"
        + unit_lines("backup.service", "inactive", "oneshot")
        + unit_lines("backup.timer", "active", "")
        + unit_lines("nginx.service", "failed", "forking")
        + unit_lines("ssh.service", "active", "notify")
        + unit_lines("ssh.socket", "active", "")
        + "# HELP node_systemd_units Summary of systemd unit states\n"
        "# TYPE node_systemd_units gauge\n"
        'node_systemd_units{state="activating"} 1\n'
        'node_systemd_units{state="active"} 6\n'
        'node_systemd_units{state="deactivating"} 0\n'
        'node_systemd_units{state="failed"} 1\n'
        'node_systemd_units{state="inactive"} 2\n'
        "# HELP node_systemd_version Detected systemd version\n"
        "# TYPE node_systemd_version gauge\n"
        'node_systemd_version{version="252.19-1~deb12u1"} 252.19\n'
    )


def test_systemd_collector_include_exclude_mount_type_and_degraded_system(
        bus: DbusDaemon, systemd: FakeSystemd) -> None:
    col = collector(bus, unit_include=Regex(r".+\.(mount|timer)"), unit_exclude=Regex(r".+\.timer"))
    try:
        systemd.system_state = "degraded"
        out = list(col.collect(1.0))
    finally:
        col.close()
    units = {(s.label("name"), s.label("type")) for s in out if s.name == "node_systemd_unit_state"}
    assert units == {("home.mount", "ext4")}
    assert [s.value for s in out if s.name == "node_systemd_system_running"] == [0.0]


def test_systemd_collector_max_units_caps_series_and_warns_once(
        bus: DbusDaemon, systemd: FakeSystemd, caplog: pytest.LogCaptureFixture) -> None:
    col = collector(bus, max_units=2)
    caplog.set_level(logging.WARNING, logger="hostwarden.collectors.systemd")
    try:
        for now in (1.0, 2.0, 3.0):
            names = {s.label("name") for s in col.collect(now) if s.name == "node_systemd_unit_state"}
            assert names == {"backup.service", "backup.timer"}
    finally:
        col.close()
    assert len([r for r in caplog.records if "max_units" in r.getMessage()]) == 1


def test_systemd_collector_reads_service_types_once_and_reuses_one_connection(
        bus: DbusDaemon, systemd: FakeSystemd) -> None:
    col = collector(bus)
    try:
        col.collect(1.0)
        gets_first = systemd.calls.count("Get")
        senders_first = set(systemd.senders)
        for now in (2.0, 3.0):
            col.collect(now)
    finally:
        col.close()
    # Type of the 3 selected services, 3 socket counters, the timer, SystemState and Version
    assert gets_first == 9
    # later cycles: what changes only (socket counters, timer, SystemState)
    assert systemd.calls.count("Get") == gets_first + 2 * 5
    assert set(systemd.senders) == senders_first  # one connection for all cycles


def test_systemd_collector_hung_bus_fails_within_timeout_then_recovers(bus: DbusDaemon, systemd: FakeSystemd) -> None:
    col = collector(bus, timeout=Duration(0.5))
    try:
        systemd.hang = True
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            col.collect(1.0)
        assert time.monotonic() - start < 2.0
        systemd.hang = False
        assert any(s.name == "node_systemd_units" for s in col.collect(2.0))
    finally:
        col.close()


def test_systemd_collector_without_a_bus_raises_for_the_scheduler_to_count(tmp_path) -> None:
    col = SystemdCollector(SystemdUnitsConfig(bus_address=f"unix:path={tmp_path}/none", timeout=Duration(1)))
    with pytest.raises(FileNotFoundError):
        col.collect(1.0)


NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


@pytest.mark.skipif(NODE_EXPORTER is None, reason="needs node_exporter (Debian package: prometheus-node-exporter)")
def test_systemd_collector_series_equal_real_node_exporters_on_the_same_bus(
        bus: DbusDaemon, systemd: FakeSystemd) -> None:
    """The real node_exporter's systemd collector, pointed at the same bus (DBUS_SYSTEM_BUS_ADDRESS), with
    upstream 1.5.0's default exclude (Debian's build adds .target), sees exactly the same series."""
    systemd.set("ssh.socket", active_state="active", sub_state="listening", accepted=7, connections=1, refused=2)
    systemd.set("backup.timer", last_trigger_usec=1700000000500000)
    port = free_port()
    assert NODE_EXPORTER is not None
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                             "--collector.systemd", f"--collector.systemd.unit-exclude={DEFAULT_EXCLUDE}"],
                            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    def systemd_series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
                if f.name.startswith("node_systemd_") for s in f.samples}

    try:
        theirs = systemd_series(wait_for(lambda: (t := scrape()) and "node_systemd_units" in t and t, timeout=20,
                                         what="node_exporter's systemd series"))
    finally:
        proc.terminate()
        proc.wait(10)
    col = collector(bus)
    try:
        ours = systemd_series(render(col))
    finally:
        col.close()
    assert len(theirs) > 30
    assert ours == theirs


def test_agent_with_systemd_collector_reports_units_then_failure_once(bus: DbusDaemon, systemd: FakeSystemd,
                                                                      tmp_path) -> None:
    """A real `hostwarden run` with the collector enabled: series on /metrics, and when systemd leaves the bus
    node_scrape_collector_success{collector="systemd"} drops to 0 with one log line, not one per cycle."""
    cfg = write_config(tmp_path, f"rule_files: []\ncollectors:\n  systemd: {{bus_address: '{bus.address}', "
                                 "timeout: 1s}\n")
    agent = start_agent(cfg)
    try:
        text = wait_for(lambda: (t := agent.scrape()) and 'node_systemd_unit_state{name="ssh.service"' in t and t,
                        timeout=20, what="systemd series")
        assert 'node_scrape_collector_success{collector="systemd"} 1' in text
        systemd.stop()  # org.freedesktop.systemd1 has no owner any more
        wait_for(lambda: 'node_scrape_collector_success{collector="systemd"} 0' in agent.scrape(), timeout=20,
                 what="systemd collector failing")
        time.sleep(3.5)  # three more 1 s cycles, all failing
        assert 'node_scrape_collector_success{collector="systemd"} 0' in agent.scrape()
        assert 'node_scrape_collector_success{collector="uname"} 1' in agent.scrape()
        assert "node_systemd_unit_state{" not in agent.scrape()  # no stale units shown as current
    finally:
        agent.stop()
    lines = [line for line in agent.log_text().splitlines() if "collector systemd failed" in line]
    assert len(lines) == 1, lines
    assert "org.freedesktop.DBus.Error.ServiceUnknown" in lines[0], lines[0]
