"""The agent: wires collectors → store → rules → incidents → outbox, and the /metrics endpoint.

One direction of data flow (design.md). Scheduling is APScheduler's BackgroundScheduler:
- one `collect` job per distinct collector interval (collectors of the same interval run in one
  cycle, then the exposition is rendered once);
- the check runner's own dispatcher thread, which starts each check on its own interval in a bounded
  pool and never waits on a hung check; finished results are published to the store and /metrics
  as they arrive (`publish_checks`);
- one `rules` job per rule group at its interval;
- `incidents` (coalesced updates, storm grouping, backend re-sends) and `heartbeat` (scheduler lag,
  systemd watchdog) jobs. The scheduler lag is the heartbeat's lateness against the previous heartbeat
  (or the job's scheduling) + its period, the largest of the last minute.
Jobs coalesce and never overlap themselves, and a missed run is skipped rather than replayed, so a
paused machine (SIGSTOP, suspend) resumes without a burst of catch-up cycles.

Signals: SIGHUP reloads (an invalid config is rejected and the running one kept), SIGTERM/SIGINT
stop collecting, drain deliveries up to the drain timeout, persist state and exit 0.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from hostwarden.agent.config import AgentConfig, load_config
from hostwarden.agent.core import __version__
from hostwarden.agent.core.clock import AgentClock
from hostwarden.agent.core.paths import ensure_dir
from hostwarden.agent.core.samples import Labels, MetricDef, Sample, labels_of, metric_defs
from hostwarden.agent.core.schema import ConfigErrors, Errors
from hostwarden.agent.core.store import SeriesStore
from hostwarden.exporters.prometheus import Exposition
from hostwarden.exporters.web import MetricsServer
from hostwarden.rules.manager import METRICS as RULE_METRICS

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0  # WATCHDOG=1 at most every 5 s (WatchdogSec=30s wants one every 15 s)
INCIDENT_TICK_SECONDS = 10.0
LAG_WINDOW_SECONDS = 60.0
DEFAULT_DRAIN_SECONDS = 10.0

SELF_METRICS = metric_defs(
    MetricDef("hostwarden_build_info", "gauge", "A metric with a constant '1' value labeled by version and python.",
              ("version", "python")),
    MetricDef("hostwarden_collector_success", "gauge", "Whether the collector's last run succeeded (1) or failed (0).",
              ("collector",)),
    MetricDef("hostwarden_collector_duration_seconds", "gauge", "Duration of the collector's last run.",
              ("collector",)),
    MetricDef("hostwarden_collector_failures_total", "counter", "Collector runs that raised an exception.",
              ("collector",)),
    # node_exporter's names for the same two facts, which dashboards read (collector = hostwarden's name)
    MetricDef("node_scrape_collector_success", "gauge", "node_exporter: Whether a collector succeeded.",
              ("collector",)),
    MetricDef("node_scrape_collector_duration_seconds", "gauge", "node_exporter: Duration of a collector scrape.",
              ("collector",)),
    MetricDef("hostwarden_scheduler_lag_seconds", "gauge",
              "How late the scheduler's heartbeat ran compared to its schedule (largest of the last minute)."),
    MetricDef("hostwarden_last_successful_cycle_timestamp_seconds", "gauge",
              "Unix time of the last collection cycle in which every collector succeeded."),
    MetricDef("hostwarden_config_last_reload_successful", "gauge",
              "Whether the last configuration reload attempt was successful."),
    MetricDef("hostwarden_config_last_reload_success_timestamp_seconds", "gauge",
              "Timestamp of the last successful configuration reload."),
    MetricDef("hostwarden_store_series", "gauge", "Series held in the in-memory sample store."),
    MetricDef("hostwarden_store_memory_bytes", "gauge", "Estimated memory held by the sample store."),
    MetricDef("hostwarden_exposition_series", "gauge", "Series in the last rendered /metrics exposition."),
    MetricDef("hostwarden_exposition_render_duration_seconds", "gauge", "Time the last exposition render took."),
    MetricDef("hostwarden_clock_wall_offset_seconds", "gauge",
              "Wall clock minus the agent's monotonic-anchored clock (non-zero after a wall clock jump)."),
    MetricDef("hostwarden_start_time_seconds", "gauge", "Unix time the agent started."),
)


def _self_metrics() -> dict[str, MetricDef]:
    from hostwarden.agent.incidents.manager import INCIDENT_METRICS

    return {**SELF_METRICS, **INCIDENT_METRICS}


_BUILD_LABELS = labels_of(version=__version__, python=platform.python_version())


@dataclass
class CollectorRun:
    success: bool = True
    duration: float = 0.0
    failures: int = 0
    last_error: str = ""
    labels: Labels = ()  # {collector="<name>"}, built once

    def set_labels(self, name: str) -> Labels:
        self.labels = labels_of(collector=name)
        return self.labels


@dataclass
class Components:
    """Everything built from one config; a reload builds a new set and swaps it in."""

    config: AgentConfig
    collectors: dict[str, Any]
    checks: Any | None
    rule_groups: list[Any]
    tickets_config: Any
    backends: dict[str, Any] = field(default_factory=dict)


def build_collectors(config: AgentConfig) -> dict[str, Any]:
    from hostwarden.collectors import base

    reg = base.registry()
    out: dict[str, Any] = {}
    for name, cfg in config.collectors.items():
        if getattr(cfg, "enabled", True):
            out[name] = reg[name](cfg)
    return out


def load_rules(config: AgentConfig) -> list[Any]:
    """Load the config's rule files; raise ConfigErrors with every problem."""
    from hostwarden.rules.loader import load_rule_files

    errors = Errors()
    groups = load_rule_files(config.rule_files, errors, default_interval=config.evaluation_interval)
    errors.raise_if_any()
    return groups


def load_all(path: str) -> tuple[AgentConfig, list[Any]]:
    """Config and rules together: what `run`, SIGHUP and `check-config` validate."""
    config = load_config(path)
    groups = load_rules(config)
    return config, groups


def tickets_config_of(config: AgentConfig) -> Any:
    """The `tickets:` section, or what an absent section means: the embedded `local` backend."""
    if config.tickets is not None:
        return config.tickets
    from hostwarden.agent.core.yamlsrc import load_yaml
    from hostwarden.exporters.tickets.config import parse_tickets

    errors = Errors()
    node = load_yaml("{}", config.path)
    parsed = parse_tickets(node, errors, node.loc, os.path.dirname(config.path))
    errors.raise_if_any()
    return parsed


class Agent:
    def __init__(self, config: AgentConfig, rule_groups: list[Any], *, listen_address: str | None = None,
                 web_config_file: str | None = None, drain_timeout: float = DEFAULT_DRAIN_SECONDS,
                 notifier: Any | None = None) -> None:
        self.config = config
        self.listen_address = listen_address or config.web.listen_address
        self.web_config_file = web_config_file or config.web.config_file
        self.drain_timeout = drain_timeout
        self.clock = AgentClock()
        self.started_at = self.clock.now()
        self.store = SeriesStore()
        self.exposition = Exposition()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=6)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._lock = threading.RLock()  # guards component swaps (reload) against jobs
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._runs: dict[str, CollectorRun] = {}
        self._last_good_cycle = 0.0
        self._lag = 0.0
        self._lags: list[tuple[float, float]] = []
        self._last_heartbeat_mono: float | None = None
        self._reload_ok = 1.0
        self._reload_ok_at = time.time()
        self._ready = False
        self._freeze_after = int(os.environ.get("HOSTWARDEN_DEBUG_FREEZE_SCHEDULER_AFTER", "0") or 0)
        self._heartbeats = 0
        if notifier is None:
            from hostwarden.agent.core.sdnotify import Notifier

            notifier = Notifier(unset_environment=True)  # plugins must not inherit NOTIFY_SOCKET
        self.notifier = notifier
        self.server: MetricsServer | None = None
        self.receiver_server: Any = None
        self.receiver: Any = None
        self._metric_defs = _self_metrics()
        self.security = None
        if self.web_config_file:  # validated before anything starts: file:line errors, exit 2
            from hostwarden.agent.core.webconfig import load_web_config

            self.security = load_web_config(self.web_config_file)

        from hostwarden.agent.incidents.state import StateDB

        state_dir = ensure_dir(config.state_dir)
        self.state = StateDB(os.path.join(state_dir, "state.db"))
        self._build(config, rule_groups)

    # -- building -----------------------------------------------------------------------------------
    def _build(self, config: AgentConfig, rule_groups: list[Any]) -> None:
        from hostwarden.agent.incidents.diagnosis import Diagnoser
        from hostwarden.agent.incidents.manager import IncidentManager
        from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
        from hostwarden.rules.manager import RuleManager

        self.config = config
        self.collectors = build_collectors(config)
        self.checks = self._build_checks(config)
        self.rules = RuleManager(rule_groups, external_labels=config.external_labels)
        self.rules.restore_state(self.state.load_alert_states(), self.clock.now())
        self._apply_retention()
        self.tickets_config = tickets_config_of(config)
        self.backends = build_backends(self.tickets_config, state_dir=config.state_dir)
        diagnose = Diagnoser(self.store, check_results=self._check_results)
        self.incidents = IncidentManager(self.tickets_config, state=self.state, hostname=config.hostname,
                                         external_labels=config.external_labels, diagnose=diagnose)
        self.outbox = OutboxWorker(self.state, self.backends, poll_interval=float(self.tickets_config.poll_interval))

    def _build_checks(self, config: AgentConfig) -> Any | None:
        checks = [c for c in config.checks if getattr(c, "enabled", True)]
        if not checks:
            return None
        from hostwarden.collectors.checks import CheckRunner

        # started by _start_checks: its dispatcher runs each check on its own interval, never waiting for
        # a run, and calls publish_checks when results changed
        return CheckRunner(checks, default_interval=float(config.global_.interval))

    def _start_checks(self) -> None:
        if self.checks is not None and not self.checks.started:
            self.checks.start(self.clock.now, self.publish_checks)

    def _check_results(self) -> dict[str, Any]:
        return self.checks.last_results() if self.checks is not None else {}

    def _apply_retention(self) -> None:
        by_name, all_names = self.rules.retention()
        self.store.set_retention(by_name, all_names=all_names)

    # -- scheduling ---------------------------------------------------------------------------------
    def _collector_groups(self) -> dict[float, list[str]]:
        groups: dict[float, list[str]] = {}
        for name in self.collectors:
            interval = float(getattr(self.config.collectors[name], "interval", None) or self.config.global_.interval)
            groups.setdefault(interval, []).append(name)
        return groups

    def _schedule(self) -> None:
        for job in self.scheduler.get_jobs():
            job.remove()
        for interval, names in sorted(self._collector_groups().items()):
            self.scheduler.add_job(self._guard(self.collect_cycle), "interval", seconds=interval, args=[names],
                                   id=f"collect:{interval:g}", name=f"collect every {interval:g}s")
        for group in self.rules.groups:
            self.scheduler.add_job(self._guard(self.evaluate_group), "interval", seconds=float(group.interval),
                                   args=[group.name], id=f"rules:{group.name}")
        self.scheduler.add_job(self._guard(self.incident_tick), "interval", seconds=INCIDENT_TICK_SECONDS,
                               id="incidents")
        wd = self.notifier.watchdog_interval()  # half of WatchdogSec when systemd asks for pings
        beat = min(HEARTBEAT_SECONDS, wd) if wd else HEARTBEAT_SECONDS
        self.scheduler.add_job(self._guard(self.heartbeat), "interval", seconds=beat, id="heartbeat")
        # the job's first run is due `beat` from now: measure its lag from here, so a pause before the
        # first heartbeat (or right after a reload re-added the job) shows too, and a reload adds none
        self._last_heartbeat_mono = time.monotonic()

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            if self._stop.is_set():
                return
            try:
                fn(*args)
            except Exception:
                log.exception("job %s failed", fn.__name__)

        run.__name__ = fn.__name__
        return run

    # -- jobs -----------------------------------------------------------------------------------------
    def collect_cycle(self, names: Iterable[str] | None = None) -> None:
        now = self.clock.now()
        all_ok = True
        with self._lock:
            selected = [(n, self.collectors[n]) for n in (names or self.collectors) if n in self.collectors]
            for name, col in selected:
                all_ok &= self._run_collector(name, col, now)
        if all_ok and selected:
            self._last_good_cycle = now
        self.render()

    def _run_collector(self, name: str, col: Any, now: float) -> bool:
        run = self._runs.setdefault(name, CollectorRun())
        start = time.perf_counter()
        try:
            samples = list(col.collect(now))
        except Exception as e:  # isolated: counted, logged once per change, the others go on
            run.duration = time.perf_counter() - start
            run.failures += 1
            msg = f"{type(e).__name__}: {e}"
            if run.success or msg != run.last_error:
                log.error("collector %s failed: %s", name, msg)
            run.success, run.last_error = False, msg
            return False
        run.duration = time.perf_counter() - start
        if not run.success:
            log.info("collector %s recovered", name)
        run.success, run.last_error = True, ""
        self.store.append(name, samples, now)
        self.exposition.update(name, samples, getattr(col, "metrics", None))
        return True

    def publish_checks(self, runner: Any) -> None:
        """The check runner's results changed (called from its publisher thread): store + /metrics."""
        if self._stop.is_set() or runner is not self.checks:  # a runner replaced by a reload stays silent
            return
        now = self.clock.now()
        samples = runner.snapshot(now)
        self.store.append("checks", samples, now)
        self.exposition.update("checks", samples, runner.metrics)

    def evaluate_group(self, group_name: str) -> None:
        with self._lock:
            group = next((g for g in self.rules.groups if g.name == group_name), None)
            if group is None:
                return
            now = self.clock.now()
            transitions = self.rules.evaluate(group, self.store, now)
            if transitions:
                self.incidents.handle(transitions, now)
                self.outbox.wake()
            self.state.save_alert_states(self.rules.export_state())
            self.exposition.update("rules", self.rules.alert_samples(now) + self.rules.self_samples(), RULE_METRICS)
        self.render()

    def incident_tick(self) -> None:
        with self._lock:
            now = self.clock.now()
            self.incidents.tick(now)
            for backend in self.backends.values():
                resend = getattr(backend, "resend", None)
                if callable(resend):
                    resend(now, self.incidents.firing_incidents())
            self.outbox.wake()

    def heartbeat(self) -> None:
        self.note_heartbeat(time.monotonic())
        self._heartbeats += 1
        if self._freeze_after and self._heartbeats >= self._freeze_after:
            log.warning("debug: freezing the scheduler (HOSTWARDEN_DEBUG_FREEZE_SCHEDULER_AFTER)")
            while not self._stop.is_set():
                time.sleep(0.2)
            return
        self.notifier.watchdog()
        self._publish_lag(self.clock.now())  # the lag (e.g. after the process was stopped) must reach the next scrape
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload()

    def note_heartbeat(self, mono: float) -> float:
        """Record a heartbeat run at monotonic time `mono`; returns the scheduler lag gauge's new value.

        The lag is how late this run came after the previous one (or after `_schedule` added the job)
        plus the period: a pause (SIGSTOP, a stall) of P shows as P - period .. P. The gauge is the
        largest lag of the last minute, so a late run stays visible to scrapes after on-time ones."""
        if self._last_heartbeat_mono is not None:
            job = self.scheduler.get_job("heartbeat")
            period = job.trigger.interval.total_seconds() if job is not None else HEARTBEAT_SECONDS
            lag = max(0.0, mono - self._last_heartbeat_mono - period)
            self._lags = [(t, v) for t, v in self._lags if mono - t < LAG_WINDOW_SECONDS] + [(mono, lag)]
            self._lag = max(v for _t, v in self._lags)
        self._last_heartbeat_mono = mono
        return self._lag

    # -- self metrics and rendering ------------------------------------------------------------------
    def self_samples(self, now: float) -> list[Sample]:
        out = [
            Sample("hostwarden_build_info", _BUILD_LABELS, 1.0, now),
            Sample("hostwarden_last_successful_cycle_timestamp_seconds", (), self._last_good_cycle, now),
            Sample("hostwarden_config_last_reload_successful", (), self._reload_ok, now),
            Sample("hostwarden_config_last_reload_success_timestamp_seconds", (), self._reload_ok_at, now),
            Sample("hostwarden_store_series", (), float(self.store.series_count()), now),
            Sample("hostwarden_store_memory_bytes", (), float(self.store.memory_bytes()), now),
            Sample("hostwarden_clock_wall_offset_seconds", (), self.clock.wall_offset(), now),
            Sample("hostwarden_start_time_seconds", (), self.started_at, now),
        ]
        r = self.exposition.last_rendered()
        out.append(Sample("hostwarden_exposition_series", (), float(r.series), now))
        out.append(Sample("hostwarden_exposition_render_duration_seconds", (), r.render_seconds, now))
        for name, run in sorted(self._runs.items()):
            lab = run.labels or run.set_labels(name)
            out.append(Sample("hostwarden_collector_success", lab, 1.0 if run.success else 0.0, now))
            out.append(Sample("hostwarden_collector_duration_seconds", lab, run.duration, now))
            out.append(Sample("hostwarden_collector_failures_total", lab, float(run.failures), now))
            out.append(Sample("node_scrape_collector_success", lab, 1.0 if run.success else 0.0, now))
            out.append(Sample("node_scrape_collector_duration_seconds", lab, run.duration, now))
        return out

    def _publish_lag(self, now: float) -> None:
        """The heartbeat's only news: one series, not the whole self snapshot (most of a cycle's fixed cost)."""
        self.exposition.update("scheduler", [Sample("hostwarden_scheduler_lag_seconds", (), self._lag, now)],
                               self._metric_defs)

    def render(self) -> None:
        """Refresh the agent's own snapshot; the exposition renders on the next scrape."""
        now = self.clock.now()
        self._publish_lag(now)
        samples = self.self_samples(now)
        try:
            samples += self.incidents.self_samples(now)
        except Exception:
            log.exception("incident self-metrics failed")
        self.exposition.update("agent", samples, self._metric_defs)  # rendered on the next scrape

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        security = self.security
        # bind first: a taken port fails the start before any work is done
        self.server = MetricsServer(self.exposition, self.listen_address, telemetry_path=self.config.web.telemetry_path,
                                    security=security, max_requests=self.config.web.max_requests,
                                    on_reload=self.reload, ready=lambda: self._ready)
        self.server.start()
        self.collect_cycle()
        self._start_checks()
        for group in self.rules.groups:
            self.evaluate_group(group.name)
        self.outbox.start()
        if self.config.receiver is not None:  # Alertmanager webhook receiver inside `run`
            from hostwarden.exporters.receiver import start_receiver

            self.receiver_server, self.receiver = start_receiver(
                self.config.receiver, self.incidents, state_dir=self.config.state_dir, wake=self.outbox.wake,
                lock=self._lock)
        self._ready = True
        host, port = self.server.address
        log.info("hostwarden %s listening on %s:%d (%d collectors, %d checks, %d rule groups)", __version__, host,
                 port, len(self.collectors), len(self.config.checks), len(self.rules.groups))
        self.notifier.ready(self.status_line())  # READY=1 strictly before the first WATCHDOG=1
        self._schedule()
        self.scheduler.start()

    def status_line(self) -> str:
        active = self.rules.active_alerts()
        firing = sum(1 for a in active if a.state.value == "firing")
        return (f"{len(self.collectors)} collectors, {len(self.config.checks)} checks, "
                f"{sum(len(g.rules) for g in self.rules.groups)} rules, {firing} firing")

    def request_reload(self) -> None:
        """Signal-safe: the heartbeat job performs the reload."""
        self._reload_requested.set()

    def reload(self) -> bool:
        self.notifier.reloading()
        try:
            config, groups = load_all(self.config.path)
            if config.web.listen_address != self.config.web.listen_address:
                log.warning("web.listen_address changed; it takes effect at the next restart")
            with self._lock:
                old_collectors = set(self.collectors)
                old_collector_objs = list(self.collectors.values())
                old_checks = self.checks
                old_outbox = self.outbox
                self.config = config
                self.collectors = build_collectors(config)
                self.checks = self._build_checks(config)
                self.rules.replace_groups(groups)
                self._apply_retention()
                from hostwarden.agent.incidents.diagnosis import Diagnoser
                from hostwarden.agent.incidents.manager import IncidentManager
                from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends

                old_outbox.stop(drain_timeout=1.0)
                self.tickets_config = tickets_config_of(config)
                self.backends = build_backends(self.tickets_config, state_dir=config.state_dir)
                self.incidents = IncidentManager(self.tickets_config, state=self.state, hostname=config.hostname,
                                                 external_labels=config.external_labels,
                                                 diagnose=Diagnoser(self.store, check_results=self._check_results))
                self.outbox = OutboxWorker(self.state, self.backends,
                                           poll_interval=float(self.tickets_config.poll_interval))
                self.outbox.start()
                if self.receiver is not None:  # the receiver feeds the new incident manager from now on
                    self.receiver.incidents = self.incidents
                    self.receiver.wake = self.outbox.wake
                now = self.clock.now()
                for gone in old_collectors - set(self.collectors):
                    self.store.forget_source(gone, now)
                    self.exposition.remove(gone)
                    self._runs.pop(gone, None)
                if old_checks is not None:
                    old_checks.close()
                for col in old_collector_objs:  # a collector holding a connection (systemd's D-Bus) lets go
                    getattr(col, "close", lambda: None)()
                self._start_checks()
                if self.checks is None:
                    self.store.forget_source("checks", now)
                    self.exposition.remove("checks")
                self._schedule()
        except ConfigErrors as e:
            self._reload_ok = 0.0
            for issue in e.issues:
                log.error("reload rejected: %s", issue)
            log.error("configuration reload failed (%d problems); keeping the running configuration",
                      len(e.issues))
            self._start_checks()  # whichever runner is current keeps running
            self.notifier.ready(self.status_line())
            self.render()
            return False
        except Exception:
            self._reload_ok = 0.0
            log.exception("configuration reload failed; keeping the running configuration")
            self._start_checks()  # whichever runner is current keeps running
            self.notifier.ready(self.status_line())
            self.render()
            return False
        self._reload_ok, self._reload_ok_at = 1.0, time.time()
        log.info("configuration reloaded from %s", self.config.path)
        self.render()
        self.notifier.ready(self.status_line())
        return True

    def stop(self) -> None:
        self.notifier.stopping()
        self._stop.set()
        try:
            self.scheduler.shutdown(wait=True)
        except Exception:
            pass
        if self.server is not None:
            self.server.stop()
        if self.receiver_server is not None:
            self.receiver_server.stop()
        self.outbox.stop(drain_timeout=self.drain_timeout)
        if self.checks is not None:
            self.checks.close()
        with self._lock:
            self.state.save_alert_states(self.rules.export_state())
        self.state.close()
        log.info("hostwarden stopped")

    def run_forever(self) -> int:
        done = threading.Event()

        def on_term(signum: int, _frame: Any) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            done.set()

        def on_hup(_signum: int, _frame: Any) -> None:
            log.info("received SIGHUP, reloading configuration")
            self.request_reload()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)
        try:
            self.start()
        except OSError as e:
            log.error("cannot start: %s (listen address %s)", e.strerror or e, self.listen_address)
            self.state.close()
            return 1
        last_status = ""
        while not done.wait(1.0):
            status = self.status_line()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
        self.stop()
        return 0
