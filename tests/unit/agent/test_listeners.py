"""agent.listeners: the receiver's part of a reload on real loopback sockets — a new address is bound in the
build phase (taken port: ReceiverBindError, nothing touched; discarded: the port is free again), installed
by the swap (the new listener answers, the old one is handed back for stopping), or kept and reconfigured."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.listeners import (
    ReceiverBindError,
    TLSErrorCounts,
    install_receiver,
    plan_receiver,
    tls_listeners,
)
from hostwarden.exporters.receiver import Receiver, ReceiverConfig, WebhookServer

from tests.support.agent import free_port
from tests.support.amwebhook import notification, post_notification, refused


class Incidents:
    """Records what a receiver hands over (the incident manager's `handle`)."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def handle(self, transitions: list[Any], now: float) -> None:
        self.got.extend(transitions)


def cfg(port: int, path: str = "/alerts") -> ReceiverConfig:
    return ReceiverConfig(listen_address=f"127.0.0.1:{port}", path=path, auth="none")


def plan(new: ReceiverConfig | None, tmp_path: Path, incidents: Incidents, server: WebhookServer | None = None,
         receiver: Receiver | None = None) -> Any:
    return plan_receiver(new, running=server, running_receiver=receiver, incidents=incidents,
                         state_dir=str(tmp_path), clock=time.time, wake=lambda: None, lock=None,
                         on_tls_error=lambda: None)


def post(port: int, group: str, path: str = "/alerts") -> int:
    return post_notification(port, notification(group, receiver="hw"), path=path, timeout=5.0)


def answered(receiver: Receiver, code: str) -> float:
    """hostwarden_receiver_requests_total{code} as the receiver's stats report it."""
    return next(s.value for s in receiver.stats.samples(0.0)
                if s.name == "hostwarden_receiver_requests_total" and s.label("code") == code)


def test_plan_taken_port_raises_bind_error_and_touches_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(ReceiverBindError, match=f"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            plan(cfg(taken.getsockname()[1]), tmp_path, Incidents())


def test_plan_discarded_gives_the_port_back(tmp_path: Path) -> None:
    port = free_port()
    change = plan(cfg(port), tmp_path, Incidents())
    assert change.server is not None and change.receiver is not None
    with pytest.raises(OSError):  # bound (not serving yet): nobody else can have it
        socket.create_server(("127.0.0.1", port)).close()
    change.discard()
    assert refused(port)
    socket.create_server(("127.0.0.1", port)).close()


def test_install_added_then_moved_then_repathed_then_removed(tmp_path: Path) -> None:
    first, second = Incidents(), Incidents()
    a, b = free_port(), free_port()
    server, receiver, retired = install_receiver(plan(cfg(a), tmp_path, first), server=None, receiver=None,
                                                 incidents=first, wake=lambda: None)
    assert retired is None and server is not None and receiver is not None
    try:
        assert post(a, "One") == 200 and len(first.got) == 1

        # moved: same receiver (group tracker), new listener; the old one handed back, still bound until stopped
        change = plan(cfg(b), tmp_path, second, server, receiver)
        assert change.receiver is None and change.server is not None
        moved, kept_receiver, retired = install_receiver(change, server=server, receiver=receiver,
                                                         incidents=second, wake=lambda: None)
        assert kept_receiver is receiver and retired is server and moved is not server
        retired.stop()
        assert refused(a)
        server = moved
        assert post(b, "Two") == 200 and len(second.got) == 1  # into the new incident manager
        assert post(b, "One") == 200 and len(second.got) == 1  # the tracker remembers group One: no new firing
        assert moved.stats is receiver.stats and answered(receiver, "200") == 3  # counters kept across the move

        # another path, same port: kept, reconfigured in place
        change = plan(cfg(b, "/am"), tmp_path, second, server, receiver)
        assert change.server is None
        same, _r, retired = install_receiver(change, server=server, receiver=receiver, incidents=second,
                                             wake=lambda: None)
        assert same is server and retired is None
        assert post(b, "Three") == 404 and post(b, "Three", "/am") == 200
        assert (answered(receiver, "200"), answered(receiver, "404")) == (4, 1)

        # removed
        gone, no_receiver, retired = install_receiver(plan(None, tmp_path, second, server, receiver),
                                                      server=server, receiver=receiver, incidents=second,
                                                      wake=lambda: None)
        assert (gone, no_receiver, retired) == (None, None, server)
    finally:
        server.stop()
    assert refused(b)


def test_tls_error_counts_series_for_serving_listeners_and_survive() -> None:
    counts = TLSErrorCounts()
    web = counts.callback("web")
    assert counts.samples(1.0) == []
    assert [(s.labels, s.value) for s in counts.samples(1.0, serving=["web"])] == [((("listener", "web"),), 0.0)]
    web()
    web()
    assert [(s.labels, s.value) for s in counts.samples(2.0)] == [((("listener", "web"),), 2.0)]
    assert tls_listeners(None, None) == []
