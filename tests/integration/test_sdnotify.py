"""The real agent process speaking sd_notify to a unix datagram socket bound by the test, as systemd
would bind it: READY → STATUS → WATCHDOG… → STOPPING, every datagram from the main process, and
no WATCHDOG=1 once the scheduler is wedged (so systemd's WatchdogSec= would restart it)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.agent import start_agent, wait_for, write_config

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Datagram:
    pid: int
    fields: tuple[str, ...]
    at: float

    def has(self, field: str) -> bool:
        return field in self.fields

    def value(self, key: str) -> str | None:
        return next((f.split("=", 1)[1] for f in self.fields if f.startswith(key + "=")), None)


class NotifySocket:
    """An abstract-namespace datagram socket receiving with SO_PASSCRED, like systemd's."""

    def __init__(self) -> None:
        self.name = f"@hostwarden-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.received: list[Datagram] = []

    def receive_until(self, predicate, timeout: float) -> list[Datagram]:  # type: ignore[no-untyped-def]
        """Collect datagrams until `predicate(received)` holds; bounded by `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; received so far: {[d.fields for d in self.received]}")
            self.sock.settimeout(left)
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            pid = -1
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:12])[0]
            self.received.append(Datagram(pid, tuple(data.decode().split("\n")), time.monotonic()))
        return self.received

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    s = NotifySocket()
    yield s
    s.close()


def _count(received: list[Datagram], field: str) -> int:
    return sum(1 for d in received if d.has(field))


def test_agent_notify_ready_status_watchdog_stopping_in_order(tmp_path: Path, notify: NotifySocket) -> None:
    agent = start_agent(write_config(tmp_path, "rule_files: []\n"),
                        env={"NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "2000000"})  # WatchdogSec=2s
    try:
        notify.receive_until(lambda r: _count(r, "WATCHDOG=1") >= 3 and any(
            d.value("STATUS") and not d.has("READY=1") for d in r), timeout=30)
        agent.signal(signal.SIGTERM)
        notify.receive_until(lambda r: _count(r, "STOPPING=1") == 1, timeout=30)
        assert agent.proc.wait(30) == 0, agent.log_text()
    finally:
        agent.kill()
    got = notify.received
    assert {d.pid for d in got} == {agent.proc.pid}  # NotifyAccess=main: only the main process speaks
    assert got[0].has("READY=1"), "READY=1 must be the first notification"
    assert got[0].value("STATUS"), "READY=1 carries a one-line STATUS"
    first_watchdog = next(i for i, d in enumerate(got) if d.has("WATCHDOG=1"))
    stopping = next(i for i, d in enumerate(got) if d.has("STOPPING=1"))
    assert 0 < first_watchdog < stopping
    status_only = [d for d in got[:stopping] if d.value("STATUS") and not d.has("READY=1")]
    assert status_only and "\n" not in status_only[0].value("STATUS")  # type: ignore[operator]
    assert _count(got, "READY=1") == 1


def test_agent_frozen_scheduler_stops_watchdog_but_process_lives(tmp_path: Path, notify: NotifySocket) -> None:
    freeze_after = 3
    agent = start_agent(write_config(tmp_path, "rule_files: []\n"),
                        env={"NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "2000000",  # a ping every 1 s
                             "HOSTWARDEN_DEBUG_FREEZE_SCHEDULER_AFTER": str(freeze_after)})
    try:
        notify.receive_until(lambda r: _count(r, "WATCHDOG=1") >= freeze_after - 1, timeout=60)
        wait_for(lambda: "freezing the scheduler" in agent.log_text(), 30, what="the scheduler to freeze")
        # WatchdogSec=2s: the heartbeat runs every second, so 4.5 silent seconds are four missed pings
        # (systemd would have restarted the agent after two).
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            notify.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = notify.sock.recv(4096)
            except TimeoutError:
                break
            assert b"WATCHDOG=1" not in data, "the frozen scheduler still pinged the watchdog"
        assert _count(notify.received, "WATCHDOG=1") == freeze_after - 1
        assert agent.proc.poll() is None
        with urllib.request.urlopen(f"{agent.url}/-/healthy", timeout=5) as resp:  # alive, just wedged
            assert resp.status == 200
        assert "freezing the scheduler" in agent.log_text()
    finally:
        rc = agent.stop()
    assert rc == 0, agent.log_text()


def test_agent_without_notify_socket_runs_and_stops_cleanly(tmp_path: Path) -> None:
    env = {k: "" for k in ("NOTIFY_SOCKET",) if k in os.environ}
    agent = start_agent(write_config(tmp_path, "rule_files: []\n"), env=env)
    assert agent.stop() == 0, agent.log_text()
    assert "sd_notify" not in agent.log_text()
