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
from hostwarden.agent.config import AgentConfig, load_config, tickets_config_of
from hostwarden.agent.core import __version__
from hostwarden.agent.core.clock import AgentClock
from hostwarden.agent.core.paths import ensure_dir
from hostwarden.agent.core.samples import Labels, MetricDef, Sample, labels_of, metric_defs
from hostwarden.agent.core.schema import ConfigErrors, Errors
from hostwarden.agent.core.store import SeriesStore
from hostwarden.agent.incidents.maintenance import windows_of
from hostwarden.agent.listeners import tls_listeners
from hostwarden.exporters.prometheus import Exposition
from hostwarden.exporters.web import MetricsServer
from hostwarden.rules.manager import METRICS as RULE_METRICS

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0  # WATCHDOG=1 at most every 5 s (WatchdogSec=30s wants one every 15 s)
INCIDENT_TICK_SECONDS = 10.0
REMEDIATION_TICK_SECONDS = 1.0
STATUS_SECONDS = 5.0  # systemd's STATUS= line (collectors, checks, rules, firing) refreshed this often
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
    from hostwarden.agent.incidents.remediator import REMEDIATION_METRICS
    from hostwarden.agent.incidents.suppress import SILENCE_METRICS
    from hostwarden.agent.listeners import LISTENER_METRICS
    from hostwarden.exporters.receiver import RECEIVER_METRICS

    return {**SELF_METRICS, **INCIDENT_METRICS, **SILENCE_METRICS, **REMEDIATION_METRICS, **LISTENER_METRICS,
            **RECEIVER_METRICS}


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
    """Everything built from one config; a reload builds a new set, validates it, and only then swaps it in."""

    config: AgentConfig
    collectors: dict[str, Any]
    checks: Any | None
    rule_groups: list[Any]
    tickets_config: Any
    backends: dict[str, Any] = field(default_factory=dict)
    incidents: Any = None
    outbox: Any = None
    security: Any = None
    receiver: Any = None  # agent.listeners.ReceiverChange (a reload's receiver, maybe bound to a new port)

    def discard(self) -> None:
        """A set that was not swapped in: give back what it holds (checks, backends' files, a bound port)."""
        if self.checks is not None:
            self.checks.close()
        close_backends(self.backends)
        if self.receiver is not None:
            self.receiver.discard()


class ReloadError(Exception):
    """The new set could not be built; nothing running was touched."""


def close_backends(backends: dict[str, Any]) -> None:
    for name, backend in backends.items():
        closer = getattr(backend, "close", None)
        if callable(closer):
            try:
                closer()
            except Exception as e:
                log.warning("tickets backend %s: closing it failed: %s", name, e)


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
    """Config and rules together: what `run`, SIGHUP and `check-config` validate. Every problem of every
    file in one ConfigErrors: the rule files named by a config that has errors of its own are checked too."""
    try:
        config = load_config(path)
    except ConfigErrors as e:
        files = getattr(e, "rule_files", None)
        if not files:
            raise
        from hostwarden.rules.loader import load_rule_files

        errors = Errors()
        load_rule_files(files, errors, default_interval=getattr(e, "evaluation_interval", 60.0))
        if not errors.issues:
            raise
        raise ConfigErrors([*e.issues, *errors.issues]) from None
    groups = load_rules(config)
    return config, groups



def _enabled_checks(config: AgentConfig) -> set[str]:
    return {c.name for c in config.checks if getattr(c, "enabled", True)}


class Agent:
    def __init__(self, config: AgentConfig, rule_groups: list[Any], *, listen_address: str | None = None,
                 web_config_file: str | None = None, drain_timeout: float = DEFAULT_DRAIN_SECONDS,
                 notifier: Any | None = None, dry_run: bool = False, enable_lifecycle: bool = False) -> None:
        self.config = config
        self.dry_run = dry_run  # remediation: record what would run, run nothing (`run --dry-run`)
        self.enable_lifecycle = enable_lifecycle  # POST /-/reload (as Prometheus' --web.enable-lifecycle)
        self._web_config_flag = web_config_file
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
        # Locks, taken in this order and never around slow work (I/O, diagnosis, collectors):
        self._lock = threading.RLock()  # component references (a reload swaps them)
        self._rules_lock = threading.RLock()  # the rule manager: evaluations and the reload's replace_groups
        self._incidents_lock = threading.RLock()  # the incident manager: intake, incident tick, receiver
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._reload_lock = threading.Lock()  # one reload at a time (SIGHUP thread, POST /-/reload)
        self._reload_thread: threading.Thread | None = None
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
        from hostwarden.agent.listeners import TLSErrorCounts

        self.tls_errors = TLSErrorCounts()  # hostwarden_web_tls_reload_errors_total, across reloads
        if self.web_config_file:  # validated before anything starts: file:line errors, exit 2
            from hostwarden.agent.core.webconfig import load_web_config

            self.security = load_web_config(self.web_config_file, on_tls_error=self.tls_errors.callback("web"))

        from hostwarden.agent.incidents.state import StateDB

        state_dir = ensure_dir(config.state_dir)
        self.state = StateDB(os.path.join(state_dir, "state.db"))
        from hostwarden.agent.incidents.history import CheckHistory

        self.check_history = CheckHistory(self.state)
        self._silence_samples: list[Sample] = []  # hostwarden_alerts_silenced, refreshed by each evaluation
        self._build(config, rule_groups)
        from hostwarden.agent.incidents.intake import Intake

        # transitions reach the incident manager (diagnosis, state database) off the evaluation path
        self.intake = Intake(manager=lambda: self.incidents, lock=self._incidents_lock,
                             save_state=self.state.save_alert_states, wake=lambda: self.outbox.wake())

    # -- building -----------------------------------------------------------------------------------
    def _build(self, config: AgentConfig, rule_groups: list[Any]) -> None:
        from hostwarden.rules.manager import RuleManager

        c = self.build_components(config, rule_groups, strict=False)
        self.config = config
        self.collectors = c.collectors
        self.checks = c.checks
        self.rules = RuleManager(rule_groups, external_labels=config.external_labels)
        self.rules.restore_state(self.state.load_alert_states(), self.clock.now())
        self._apply_retention()
        self.tickets_config = c.tickets_config
        self.backends = c.backends
        self.incidents = c.incidents
        self.outbox = c.outbox
        self._build_remediation(config, rule_groups)

    def _build_remediation(self, config: AgentConfig, rule_groups: list[Any]) -> None:
        """Remediation (docs/remediation.md): built once, reconfigured on reload (the attempt bounds survive)."""
        from hostwarden.agent.incidents.remediator import PlanIndex, Remediator

        plans = PlanIndex.build(rule_groups, config.checks)
        kw = dict(settings=config.remediation, plans=plans, incidents=self.incidents, hostname=config.hostname,
                  external_labels=config.external_labels)
        if getattr(self, "remediator", None) is None:
            self.remediator = Remediator(dry_run=self.dry_run, **kw)
            self.remediator.restore(self.clock.now())  # the bounds survive a restart
        else:
            self.remediator.configure(**kw)
        self.remediator.is_silenced = self.incidents.is_silenced  # silences and maintenance windows

    def build_components(self, config: AgentConfig, rule_groups: list[Any], *, strict: bool = True) -> Components:
        """Build every part of `config` without touching what runs. `strict` (reload): a check that cannot be
        set up, the web config or the receiver's token failing is an error too. Raises ConfigErrors,
        ReloadError, BackendInitError, SecretError…; whatever was built is given back first."""
        from hostwarden.agent.incidents.diagnosis import Diagnoser
        from hostwarden.agent.incidents.manager import IncidentManager
        from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends

        c = Components(config=config, collectors={}, checks=None, rule_groups=rule_groups, tickets_config=None)
        try:
            c.collectors = build_collectors(config)
            c.checks = self._build_checks(config)
            if strict and c.checks is not None:
                problems = self._new_setup_errors(c.checks)
                if problems:
                    raise ReloadError("; ".join(f"check {n}: {m}" for n, m in sorted(problems.items())))
            c.tickets_config = tickets_config_of(config)
            c.backends = build_backends(c.tickets_config, state_dir=config.state_dir)
            if strict:
                web_file = self._web_config_flag or config.web.config_file
                if web_file:
                    from hostwarden.agent.core.webconfig import load_web_config

                    c.security = load_web_config(web_file, on_tls_error=self.tls_errors.callback("web"))
            diagnose = Diagnoser(self.store, check_results=self._check_results)
            c.incidents = IncidentManager(c.tickets_config, state=self.state, hostname=config.hostname,
                                          external_labels=config.external_labels, diagnose=diagnose,
                                          windows=windows_of(config))
            c.outbox = OutboxWorker(self.state, c.backends, poll_interval=float(c.tickets_config.poll_interval))
            if strict:  # token, TLS, and a new address bound now: a taken port fails the reload here
                from hostwarden.agent.listeners import plan_receiver

                c.receiver = plan_receiver(config.receiver, running=self.receiver_server,
                                           running_receiver=self.receiver, incidents=c.incidents,
                                           state_dir=self.config.state_dir, clock=self.clock.now,
                                           wake=lambda: self.outbox.wake(), lock=self._incidents_lock,
                                           on_tls_error=self.tls_errors.callback("receiver"))
        except BaseException:
            c.discard()
            raise
        return c

    def _new_setup_errors(self, runner: Any) -> dict[str, str]:
        """Checks of `runner` that cannot be set up, except those configured exactly as a running check that
        could not be set up either (reported UNKNOWN since the start: a reload must not fail over it)."""
        problems = runner.setup_errors()
        if self.checks is None or not problems:
            return problems
        old_failed, old_cfg, new_cfg = self.checks.setup_errors(), self.checks.configs(), runner.configs()
        return {n: m for n, m in problems.items() if not (n in old_failed and old_cfg.get(n) == new_cfg.get(n))}

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
                                   args=[group.key], id=f"rules:{group.key}")
        self.scheduler.add_job(self._guard(self.incident_tick), "interval", seconds=INCIDENT_TICK_SECONDS,
                               id="incidents")
        self._schedule_remediation()
        wd = self.notifier.watchdog_interval()  # half of WatchdogSec when systemd asks for pings
        beat = min(HEARTBEAT_SECONDS, wd) if wd else HEARTBEAT_SECONDS
        self.scheduler.add_job(self._guard(self.heartbeat), "interval", seconds=beat, id="heartbeat")
        # the job's first run is due `beat` from now: measure its lag from here, so a pause before the
        # first heartbeat (or right after a reload re-added the job) shows too, and a reload adds none
        self._last_heartbeat_mono = time.monotonic()

    def _schedule_remediation(self) -> None:
        """The 1 s remediation step runs only while there is something to decide or to record."""
        job = self.scheduler.get_job("remediation")
        if self.remediator.idle and job is not None:
            job.remove()
        elif not self.remediator.idle and job is None:
            self.scheduler.add_job(self._guard(self.remediate), "interval", seconds=REMEDIATION_TICK_SECONDS,
                                   id="remediation")

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
        with self._lock:  # only to read the current set: a slow collector holds up nothing else
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
            # /metrics: as node_exporter, a failed collector's series are absent (its success metric says why),
            # not its last values presented as current; rules still see them for the store's lookback
            self.exposition.remove(name)
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
        self.check_history.record(samples, now)  # up/down transitions, for the report's availability
        self.store.append("checks", samples, now)
        self.exposition.update("checks", samples, runner.metrics)

    def evaluate_group(self, key: Any) -> None:
        """Evaluate the group `key` (a GroupKey: file and name; a plain name picks the first group of that name)."""
        with self._rules_lock:
            group = next((g for g in self.rules.groups if key in (g.key, g.name)), None)
            if group is None:
                return
            now = self.clock.now()
            transitions = self.rules.evaluate(group, self.store, now)
            rows = self.rules.export_state()
            active = self.rules.active_alerts()
            self.exposition.update("rules", self.rules.alert_samples(now) + self.rules.self_samples(), RULE_METRICS)
        self._silence_samples = self.incidents.suppress.samples(self.state, active, now)  # hostwarden_alerts_silenced
        # decisions, diagnosis and the state save happen on the intake's thread, in evaluation order
        self.intake.submit(transitions, rows, now)
        self.render()

    def incident_tick(self) -> None:
        with self._lock:
            backends = dict(self.backends)
        resenders = [r for r in (getattr(b, "resend", None) for b in backends.values()) if callable(r)]
        with self._incidents_lock:
            now = self.clock.now()
            self.incidents.tick(now)
            firing = self.incidents.firing_incidents() if resenders else []
        for resend in resenders:  # backend I/O outside every lock
            resend(now, firing)
        self.outbox.wake()

    def remediate(self) -> None:
        """Decide and dispatch remediation actions; record finished ones (the actions run in their own threads)."""
        if self.remediator.idle:
            return
        with self._rules_lock:
            alerts = self.rules.active_alerts()
        with self._incidents_lock:
            self.remediator.step(alerts, self.clock.now())
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
            *self.tls_errors.samples(now, serving=tls_listeners(self.security, self.receiver_server)),
        ]
        receiver = self.receiver
        if receiver is not None:  # the `receiver:` section's counters
            out += receiver.stats.samples(now)
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
            samples += self._silence_samples
        except Exception:
            log.exception("incident self-metrics failed")
        if self.remediator.plans:
            samples += self.remediator.self_samples(now)
        self.exposition.update("agent", samples, self._metric_defs)  # rendered on the next scrape

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        from hostwarden.agent.webview import AgentWebView
        from hostwarden.exporters.webapp import WebApp

        self.incidents.runbook_base_url = self._runbook_base_url(self.config)
        security = self.security
        # bind first: a taken port fails the start before any work is done
        self.server = MetricsServer(self.exposition, self.listen_address, telemetry_path=self.config.web.telemetry_path,
                                    security=security, max_requests=self.config.web.max_requests,
                                    on_reload=self.reload if self.enable_lifecycle else None,
                                    ready=lambda: self._ready,
                                    app=WebApp(AgentWebView(self), telemetry_path=self.config.web.telemetry_path))
        self.server.start()
        self.collect_cycle()
        self._start_checks()
        for group in self.rules.groups:
            self.evaluate_group(group.key)
        self.intake.start()
        self.outbox.start()
        if self.config.receiver is not None:  # Alertmanager webhook receiver inside `run`
            from hostwarden.exporters.receiver import start_receiver

            self.receiver_server, self.receiver = start_receiver(
                self.config.receiver, self.incidents, state_dir=self.config.state_dir, clock=self.clock.now,
                wake=lambda: self.outbox.wake(), lock=self._incidents_lock,
                on_tls_error=self.tls_errors.callback("receiver"))
        self._ready = True
        host, port = self.server.address
        log.info("hostwarden %s listening on %s:%d (%d collectors, %d checks, %d rule groups)", __version__, host,
                 port, len(self.collectors), len(self.config.checks), len(self.rules.groups))
        self.notifier.ready(self.status_line())  # READY=1 strictly before the first WATCHDOG=1
        self._schedule()
        self.scheduler.start()
        self._reload_thread = threading.Thread(target=self._reload_loop, name="reload", daemon=True)
        self._reload_thread.start()

    def _reload_loop(self) -> None:
        """Reloads requested by SIGHUP run here, off the scheduler: heartbeats (watchdog pings) go on."""
        while not self._stop.is_set():
            if not self._reload_requested.wait(60.0):  # stop() sets it too: no periodic wake-up needed
                continue
            self._reload_requested.clear()
            if self._stop.is_set():
                return
            try:
                self.reload()
            except Exception:
                log.exception("configuration reload failed")

    def _runbook_base_url(self, config: AgentConfig) -> str:
        """web.runbook_base_url (default: this agent's URL, which serves the runbooks); sets external_url."""
        from hostwarden.agent.incidents.runbooks import agent_urls

        tls = self.security is not None and self.security.ssl_context() is not None
        self.external_url, base = agent_urls(config, tls=tls)
        return base

    def status_line(self) -> str:
        active = self.rules.active_alerts()
        firing = sum(1 for a in active if a.state.value == "firing")
        return (f"{len(self.collectors)} collectors, {len(self.config.checks)} checks, "
                f"{sum(len(g.rules) for g in self.rules.groups)} rules, {firing} firing")

    def request_reload(self) -> None:
        """Signal-safe: the reload thread performs the reload."""
        self._reload_requested.set()

    def reload(self) -> bool:
        """Build the whole new set, then swap it in. Any failure leaves everything running as it was."""
        with self._reload_lock:
            self.notifier.reloading()
            try:
                config, groups = load_all(self.config.path)
                new = self.build_components(config, groups)
            except ConfigErrors as e:
                for issue in e.issues:
                    log.error("reload rejected: %s", issue)
                return self._reload_failed(f"{len(e.issues)} problems")
            except Exception as e:
                return self._reload_failed(f"{type(e).__name__}: {e}")
            self._swap(new)
            self._reload_ok, self._reload_ok_at = 1.0, time.time()
            log.info("configuration reloaded from %s", self.config.path)
            self.render()
            self.notifier.ready(self.status_line())
            return True

    def _reload_failed(self, why: str) -> bool:
        self._reload_ok = 0.0
        log.error("configuration reload failed (%s); keeping the running configuration", why)
        self.render()
        self.notifier.ready(self.status_line())
        return False

    def _swap(self, new: Components) -> None:
        """Install a built set. Kept: the state database (pending outbox rows, incidents), the incident
        manager's backlog, alert states of unchanged rules, results of unchanged checks."""
        config = new.config
        if config.web.listen_address != self.config.web.listen_address:
            log.warning("web.listen_address changed; it takes effect at the next restart")
        old_outbox, old_checks, old_backends = self.outbox, self.checks, self.backends
        removed_checks = _enabled_checks(self.config) - _enabled_checks(config)
        outbox_running = bool(getattr(old_outbox, "_threads", None))
        if new.checks is not None and old_checks is not None:
            new.checks.inherit(old_checks)
        if (new.security is not None and new.security.tls_enabled) != (
                self.security is not None and self.security.tls_enabled):
            log.info("web: TLS turned %s for new connections (open connections keep theirs until they close)",
                     "on" if new.security is not None and new.security.tls_enabled else "off")
        self.security = new.security  # TLS (for new connections), basic auth and headers
        new.incidents.runbook_base_url = self._runbook_base_url(config)
        retired_receiver = None
        with self._lock, self._rules_lock, self._incidents_lock:
            old_collectors = set(self.collectors)
            old_collector_objs = list(self.collectors.values())
            new.incidents.carry_over(self.incidents)
            self.config = config
            self.collectors = new.collectors
            self.checks = new.checks
            self.rules.replace_groups(new.rule_groups)
            self._apply_retention()
            self.tickets_config = new.tickets_config
            self.backends = new.backends
            self.incidents = new.incidents
            self.outbox = new.outbox
            if self.server is not None:  # TLS (new connections), basic auth and headers of the re-read web config
                self.server.security = new.security
            if new.receiver is not None:  # started, moved, stopped or reconfigured (agent.listeners)
                from hostwarden.agent.listeners import install_receiver

                self.receiver_server, self.receiver, retired_receiver = install_receiver(
                    new.receiver, server=self.receiver_server, receiver=self.receiver, incidents=self.incidents,
                    wake=lambda: self.outbox.wake())
            now = self.clock.now()
            for gone in old_collectors - set(self.collectors):
                self.store.forget_source(gone, now)
                self.exposition.remove(gone)
                self._runs.pop(gone, None)
            if self.checks is None:
                self.store.forget_source("checks", now)
                self.exposition.remove("checks")
            try:  # their incidents close as "check removed", not as if the problem were fixed
                self.incidents.retire_checks(removed_checks, now)
            except Exception:
                log.exception("closing the incidents of removed checks %s failed", sorted(removed_checks))
            self._schedule()
        # the old worker delivers nothing more before the new one starts (no row is attempted twice at once)
        old_outbox.stop(drain_timeout=0.0)
        if outbox_running:
            self.outbox.start()
        if retired_receiver is not None:  # its requests in flight are answered (into the new manager) first
            retired_receiver.stop()
        with self._incidents_lock:
            self._build_remediation(config, new.rule_groups)
        self._schedule_remediation()
        if old_checks is not None:
            old_checks.close()
        for col in old_collector_objs:  # a collector holding a connection (systemd's D-Bus) lets go
            if col not in self.collectors.values():
                getattr(col, "close", lambda: None)()
        self._start_checks()
        close_backends(old_backends)

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
        self.remediator.close()
        if self._reload_thread is not None:
            self._reload_requested.set()  # wakes the reload thread, which sees _stop and returns
            self._reload_thread.join(5.0)
        if self._reload_lock.acquire(timeout=10.0):  # a reload in progress finishes first (bounded)
            self._reload_lock.release()
        else:
            log.warning("a configuration reload is still in progress (blocked reading a file?); stopping anyway")
        intake_done = self.intake.stop(timeout=self.drain_timeout)  # evaluated decisions are committed first
        self.outbox.stop(drain_timeout=self.drain_timeout)
        close_backends(self.backends)
        if self.checks is not None:
            self.checks.close()
        if intake_done:  # else the states saved with the last recorded batch stay (its successors replay)
            with self._rules_lock, self._incidents_lock:
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
        while not done.wait(STATUS_SECONDS):  # signals interrupt the wait; their handlers set `done`
            status = self.status_line()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
        self.stop()
        return 0
