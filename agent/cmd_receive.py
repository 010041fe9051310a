"""`hostwarden receive`: a process that only receives Alertmanager notifications and files their tickets.

The application wiring of the receiver component (exporters.receiver): the agent config, the state database,
the incident manager, the ticket backends and their outbox, and a periodic tick, all on the agent's clock.
`hostwarden run` with a `receiver:` section wires the same component into the agent (agent.daemon).

`GET /metrics` on the receiver's own listener (same TLS, no bearer token: the token is for the webhook)
serves the receiver's counters, the incident manager's self-metrics (incidents, outbox, ticket operations),
hostwarden_web_tls_reload_errors_total{listener="receiver"} when it serves TLS, hostwarden_build_info and
the process metrics, rendered fresh on each scrape.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import threading
from typing import Any

from hostwarden.agent.core import __version__
from hostwarden.agent.core.clock import AgentClock
from hostwarden.agent.core.samples import MetricDef, Sample, labels_of, metric_defs
from hostwarden.exporters.receiver import (
    DEFAULT_LISTEN,
    RECEIVER_METRICS,
    TICK_SECONDS,
    Receiver,
    ReceiverConfig,
    WebhookServer,
    start_receiver,
)

log = logging.getLogger(__name__)

BUILD_INFO = MetricDef("hostwarden_build_info", "gauge",
                       "A metric with a constant '1' value labeled by version and python.", ("version", "python"))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("receive", help="receive Alertmanager webhook notifications and turn groups into tickets")
    p.add_argument("--config", default=None, help="agent config file with `receiver:` and `tickets:` sections")
    p.add_argument("--listen-address", dest="listen_address", default=None,
                   help=f"HOST:PORT to listen on (overrides receiver.listen_address; default {DEFAULT_LISTEN})")
    p.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warn", "error"])
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])
    p.add_argument("--drain-timeout", dest="drain_timeout", type=float, default=10.0,
                   help="seconds to keep delivering queued ticket operations on SIGTERM (default 10)")
    p.set_defaults(func=cmd_receive)


def cmd_receive(args: argparse.Namespace) -> int:
    from hostwarden.agent.core.logsetup import setup_logging
    from hostwarden.agent.core.paths import default_config_path
    from hostwarden.agent.core.schema import ConfigErrors
    from hostwarden.agent.core.secrets import SecretError
    from hostwarden.agent.incidents.outbox import BackendInitError

    setup_logging(args.log_level, args.log_format)
    path = args.config or default_config_path()
    service = None
    try:
        service = ReceiverService.from_config_file(path, listen_address=args.listen_address)
        service.start()
    except ConfigErrors as e:
        for issue in e.issues:
            log.error("%s", issue)
        code = 2
    except (SecretError, ValueError, BackendInitError) as e:
        log.error("%s: %s", path, e)
        code = 2
    except OSError as e:
        log.error("cannot start the receiver: %s", e)
        code = 1
    else:
        return service.run_until_signal(drain_timeout=args.drain_timeout)
    if service is not None:
        service.stop(drain_timeout=0.0)
    return code


class ReceiverService:
    """`hostwarden receive`: the webhook server, the incident manager, the outbox and a periodic tick."""

    def __init__(self, config: Any, receiver_config: ReceiverConfig, *, listen_address: str | None = None) -> None:
        from hostwarden.agent.config import tickets_config_of
        from hostwarden.agent.core.paths import ensure_dir
        from hostwarden.agent.incidents.manager import INCIDENT_METRICS, IncidentManager
        from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
        from hostwarden.agent.incidents.state import StateDB
        from hostwarden.agent.listeners import LISTENER_METRICS, TLSErrorCounts
        from hostwarden.exporters.prometheus import Exposition

        self.config = config
        self.receiver_config = receiver_config
        self.listen_address = listen_address
        self.state_dir = ensure_dir(config.state_dir)
        self.state = StateDB(os.path.join(self.state_dir, "state.db"))
        tickets = tickets_config_of(config)
        self.backends = build_backends(tickets, state_dir=self.state_dir)
        self.incidents = IncidentManager(tickets, state=self.state, hostname=config.hostname,
                                         external_labels=config.external_labels)
        self.outbox = OutboxWorker(self.state, self.backends)
        self.clock = AgentClock()
        self.lock = threading.RLock()  # the incident manager: HTTP threads and the tick thread
        self.server: WebhookServer | None = None
        self.receiver: Receiver | None = None
        self._stop = threading.Event()
        self._tick_thread: threading.Thread | None = None
        self.exposition = Exposition()  # GET /metrics; the process collector included
        self.tls_errors = TLSErrorCounts()
        self._metric_defs = {**metric_defs(BUILD_INFO), **RECEIVER_METRICS, **INCIDENT_METRICS, **LISTENER_METRICS}
        self._build_labels = labels_of(version=__version__, python=platform.python_version())

    @classmethod
    def from_config_file(cls, path: str, *, listen_address: str | None = None) -> ReceiverService:
        from hostwarden.agent.config import load_config

        config = load_config(path)
        rc = config.receiver
        if rc is None:
            raise ValueError("no `receiver:` section: it needs at least token_env or token_file "
                             "(or `auth: none`)")
        return cls(config, rc, listen_address=listen_address)

    def tick(self, now: float) -> None:
        """Coalesced updates, storm grouping and backend re-sends, as the agent's `incidents` job does."""
        with self.lock:
            self.incidents.tick(now)
            firing = self.incidents.firing_incidents() if any(
                callable(getattr(b, "resend", None)) for b in self.backends.values()) else []
        for backend in self.backends.values():
            resend = getattr(backend, "resend", None)
            if callable(resend):
                resend(now, firing)
        self.outbox.wake()

    def self_samples(self, now: float) -> list[Sample]:
        out = [Sample("hostwarden_build_info", self._build_labels, 1.0, now)]
        if self.receiver is not None:
            out += self.receiver.stats.samples(now)
        with self.lock:
            out += self.incidents.self_samples(now)
        serving = ["receiver"] if self.server is not None and self.server.tls is not None else []
        out += self.tls_errors.samples(now, serving=serving)
        return out

    def metrics_body(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """A scrape of the receiver's /metrics: a fresh snapshot, rendered for the scrape's headers."""
        self.exposition.update("receiver", self.self_samples(self.clock.now()), self._metric_defs)
        return self.exposition.body_for(accept, accept_encoding)

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick(self.clock.now())
            except Exception:
                log.exception("receiver: periodic incident tick failed")

    def start(self) -> None:
        self.outbox.start()
        self.server, self.receiver = start_receiver(self.receiver_config, self.incidents, state_dir=self.state_dir,
                                                    clock=self.clock.now, wake=self.outbox.wake, lock=self.lock,
                                                    listen_address=self.listen_address,
                                                    on_tls_error=self.tls_errors.callback("receiver"),
                                                    metrics=self.metrics_body)
        self._tick_thread = threading.Thread(target=self._tick_loop, name="receiver-tick", daemon=True)
        self._tick_thread.start()
        log.info("hostwarden receiver started (%d ticket backends)", len(self.backends))

    def stop(self, drain_timeout: float = 10.0) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop()
        if self._tick_thread is not None:
            self._tick_thread.join(TICK_SECONDS + 1)
        self.outbox.stop(drain_timeout=drain_timeout)
        self.state.close()
        log.info("hostwarden receiver stopped")

    def run_until_signal(self, drain_timeout: float = 10.0) -> int:
        """Serve (after `start()`) until SIGTERM/SIGINT, then stop, draining the outbox."""
        done = threading.Event()

        def on_term(signum: int, _frame: Any) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            done.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        while not done.wait(1.0):
            pass
        self.stop(drain_timeout)
        return 0
