"""The tcp check against real sockets on 127.0.0.1: a listener, a refused port, and a listener whose
accept backlog is full (the kernel drops the SYN, so the connect can only end by our timeout)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.schema import Duration
from hostwarden.collectors.check_tcp import TcpCheck, TcpConfig
from hostwarden.collectors.checks import Status


def run(address: str, timeout: float = 2.0):
    return TcpCheck(TcpConfig(name="t", address=address, timeout=Duration(timeout))).run(time.monotonic() + timeout)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s
    s.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connecting is refused
    return port


def test_tcp_listening_port_is_up_with_latency(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run(f"127.0.0.1:{port}")
    assert result.ok and result.status == Status.OK
    (latency,) = result.samples
    assert latency.name == "hostwarden_tcp_connect_seconds" and 0 <= latency.value < 2


def test_tcp_refused_port_is_down_with_reason() -> None:
    port = free_port()
    result = run(f"127.0.0.1:{port}")
    assert not result.ok and result.status == Status.CRITICAL
    assert result.message == f"connect to 127.0.0.1:{port}: Connection refused"
    assert result.samples == []


def test_tcp_full_backlog_times_out_at_the_check_timeout() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)  # never accepted: the queue fills after a connection or two
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue; bounded
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.1)
        t0 = time.monotonic()
        result = run(f"127.0.0.1:{port}", timeout=0.5)
        elapsed = time.monotonic() - t0
    finally:
        for c in fillers:
            c.close()
        server.close()
    if result.ok:
        pytest.skip("this kernel accepted beyond the backlog (SYN cookies / tcp_abort_on_overflow settings)")
    assert result.message == f"connect to 127.0.0.1:{port}: timed out after 0.5s"
    assert elapsed < 3


def test_tcp_ipv6_loopback_when_available() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support")
    s = socket.socket(socket.AF_INET6)
    try:
        s.bind(("::1", 0))
    except OSError:
        s.close()
        pytest.skip("::1 not configured")
    s.listen(1)
    try:
        assert run(f"[::1]:{s.getsockname()[1]}").ok
    finally:
        s.close()
