"""Service health checks: the config schema, the check registry and the runner the daemon schedules.

A check module:

    @dataclass(frozen=True)
    class TcpConfig(CheckConfig):          # YAML keys = field names; name/type/interval/timeout/labels inherited
        address: str = ""

    @register_check("tcp")
    class TcpCheck:
        Config = TcpConfig
        metrics = metric_defs(MetricDef("hostwarden_tcp_connect_seconds", "gauge", "...", ("check",)))
        def __init__(self, config: TcpConfig) -> None: ...
        def run(self, deadline: float) -> CheckResult: ...     # deadline: time.monotonic() value
        def close(self) -> None: ...                            # optional

`run` returns check-specific samples built with `sample(...)` (no `check` label, no timestamp); the
runner adds `check=<name>` and the check's configured `labels:` to every sample and stamps them.

The runner (CheckRunner) keeps its own schedule: in the daemon, `start(clock, on_change)` runs a
dispatcher thread that starts each check when it is due, on the check's own interval, in a bounded
worker pool, without ever waiting for a run; results are published as runs finish (`on_change`).
A check due again while its previous run is in flight is not started twice (the skipped run is
counted in `hostwarden_check_overruns_total`). A run still going past its timeout is abandoned:
reported as `timeout after Ns`, not started again until the stuck thread returns, and its thread
leaves the pool (Python cannot kill a thread; a stuck thread must not starve the others and, being a
daemon thread, cannot block interpreter exit either). `collect(now)` is the passive form (tests,
one-shot use): start what is due at `now`, wait for it, return the latest results.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from hostwarden.agent.core.registry import Registry
from hostwarden.agent.core.remedy import parse_plan
from hostwarden.agent.core.samples import Labels, MetricDef, Sample, labels_of, metric_defs
from hostwarden.agent.core.schema import MISSING, Duration, Errors, build_tagged
from hostwarden.agent.core.yamlsrc import Loc, LocDict, LocList

log = logging.getLogger(__name__)


class Status(IntEnum):
    """Nagios plugin states; every check maps onto them."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the runner or the checks set themselves; a configured label may not shadow them.
RESERVED_LABELS = frozenset({
    "check", "type", "name", "state", "path", "file", "pattern", "label", "uom", "instance", "job",
})


@dataclass(frozen=True)
class CheckConfig:
    """Options every check has. Subclasses add their own; a subclass `validate` must extend super()'s."""

    name: str
    type: str = ""  # set by parse_checks from the `type:` key
    interval: Duration | None = None  # None: the runner's default_interval (global.interval)
    timeout: Duration = Duration(10)
    labels: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    remediate: Any = None  # parsed by parse_checks into an agent.core.remedy.Plan (docs/remediation.md)

    def validate(self) -> list[str]:
        problems = []
        if not self.name.strip() or "\n" in self.name:
            problems.append("name must be a non-empty single line")
        if self.timeout <= 0:
            problems.append("timeout must be positive")
        if self.interval is not None and self.interval <= 0:
            problems.append("interval must be positive")
        if self.interval is not None and self.timeout > self.interval:
            problems.append(f"timeout ({self.timeout:g}s) must not exceed interval ({self.interval:g}s)")
        for key in self.labels:
            if not _LABEL_NAME.match(key) or key.startswith("__"):
                problems.append(f"labels: {key!r} is not a valid label name")
            elif key in RESERVED_LABELS:
                problems.append(f"labels: {key!r} is set by the check itself and cannot be configured")
        return problems

    def with_base_dir(self, base_dir: str) -> CheckConfig:
        """Resolve relative paths against the config file's directory (overridden where paths exist)."""
        return self


def resolve_path(path: str | None, base_dir: str) -> str | None:
    if not path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


@dataclass(frozen=True)
class CheckResult:
    """One run's outcome. `ok` means fully OK (up 1); `status` is the Nagios state code."""

    ok: bool
    status: int = Status.OK
    message: str = ""
    samples: list[Sample] = field(default_factory=list)
    details: str = ""  # longer context for tickets (a plugin's long output), capped by the check

    @classmethod
    def failed(cls, message: str, *, status: int = Status.CRITICAL, samples: list[Sample] | None = None,
               details: str = "") -> CheckResult:
        return cls(ok=False, status=status, message=message, samples=list(samples or []), details=details)


def sample(metric: str, value: float, /, **labels: object) -> Sample:
    """A check-specific sample; the runner adds `check` and configured labels and the timestamp."""
    return Sample(metric, labels_of(labels), float(value), 0.0)


class Check(Protocol):
    metrics: dict[str, MetricDef]

    def run(self, deadline: float) -> CheckResult: ...


# -- registry -----------------------------------------------------------------------------------

ALL_CHECK_MODULES: tuple[str, ...] = (
    "hostwarden.collectors.check_systemd",
    "hostwarden.collectors.check_process",
    "hostwarden.collectors.check_tcp",
    "hostwarden.collectors.check_http",
    "hostwarden.collectors.check_nagios",
    "hostwarden.collectors.check_file",
    "hostwarden.collectors.check_logmatch",
)


def _validate(type_name: str, cls: type) -> None:
    if not issubclass(cls.Config, CheckConfig):  # type: ignore[attr-defined]
        raise TypeError(f"check type {type_name!r}: Config must subclass CheckConfig")
    if not callable(getattr(cls, "run", None)):
        raise TypeError(f"check type {type_name!r} has no run(deadline) method")


_REGISTRY = Registry("check type", ALL_CHECK_MODULES, "type_name", validate=_validate)
register_check = _REGISTRY.register
check_types = _REGISTRY.classes


# -- config -------------------------------------------------------------------------------------

def parse_checks(node: Any, errors: Errors, loc: Loc, base_dir: str) -> list[CheckConfig] | Any:
    """The `checks:` section: a list of mappings whose `type:` picks the check class."""
    if node is None:
        return []
    if not isinstance(node, list):
        errors.add(loc, f"checks: expected a list of checks, got {node!r}")
        return MISSING
    types = check_types()
    registry = {name: (lambda cls=cls: cls.Config) for name, cls in types.items()}
    out: list[CheckConfig] = []
    seen: dict[str, Loc] = {}
    ok = True
    for i, item in enumerate(node):
        iloc = node.item_loc(i) if isinstance(node, LocList) else loc
        cfg = build_tagged(registry, item, errors, loc=iloc, path=f"checks[{i}]")
        if cfg is MISSING:
            ok = False
            continue
        cfg = dataclasses.replace(cfg, type=item["type"]).with_base_dir(base_dir)
        if cfg.remediate is not None:
            plan = parse_plan(cfg.remediate, errors, item.key_loc("remediate"), where=f"checks[{i}].remediate")
            if plan is None:
                ok = False
                continue
            cfg = dataclasses.replace(cfg, remediate=plan)
        nloc = item.value_loc("name") if isinstance(item, LocDict) else iloc
        if cfg.name in seen:
            errors.add(nloc, f"checks[{i}]: duplicate check name {cfg.name!r} (first defined at line "
                             f"{seen[cfg.name].line})")
            ok = False
            continue
        seen[cfg.name] = nloc
        out.append(cfg)
    return out if ok else MISSING


# -- runner -------------------------------------------------------------------------------------

COMMON_METRICS = metric_defs(
    MetricDef("hostwarden_check_up", "gauge", "1 when the check's last run was fully OK, else 0.",
              ("check", "type")),
    MetricDef("hostwarden_check_status", "gauge",
              "Nagios state of the last run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", ("check",)),
    MetricDef("hostwarden_check_duration_seconds", "gauge", "Wall time of the check's last run.", ("check",)),
    MetricDef("hostwarden_check_last_run_timestamp_seconds", "gauge",
              "Unix time the check's last run started.", ("check",)),
    MetricDef("hostwarden_check_timeouts_total", "counter", "Runs abandoned at the check's timeout.",
              ("check",)),
    MetricDef("hostwarden_check_overruns_total", "counter",
              "Scheduled runs skipped: the check's previous run was still in flight, or no worker was free "
              "before the run's timeout.", ("check",)),
    MetricDef("hostwarden_check_workers", "gauge", "Size of the check runner's worker pool (max_workers)."),
    MetricDef("hostwarden_check_workers_busy", "gauge", "Workers running a check right now."),
    MetricDef("hostwarden_check_queued", "gauge", "Checks due and waiting for a free worker right now."),
    MetricDef("hostwarden_check_queue_wait_seconds_total", "counter",
              "Time due runs spent waiting for a free worker (its rate: the average number of runs waiting)."),
    MetricDef("hostwarden_check_stuck_threads", "gauge",
              "Threads of runs abandoned at their timeout and still blocked (outside the pool; one per check "
              "at most, as a stuck check is not started again until its thread returns)."),
)

WORKER_IDLE_SECONDS = 60.0  # an idle worker exits after this; the pool grows again on demand
_MAX_SLEEP = 60.0  # the dispatcher re-reads the clock at least this often


@dataclass
class _State:
    config: CheckConfig
    check: Any  # the check instance, or None when construction failed
    interval: float
    labels: Labels  # check name + configured labels, merged into every sample
    next_due: float = -math.inf  # in `now` time (the agent clock)
    # the current run: queued (due, waiting for a worker) -> running (a worker is in run()) -> outcome
    queued: bool = False
    queued_mono: float = 0.0
    running: bool = False
    worker: _Worker | None = None
    started_mono: float = 0.0
    started_at: float = 0.0
    deadline: float = 0.0
    outcome: tuple[CheckResult, float] | None = None  # (result, duration) set by the worker
    abandoned: bool = False  # still running past deadline + grace: reported as a timeout
    missed: bool = False  # a due time passed while the abandoned run was stuck: start as soon as it returns
    # the latest published result
    result: CheckResult | None = None
    result_at: float = 0.0
    duration: float = 0.0
    run_started_at: float = 0.0
    timeouts: int = 0
    overruns: int = 0
    overruns_at: float = 0.0
    overrun_logged: bool = False
    published: list[Sample] = field(default_factory=list)
    logged: tuple[bool, int] | None = None


@dataclass
class _Worker:
    name: str
    retired: bool = False  # its run was abandoned: it leaves the pool and exits when the run returns


class CheckRunner:
    """Schedules checks on their own intervals in a bounded worker pool and exposes their results.

    Two ways to drive it:
    - active (the daemon): `start(clock, on_change)` runs a dispatcher thread that starts every check
      when it is due, without waiting for any run, and calls `on_change(runner)` from a publisher
      thread whenever results changed; `snapshot()` then returns the latest samples.
    - passive (tests, one-shot use): `collect(now)` starts the checks due at `now`, waits for them
      (bounded by their deadlines and `max_wait`) and returns the latest samples.

    Scheduling: a check runs once per interval on its own grid (`next_due += interval`; after a
    pause longer than an interval it starts once and re-anchors, never catching up). A check due
    while its previous run is still in flight is not started twice: the due run is skipped and
    counted in `hostwarden_check_overruns_total` (a run finishing within its grace is waited for
    instead, so `timeout == interval` does not skip every other run). A run's deadline is the time it
    was due + its timeout. At most `max_workers` runs execute at once; a due check waits in a queue
    for a free worker (`hostwarden_check_queued`, `hostwarden_check_queue_wait_seconds_total`), and
    one still queued at its deadline is not started: UNKNOWN "not started within its timeout" and
    counted as an overrun. A run still going at its deadline + `grace` is abandoned:
    reported as `timeout after Ns`, its thread leaves the pool (Python cannot kill a thread) and a
    new worker may take its place, and the check is not started again until that thread returns.
    """

    name = "checks"

    def __init__(self, checks: list[CheckConfig], *, max_workers: int = 8, default_interval: float = 10.0,
                 max_wait: float | None = None, grace: float = 0.25,
                 monotonic: Callable[[], float] = time.monotonic, types: Mapping[str, type] | None = None) -> None:
        """`default_interval`: for checks without `interval:` (the daemon passes global.interval).
        `max_wait`: cap on how long one passive collect() waits for the runs it started (None: until
        they finish or are abandoned). `grace`: how long past its deadline a run may take to return
        its own timeout result before it is declared stuck. `types`: the check registry (tests)."""
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.max_wait = max_wait
        self.grace = grace
        self._mono = monotonic
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait here for queued runs
        self._changed = threading.Condition(self._lock)  # a run ended / the runner closes
        self._publish = threading.Condition(self._lock)  # the publisher waits here for changes
        self._states: dict[str, _State] = {}
        self._queue: deque[_State] = deque()
        self._workers = 0  # live pool workers (not counting retired ones)
        self._busy = 0  # pool workers running a check
        self._spawned = 0
        self._queue_wait = 0.0  # seconds due runs waited for a worker, summed
        self._publish_pending = False
        self._closing = False
        self._last_now = 0.0
        self._threads: list[threading.Thread] = []  # dispatcher and publisher (active mode)
        self.metrics: dict[str, MetricDef] = dict(COMMON_METRICS)
        types = check_types() if types is None else types
        for cfg in checks:
            if not cfg.enabled:
                continue
            if cfg.name in self._states:
                raise ValueError(f"duplicate check name {cfg.name!r}")
            cls = types[cfg.type]
            for mname, mdef in cls.metrics.items():
                self.metrics.setdefault(mname, mdef)
            try:
                inst = cls(cfg)
                error = None
            except Exception as e:  # a check that cannot even be built reports why, like a failed run
                log.warning("check %s: cannot set up: %s", cfg.name, e)
                inst, error = None, f"cannot set up: {e}"
            st = _State(config=cfg, check=inst, interval=float(cfg.interval or default_interval),
                        labels=labels_of(cfg.labels, check=cfg.name))
            if error is not None:
                st.outcome = (CheckResult.failed(error, status=Status.UNKNOWN), 0.0)
            self._states[cfg.name] = st

    # -- active mode --------------------------------------------------------------------------------
    def start(self, clock: Callable[[], float], on_change: Callable[[CheckRunner], None] | None = None) -> None:
        """Run the checks from now on: a dispatcher thread starts each check when due (reading `clock`,
        the agent's clock, for `now`), and `on_change(self)` is called from a publisher thread after
        results changed (coalesced: one call covers every change since the previous one)."""
        with self._lock:
            if self._threads or self._closing:
                return
            self._threads = [
                threading.Thread(target=self._dispatch_loop, args=(clock,), daemon=True, name="checks-dispatch"),
                threading.Thread(target=self._publish_loop, args=(on_change,), daemon=True, name="checks-publish"),
            ]
            threads = list(self._threads)
        for t in threads:
            t.start()

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def snapshot(self, now: float | None = None) -> list[Sample]:
        """The latest result of every check that has produced one, plus the pool's own gauges."""
        with self._lock:
            return self._samples(self._last_now if now is None else now)

    def _dispatch_loop(self, clock: Callable[[], float]) -> None:
        with self._lock:
            while not self._closing:
                now, mono = clock(), self._mono()
                self._dispatch(now, mono)
                self._changed.wait(min(self._sleep_for(now, mono), _MAX_SLEEP))

    def _publish_loop(self, on_change: Callable[[CheckRunner], None] | None) -> None:
        while True:
            with self._lock:
                while not self._publish_pending and not self._closing:
                    self._publish.wait()
                if self._closing:
                    return
                self._publish_pending = False
            if on_change is not None:
                try:
                    on_change(self)
                except Exception:
                    log.exception("publishing check results failed")

    # -- passive mode -------------------------------------------------------------------------------
    def collect(self, now: float) -> list[Sample]:
        """Start the checks due at `now`, wait until the runs in flight finish or are abandoned (at most
        `max_wait`), and return the latest result of every check that has produced one."""
        with self._lock:
            t_start = self._mono()
            limit = math.inf if self.max_wait is None else t_start + self.max_wait
            self._dispatch(now, t_start)
            while True:
                mono = self._mono()
                ends = [st.deadline + self.grace for st in self._states.values() if st.running and not st.abandoned]
                if not (self._queue or ends) or mono >= limit or self._closing:
                    break
                # a run ending notifies; the soonest deadline + grace abandons one (a worker may be still
                # picking up a queued run: look again shortly)
                until = min(min(ends, default=mono + 0.05), limit)
                if until > mono:
                    self._changed.wait(until - mono)
                self._dispatch(now, self._mono())
            self._harvest(now, self._mono())
            return self._samples(now)

    def last_results(self) -> dict[str, CheckResult]:
        with self._lock:
            return {name: st.result for name, st in self._states.items() if st.result is not None}

    def setup_errors(self) -> dict[str, str]:
        """Checks whose instance could not be built, with why (a reload refuses a set with any)."""
        with self._lock:
            return {name: st.outcome[0].message for name, st in self._states.items()
                    if st.check is None and st.outcome is not None}

    def configs(self) -> dict[str, CheckConfig]:
        with self._lock:
            return {name: st.config for name, st in self._states.items()}

    def inherit(self, old: CheckRunner) -> None:
        """Take over the results and counters of checks configured exactly as in `old` (a reload), so their
        history and schedule go on; call before `start`."""
        with old._lock:
            previous = {name: st for name, st in old._states.items() if st.result is not None}
        with self._lock:
            for name, st in self._states.items():
                was = previous.get(name)
                if was is None or was.config != st.config or st.check is None:
                    continue
                st.result, st.result_at, st.duration = was.result, was.result_at, was.duration
                st.run_started_at, st.timeouts, st.overruns = was.run_started_at, was.timeouts, was.overruns
                st.overruns_at, st.published, st.logged = was.overruns_at, list(was.published), was.logged
                st.next_due = was.next_due

    def close(self) -> None:
        """Stop scheduling, end the child processes of runs in flight (checks with `abort()`), and close
        checks that hold resources (D-Bus connections, open log files). Worker threads are daemon
        threads; a stuck one is not waited for."""
        with self._lock:
            self._closing = True
            self._work.notify_all()
            self._changed.notify_all()
            self._publish.notify_all()
            states = list(self._states.values())
            threads = list(self._threads)
        for t in threads:
            if t is not threading.current_thread():
                t.join(5.0)
        for st in states:
            abort = getattr(st.check, "abort", None)
            if callable(abort) and st.running:  # a run in flight: end its child processes
                try:
                    abort()
                except Exception as e:
                    log.debug("check %s: abort failed: %s", st.config.name, e)
            closer = getattr(st.check, "close", None)
            if callable(closer) and not st.running:
                try:
                    closer()
                except Exception as e:
                    log.debug("check %s: close failed: %s", st.config.name, e)

    # -- scheduling (called with self._lock held; time is an argument) ------------------------------
    def _dispatch(self, now: float, mono: float) -> None:
        """Publish finished runs, abandon runs past deadline + grace, queue the checks due at `now`."""
        if self._closing:
            return
        self._last_now = now
        changed = self._harvest(now, mono)
        for st in self._states.values():
            if st.check is None or now < st.next_due:
                continue
            if st.running and not st.abandoned:
                continue  # finishing (deadline + grace not reached): started when it returns
            if st.running or st.queued:
                self._overrun(st, now, mono)
                changed = True
                continue
            self._enqueue(st, now, mono)
        if changed:
            self._publish_pending = True
            self._publish.notify()

    def _advance(self, st: _State, now: float) -> None:
        # on the check's own grid; after a whole interval missed (pause, stuck run) re-anchor at now
        st.next_due = st.next_due + st.interval if now - st.next_due < st.interval else now + st.interval

    def _enqueue(self, st: _State, now: float, mono: float) -> None:
        self._advance(st, now)
        st.queued = True
        self._arm(st, now, mono)
        st.outcome = None
        self._queue.append(st)
        while self._workers - self._busy < len(self._queue) and self._workers < self.max_workers:
            self._spawn_worker()
        self._work.notify()

    def _arm(self, st: _State, now: float, mono: float) -> None:
        # the deadline counts from the moment the run was due, so that (timeout <= interval) every run has
        # ended or been abandoned by its next due time + grace, and the runs due together share one
        # `deadline - timeout` (the process checks share one process-table read per batch on it)
        st.queued_mono = mono
        st.started_at = now
        st.deadline = mono + float(st.config.timeout)

    def _overrun(self, st: _State, now: float, mono: float) -> None:
        self._advance(st, now)
        st.overruns += 1
        st.overruns_at = now
        if st.running:
            st.missed = True
        else:  # still queued: its slot is lost, the queued run now serves this one
            self._arm(st, now, mono)
        if not st.overrun_logged:
            st.overrun_logged = True
            why = "still running" if st.running else "still waiting for a free worker"
            log.warning("check %s: due again while its previous run is %s; run skipped", st.config.name, why)

    def _sleep_for(self, now: float, mono: float) -> float:
        """Seconds until the next check is due or the next run in flight reaches deadline + grace."""
        wait = _MAX_SLEEP
        for st in self._states.values():
            if st.check is None:
                continue
            if st.running and not st.abandoned:
                wait = min(wait, st.deadline + self.grace - mono)
                if now >= st.next_due:
                    continue  # due, waiting for its run to return: a worker's notify wakes us
            wait = min(wait, st.next_due - now)
        return max(wait, 0.0)

    def _harvest(self, now: float, mono: float) -> bool:
        changed = False
        for st in self._states.values():
            if st.outcome is not None:
                result, duration = st.outcome
                st.outcome = None
                if st.abandoned:
                    log.info("check %s: abandoned run finished after %.1fs; result discarded",
                             st.config.name, duration)
                else:
                    self._publish_result(st, result, duration, now)
                    changed = True
                st.running = False
                st.abandoned = False
                if st.overrun_logged:
                    st.overrun_logged = False
                    log.info("check %s: runs again on schedule", st.config.name)
                if st.missed:  # its due time passed while the run was stuck: start it now
                    st.missed = False
                    st.next_due = min(st.next_due, now)
            elif st.running and not st.abandoned and mono >= st.deadline + self.grace:
                st.abandoned = True
                st.timeouts += 1
                if st.worker is not None:  # the stuck thread leaves the pool; another may take its place
                    st.worker.retired = True
                    self._workers -= 1
                    self._busy -= 1
                    if self._queue:
                        self._spawn_worker()
                timeout = float(st.config.timeout)
                self._publish_result(st, CheckResult.failed(f"timeout after {timeout:g}s", status=Status.UNKNOWN),
                                     timeout, now)
                changed = True
        return changed

    # -- the pool -----------------------------------------------------------------------------------
    def _spawn_worker(self) -> None:
        self._spawned += 1
        w = _Worker(name=f"checks-worker-{self._spawned}")
        self._workers += 1
        threading.Thread(target=self._worker_loop, args=(w,), daemon=True, name=w.name).start()

    def _worker_loop(self, w: _Worker) -> None:
        while True:
            with self._lock:
                st = self._take(w)
                if st is None:
                    return
            result, duration = self._execute(st)
            with self._lock:
                st.outcome = (result, duration)
                st.worker = None
                self._changed.notify_all()
                if w.retired:
                    return  # abandoned: a new worker has its place in the pool
                self._busy -= 1

    def _take(self, w: _Worker) -> _State | None:
        """The next queued run for worker `w` (lock held), or None when `w` should exit."""
        idle_since = self._mono()
        while True:
            while not self._queue:
                left = idle_since + WORKER_IDLE_SECONDS - self._mono()
                if self._closing or left <= 0:
                    self._workers -= 1
                    return None
                self._work.wait(left)
            if self._closing:
                self._workers -= 1
                return None
            st = self._queue.popleft()
            st.queued = False
            mono = self._mono()
            self._queue_wait += max(0.0, mono - st.queued_mono)
            if mono < st.deadline:
                break
            # no worker was free before the run's timeout: not started, reported, counted as skipped
            st.overruns += 1
            st.overruns_at = self._last_now
            timeout = float(st.config.timeout)
            st.outcome = (CheckResult.failed(f"not started within its timeout ({timeout:g}s): every check worker "
                                             f"busy", status=Status.UNKNOWN), 0.0)
            self._changed.notify_all()
        self._busy += 1
        st.running = True
        st.worker = w
        st.abandoned = False
        st.started_mono = mono
        return st

    def _execute(self, st: _State) -> tuple[CheckResult, float]:
        t0 = self._mono()
        try:
            result = st.check.run(st.deadline)
            if not isinstance(result, CheckResult):
                raise TypeError(f"run() returned {type(result).__name__}, not CheckResult")
        except Exception as e:
            log.debug("check %s raised", st.config.name, exc_info=True)
            result = CheckResult.failed(f"check error: {type(e).__name__}: {e}", status=Status.UNKNOWN)
        return result, self._mono() - t0

    # -- results --------------------------------------------------------------------------------------
    def _publish_result(self, st: _State, result: CheckResult, duration: float, now: float) -> None:
        st.result, st.duration, st.result_at = result, duration, now
        st.run_started_at = st.started_at if st.started_at else now
        name = st.config.name
        up = 1.0 if result.ok else 0.0
        out = [
            Sample("hostwarden_check_up", labels_of(st.config.labels, check=name, type=st.config.type), up, now),
            Sample("hostwarden_check_status", st.labels, float(result.status), now),
            Sample("hostwarden_check_duration_seconds", st.labels, duration, now),
            Sample("hostwarden_check_last_run_timestamp_seconds", st.labels, st.run_started_at, now),
            Sample("hostwarden_check_timeouts_total", st.labels, float(st.timeouts), now),
        ]
        out.extend(_stamp(result.samples, st.labels, now))
        st.published = out
        self._log_change(st, result)

    def _samples(self, now: float) -> list[Sample]:
        out: list[Sample] = []
        for st in self._states.values():
            if st.result is None:
                continue
            out.extend(st.published)
            out.append(Sample("hostwarden_check_overruns_total", st.labels, float(st.overruns),
                              max(st.result_at, st.overruns_at)))
        stuck = sum(1 for st in self._states.values() if st.running and st.abandoned)
        out += [
            Sample("hostwarden_check_workers", (), float(self.max_workers), now),
            Sample("hostwarden_check_workers_busy", (), float(self._busy), now),
            Sample("hostwarden_check_queued", (), float(len(self._queue)), now),
            Sample("hostwarden_check_queue_wait_seconds_total", (), self._queue_wait, now),
            Sample("hostwarden_check_stuck_threads", (), float(stuck), now),
        ]
        return out

    def _log_change(self, st: _State, result: CheckResult) -> None:
        key = (result.ok, int(result.status))
        if st.logged == key:
            return
        first = st.logged is None
        st.logged = key
        state = Status(result.status).name if result.status in tuple(Status) else str(result.status)
        if result.ok:
            if not first:
                log.info("check %s: OK again: %s", st.config.name, result.message or state)
        else:
            log.warning("check %s: %s: %s", st.config.name, state, result.message)


def _stamp(samples: Iterable[Sample], extra: Labels, now: float) -> list[Sample]:
    out = []
    for s in samples:
        merged = dict(extra)
        merged.update(s.labels)  # a check's own labels win over configured ones (validated disjoint)
        out.append(Sample(s.name, tuple(sorted(merged.items())), s.value, now))
    return out


def remaining(deadline: float) -> float:
    """Seconds left before a monotonic deadline (never negative)."""
    return max(0.0, deadline - time.monotonic())
