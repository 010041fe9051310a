"""What a reload does to the agent's listeners besides /metrics' own port: the Alertmanager receiver and TLS.

The receiver (`receiver:` section) follows a reload like every other part, built first and swapped in:
- added: bound while building (a taken port fails the reload, nothing running touched), started at the swap;
- removed: stopped after the swap, its requests in flight answered first (exporters.web.Connections);
- listen_address changed: the new address bound while building, started at the swap, then the old one
  stopped — one receiver (the same group tracker) serves both for that moment;
- anything else (path, auth, token, body limit, default severity, TLS): applied to the running listener.
The receiver's counters (exporters.receiver.ReceiverStats) belong to the Receiver, so they survive a reload
that keeps or moves it; one removed and added again starts from 0.

TLS: each listener wraps every new connection with the context current at that moment, so a reload that
changes the web config (even turning TLS on or off) applies to new connections; a renewed certificate file
applies without a reload (agent.core.tlsreload). `TLSErrorCounts` is the agent's
`hostwarden_web_tls_reload_errors_total`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hostwarden.agent.core.samples import MetricDef, Sample, labels_of, metric_defs
from hostwarden.exporters.receiver import (
    STATE_FILE,
    Receiver,
    ReceiverConfig,
    WebhookServer,
    log_listening,
    receiver_tls,
    receiver_token,
)
from hostwarden.exporters.web import TLSSource

log = logging.getLogger(__name__)

LISTENER_METRICS = metric_defs(
    MetricDef("hostwarden_web_tls_reload_errors_total", "counter",
              "Changed TLS certificate files that could not be loaded (the previous certificate is still served).",
              ("listener",)),
)


class ReceiverBindError(Exception):
    """The receiver's new listen address cannot be bound; the running configuration stays."""


class TLSErrorCounts:
    """hostwarden_web_tls_reload_errors_total{listener}: kept by the agent, so reloads never reset it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def callback(self, listener: str) -> Callable[[], None]:
        def count() -> None:
            with self._lock:
                self._counts[listener] = self._counts.get(listener, 0) + 1

        return count

    def samples(self, now: float, *, serving: Iterable[str] = ()) -> list[Sample]:
        """A series for each listener serving TLS now (0 until it fails) or that ever counted an error."""
        with self._lock:
            counts = {name: 0 for name in serving} | self._counts
        return [Sample("hostwarden_web_tls_reload_errors_total", labels_of(listener=name), float(n), now)
                for name, n in sorted(counts.items())]


def tls_listeners(security: Any, receiver_server: WebhookServer | None) -> list[str]:
    """The agent's listeners that serve TLS now."""
    out = []
    if security is not None and security.tls is not None:
        out.append("web")
    if receiver_server is not None and receiver_server.tls is not None:
        out.append("receiver")
    return out


@dataclass
class ReceiverChange:
    """The receiver of a built (not yet installed) configuration."""

    config: ReceiverConfig | None
    token: str | None = None
    tls: TLSSource | None = None
    server: WebhookServer | None = None  # bound for a new address, not started; None: keep the running one
    receiver: Receiver | None = None  # a receiver added by this reload

    def discard(self) -> None:
        """Not installed: give the new port back."""
        if self.server is not None:
            self.server.stop()
            self.server = None


def plan_receiver(new: ReceiverConfig | None, *, running: WebhookServer | None, running_receiver: Receiver | None,
                  incidents: Any, state_dir: str, clock: Callable[[], float], wake: Callable[[], None],
                  lock: Any, on_tls_error: Callable[[], None]) -> ReceiverChange:
    """Build phase: read the token and the web config, bind a new address. Raises SecretError/ValueError,
    ConfigErrors, ReceiverBindError; touches nothing running."""
    if new is None:
        return ReceiverChange(None)
    change = ReceiverChange(new, token=receiver_token(new), tls=receiver_tls(new, on_tls_error=on_tls_error))
    if running is not None and running.config.listen_address == new.listen_address:
        return change
    receiver = running_receiver
    if receiver is None:
        receiver = change.receiver = Receiver(incidents, state_path=os.path.join(state_dir, STATE_FILE),
                                              default_severity=new.default_severity, wake=wake, lock=lock)
    try:
        change.server = WebhookServer(new, receiver.handle, token=change.token, tls=change.tls, clock=clock,
                                      stats=receiver.stats)
    except OSError as e:
        raise ReceiverBindError(f"receiver: cannot listen on {new.listen_address}: {e.strerror or e}") from None
    return change


def install_receiver(change: ReceiverChange, *, server: WebhookServer | None, receiver: Receiver | None,
                     incidents: Any, wake: Callable[[], None]) -> tuple[WebhookServer | None, Receiver | None,
                                                                          WebhookServer | None]:
    """Swap phase (under the agent's locks; no waiting here): returns (server, receiver, retired) — the
    retired listener is for the caller to stop, outside the locks, as it drains its requests."""
    if receiver is not None:  # a request still being answered by a retired listener lands here too
        receiver.incidents, receiver.wake = incidents, wake
    rc = change.config
    if rc is None:
        if server is not None:
            log.info("receiver: removed from the configuration; stopping %s:%d", *server.address)
        return None, None, server
    if change.server is None:
        assert server is not None and receiver is not None
        server.reconfigure(rc, token=change.token, tls=change.tls)
        receiver.tracker.default_severity = rc.default_severity
        return server, receiver, None
    new_server, change.server = change.server, None
    if change.receiver is not None:
        receiver = change.receiver
    assert receiver is not None
    receiver.incidents, receiver.wake = incidents, wake
    receiver.tracker.default_severity = rc.default_severity
    new_server.start()
    log_listening(new_server)
    if server is not None:
        log.info("receiver: moved from %s:%d; stopping the old listener", *server.address)
    return new_server, receiver, server
