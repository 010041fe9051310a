"""sd_notify over a real unix datagram socket bound by the test."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.sdnotify import Notifier, watchdog_interval


@pytest.fixture
def listener(tmp_path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_notifier_ready_with_status_sends_one_datagram(listener) -> None:
    path, sock = listener
    n = Notifier(path)
    assert n.enabled
    assert n.ready("3 collectors,\n 0 firing")
    assert _recv(sock) == ["READY=1", "STATUS=3 collectors, 0 firing"]


def test_notifier_each_message_sends_its_fields(listener) -> None:
    path, sock = listener
    n = Notifier(path)
    n.status("collecting")
    n.watchdog()
    n.stopping()
    assert _recv(sock) == ["STATUS=collecting"]
    assert _recv(sock) == ["WATCHDOG=1"]
    assert _recv(sock) == ["STOPPING=1"]
    assert n.sent == 3


def test_notifier_reloading_sends_monotonic_usec(listener) -> None:
    path, sock = listener
    n = Notifier(path)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = _recv(sock)
    assert fields[0] == "RELOADING=1"
    key, _, value = fields[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    n.reloading(monotonic_usec=42)
    assert _recv(sock) == ["RELOADING=1", "MONOTONIC_USEC=42"]


def test_notifier_abstract_socket_is_reached() -> None:
    name = f"hostwarden-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        assert Notifier("@" + name).watchdog()
        assert _recv(sock) == ["WATCHDOG=1"]
    finally:
        sock.close()


def test_notifier_reads_notify_socket_from_environment(listener) -> None:
    path, sock = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path})
    n.ready()
    assert _recv(sock) == ["READY=1"]


def test_notifier_without_socket_is_disabled_noop() -> None:
    n = Notifier(environ={})
    assert not n.enabled
    assert n.ready("x") is False
    assert n.watchdog() is False
    assert Notifier("").enabled is False


def test_notifier_missing_socket_logs_once_and_never_raises(tmp_path, caplog) -> None:
    n = Notifier(str(tmp_path / "absent.sock"))
    with caplog.at_level(logging.WARNING, logger="hostwarden.agent.core.sdnotify"):
        for _ in range(5):
            assert n.watchdog() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "absent.sock" in warnings[0].getMessage()


def test_notifier_socket_appearing_later_recovers_and_logs_once(tmp_path, caplog) -> None:
    path = str(tmp_path / "late.sock")
    n = Notifier(path)
    with caplog.at_level(logging.INFO, logger="hostwarden.agent.core.sdnotify"):
        assert n.watchdog() is False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2.0)
        try:
            assert n.watchdog() is True
            assert n.watchdog() is True
            assert _recv(sock) == ["WATCHDOG=1"]
        finally:
            sock.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "works again" in messages[1]


def test_notifier_unset_environment_removes_variables_for_children(listener, monkeypatch) -> None:
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier(unset_environment=True)
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    assert n.watchdog_interval() == 15.0
    assert n.watchdog()
    assert _recv(sock) == ["WATCHDOG=1"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1234"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "999"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_env_gives_half_or_none(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=1234) == expected
