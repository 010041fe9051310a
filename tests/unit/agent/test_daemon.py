"""The agent's check wiring and scheduler-lag gauge, on a real Agent built from a real config file.

The agent is not started (no HTTP server, no APScheduler thread): the tests drive the parts under test
(`_schedule`, `note_heartbeat`, the check runner's own threads, `reload`) and read the exposition the
/metrics endpoint would serve.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostwarden.agent.core.sdnotify import Notifier
from hostwarden.agent.daemon import Agent, load_all

from tests.reliability.agentprobe import parse_exposition, value


def write_config(d: Path, checks: str) -> Path:
    cfg = d / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: 10s\n  state_dir: {d / 'state'}\n  hostname: testhost\n"
                   f"web:\n  listen_address: 127.0.0.1:0\n{checks}rule_files: []\n")
    return cfg


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


@pytest.fixture
def make_agent() -> Iterator[Callable[[Path], Agent]]:
    agents: list[Agent] = []

    def make(cfg: Path) -> Agent:
        config, groups = load_all(str(cfg))
        agent = Agent(config, groups, notifier=Notifier(""))
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        if agent.checks is not None:
            agent.checks.close()
        agent.outbox.stop(drain_timeout=0.0)  # a reload starts the new outbox worker
        agent.state.close()


def exposed(agent: Agent) -> dict:
    return parse_exposition(agent.exposition.current().text.decode())


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- scheduler lag ------------------------------------------------------------------------------------

def test_agent_scheduler_lag_counts_a_pause_before_the_first_heartbeat(tmp_path: Path,
                                                                        make_agent: Callable[[Path], Agent]) -> None:
    agent = make_agent(write_config(tmp_path, ""))
    agent._schedule()  # adds the 5 s heartbeat job: its first run is due 5 s from here
    scheduled = agent._last_heartbeat_mono
    assert scheduled is not None
    # stopped 1 s after scheduling for 29 s: the first heartbeat runs 30 s after scheduling, 25 s late
    assert agent.note_heartbeat(scheduled + 30.0) == pytest.approx(25.0)
    agent.render()
    assert value(exposed(agent), "hostwarden_scheduler_lag_seconds") == pytest.approx(25.0)


def test_agent_scheduler_lag_is_the_largest_of_the_last_minute(tmp_path: Path,
                                                               make_agent: Callable[[Path], Agent]) -> None:
    agent = make_agent(write_config(tmp_path, ""))
    agent._schedule()
    t0 = agent._last_heartbeat_mono
    assert t0 is not None
    assert agent.note_heartbeat(t0 + 5.0) == 0.0
    assert agent.note_heartbeat(t0 + 35.0) == pytest.approx(25.0)  # 25 s late
    lags = {m: agent.note_heartbeat(t0 + m) for m in range(40, 100, 5)}  # on time from then on
    assert all(lag == pytest.approx(25.0) for m, lag in lags.items() if m - 35 < 60)
    assert lags[95] == 0.0  # the late run is more than a minute old


# -- checks --------------------------------------------------------------------------------------------

def test_agent_check_results_reach_metrics_as_runs_finish_while_a_plugin_hangs(
        tmp_path: Path, listener: socket.socket, make_agent: Callable[[Path], Agent]) -> None:
    pid_file = tmp_path / "pid"
    hang = tmp_path / "hang"
    hang.write_text(f"#!{sys.executable}\nimport os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                    "time.sleep(100000)\n")
    hang.chmod(0o755)
    port = listener.getsockname()[1]
    agent = make_agent(write_config(tmp_path, (
        "checks:\n"
        f"  - {{name: hang, type: nagios, command: [{hang}], interval: 5s, timeout: 5s}}\n"
        f"  - {{name: fast, type: tcp, address: '127.0.0.1:{port}', interval: 100ms, timeout: 100ms}}\n")))
    agent._start_checks()
    seen: set[float] = set()

    def fast_runs() -> int:
        series = exposed(agent)
        stamp = value(series, "hostwarden_check_last_run_timestamp_seconds", check="fast")
        if stamp is not None:
            seen.add(stamp)
        return len(seen)

    # every run of the fast check reaches the exposition while the plugin hangs (its timeout is 5 s):
    # no tick to wait for, no waiting for the hung run
    assert wait_until(lambda: fast_runs() >= 5, timeout=4.0)
    series = exposed(agent)
    assert value(series, "hostwarden_check_up", check="fast", type="tcp") == 1
    assert value(series, "hostwarden_check_up", check="hang", type="nagios") is None  # still in flight
    assert value(series, "hostwarden_check_workers_busy") is not None
    assert wait_until(pid_file.exists, timeout=2.0)
    pid = int(pid_file.read_text())
    agent.checks.close()  # ends the plugin's process group (F18)
    try:
        assert wait_until(lambda: not _alive(pid), timeout=3.0)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)  # never leave the plugin this test started behind


def test_agent_reload_swaps_the_check_runner_and_the_old_one_stays_silent(
        tmp_path: Path, listener: socket.socket, make_agent: Callable[[Path], Agent]) -> None:
    port = listener.getsockname()[1]
    cfg = write_config(tmp_path, f"checks:\n  - {{name: a, type: tcp, address: '127.0.0.1:{port}', interval: 100ms,"
                                 " timeout: 100ms}\n")
    agent = make_agent(cfg)
    agent._start_checks()
    assert wait_until(lambda: value(exposed(agent), "hostwarden_check_up", check="a", type="tcp") == 1, 3.0)
    old = agent.checks
    write_config(tmp_path, f"checks:\n  - {{name: b, type: tcp, address: '127.0.0.1:{port}', interval: 100ms,"
                           " timeout: 100ms}\n")
    assert agent.reload()
    assert agent.checks is not None and agent.checks is not old and agent.checks.started
    assert wait_until(lambda: value(exposed(agent), "hostwarden_check_up", check="b", type="tcp") == 1, 3.0)
    time.sleep(0.3)  # three of the old 100 ms intervals: the closed runner publishes nothing
    assert value(exposed(agent), "hostwarden_check_up", check="a", type="tcp") is None
    write_config(tmp_path, "")
    assert agent.reload()
    assert agent.checks is None
    assert "checks" not in agent.exposition.sources()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
