"""The nagios check running Debian's monitoring-plugins (apt-get install monitoring-plugins)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.schema import Duration
from hostwarden.collectors.check_nagios import NagiosCheck, NagiosConfig
from hostwarden.collectors.checks import CheckRunner, Status

PLUGINS = "/usr/lib/nagios/plugins"
pytestmark = pytest.mark.skipif(not os.path.exists(f"{PLUGINS}/check_dummy"),
                                reason="needs Debian's monitoring-plugins in /usr/lib/nagios/plugins")


def run(command: list[str], timeout: float = 10.0):
    config = NagiosConfig(name="n", type="nagios", command=command, timeout=Duration(timeout))
    assert config.validate() == []
    return NagiosCheck(config).run(time.monotonic() + timeout)


def perf(result) -> dict[tuple[str, str, str], float]:
    return {(s.name.removeprefix("hostwarden_nagios_perfdata_"), s.label("label"), s.label("uom")): s.value
            for s in result.samples}


@pytest.mark.parametrize(("code", "status", "prefix"), [
    (0, Status.OK, "OK"), (1, Status.WARNING, "WARNING"), (2, Status.CRITICAL, "CRITICAL"),
    (3, Status.UNKNOWN, "UNKNOWN")])
def test_nagios_check_dummy_every_exit_code(code: int, status: Status, prefix: str) -> None:
    result = run([f"{PLUGINS}/check_dummy", str(code), "from the test"])
    assert result.status == status and result.ok == (code == 0)
    assert result.message == f"{prefix}: from the test"


def test_nagios_check_dummy_bad_argument_is_unknown() -> None:
    result = run([f"{PLUGINS}/check_dummy", "7"])
    assert result.status == Status.UNKNOWN and not result.ok


def test_nagios_check_disk_root_perfdata_in_bytes() -> None:
    result = run([f"{PLUGINS}/check_disk", "-w", "1%", "-c", "1%", "-p", "/"])
    assert result.message.startswith("DISK"), result.message
    got = perf(result)
    used = got[("value", "/", "bytes")]
    total = got[("max", "/", "bytes")]
    stat = os.statvfs("/")
    assert total == pytest.approx(stat.f_blocks * stat.f_frsize, rel=0.01)
    assert 0 < used <= total
    assert got[("min", "/", "bytes")] == 0


def test_nagios_check_procs_count_and_threshold() -> None:
    result = run([f"{PLUGINS}/check_procs", "-w", "100000", "-c", "200000"])
    assert result.status == Status.OK and result.message.startswith("PROCS OK"), result.message
    got = perf(result)
    assert got[("value", "procs", "")] >= 1
    assert got[("warning", "procs", "")] == 100000
    assert got[("critical", "procs", "")] == 200000


@pytest.fixture
def open_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


def test_nagios_check_tcp_open_port_ok_with_time_perfdata(open_port: int) -> None:
    result = run([f"{PLUGINS}/check_tcp", "-H", "127.0.0.1", "-p", str(open_port)])
    assert result.status == Status.OK and result.message.startswith("TCP OK"), result.message
    assert 0 <= perf(result)[("value", "time", "seconds")] < 5


def test_nagios_check_tcp_closed_port_critical() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = run([f"{PLUGINS}/check_tcp", "-H", "127.0.0.1", "-p", str(port)])
    assert result.status == Status.CRITICAL
    assert "Connection refused" in result.message


def test_nagios_bare_plugin_name_found_in_default_plugin_dir() -> None:
    assert run(["check_dummy", "0", "found"]).message == "OK: found"


def test_nagios_runner_exposes_status_and_perfdata_metrics() -> None:
    configs = [NagiosConfig(name="dummy-warn", type="nagios", command=["check_dummy", "1", "warn"]),
               NagiosConfig(name="procs", type="nagios", command=["check_procs"])]
    runner = CheckRunner(configs)
    out = runner.collect(100.0)
    status = {s.label("check"): s.value for s in out if s.name == "hostwarden_check_status"}
    up = {s.label("check"): s.value for s in out if s.name == "hostwarden_check_up"}
    assert status == {"dummy-warn": 1.0, "procs": 0.0} and up == {"dummy-warn": 0.0, "procs": 1.0}
    procs = [s for s in out if s.name == "hostwarden_nagios_perfdata_value" and s.label("check") == "procs"]
    assert [dict(s.labels) for s in procs] == [{"check": "procs", "label": "procs"}]
    assert runner.last_results()["dummy-warn"].message == "WARNING: warn"
