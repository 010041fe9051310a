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

The runner is passive: the daemon calls `collect(now)` (on a short tick or on its collection
interval). Each call starts the checks that are due, each in its own daemon thread (at most
`max_workers` live runs at once; a finished run frees its worker for the next due check within the
same call), waits until they finish or until the soonest deadline among them (+ a short grace for
the check to report its own timeout), and returns the latest result of every check. A run still
going past its timeout is abandoned: reported as `timeout after Ns`, not started again until the
stuck thread returns, and it does not
count against `max_workers` (Python cannot kill a thread; a stuck thread must not starve the others
and, being a daemon thread, cannot block interpreter exit either).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from agent.samples import Labels, MetricDef, Sample, labels_of, metric_defs
from agent.schema import MISSING, Duration, Errors, build_tagged
from agent.yamlsrc import Loc, LocDict, LocList

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

_REGISTRY: dict[str, type] = {}

ALL_CHECK_MODULES: tuple[str, ...] = (
    "collectors.check_systemd",
    "collectors.check_process",
    "collectors.check_tcp",
    "collectors.check_http",
    "collectors.check_nagios",
    "collectors.check_file",
    "collectors.check_logmatch",
)
_loaded = False


def register_check(type_name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if type_name in _REGISTRY and _REGISTRY[type_name] is not cls:
            raise ValueError(f"check type {type_name!r} registered twice "
                             f"({_REGISTRY[type_name].__module__}, {cls.__module__})")
        config = getattr(cls, "Config", None)
        if not (isinstance(config, type) and issubclass(config, CheckConfig)):
            raise TypeError(f"check type {type_name!r}: Config must subclass CheckConfig")
        if not callable(getattr(cls, "run", None)):
            raise TypeError(f"check type {type_name!r} has no run(deadline) method")
        cls.type_name = type_name
        _REGISTRY[type_name] = cls
        return cls

    return deco


def check_types() -> dict[str, type]:
    global _loaded
    if not _loaded:
        for mod in ALL_CHECK_MODULES:
            importlib.import_module(mod)
        _loaded = True
    return _REGISTRY


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
)


@dataclass
class _State:
    config: CheckConfig
    check: Any  # the check instance, or None when construction failed
    interval: float
    labels: Labels  # check name + configured labels, merged into every sample
    next_due: float = -math.inf  # in `now` time (wall clock seconds)
    # the current run
    thread: threading.Thread | None = None
    started_mono: float = 0.0
    started_at: float = 0.0
    deadline: float = 0.0
    outcome: tuple[CheckResult, float] | None = None  # (result, duration) set by the worker thread
    abandoned: bool = False
    # the latest published result
    result: CheckResult | None = None
    result_at: float = 0.0
    duration: float = 0.0
    run_started_at: float = 0.0
    timeouts: int = 0
    published: list[Sample] = field(default_factory=list)
    logged: tuple[bool, int] | None = None


class CheckRunner:
    """Schedules checks on their own intervals and exposes their results like a collector."""

    name = "checks"

    def __init__(self, checks: list[CheckConfig], *, max_workers: int = 8, default_interval: float = 10.0,
                 max_wait: float | None = None, grace: float = 0.25,
                 monotonic: Callable[[], float] = time.monotonic, types: Mapping[str, type] | None = None) -> None:
        """`default_interval`: for checks without `interval:` (the daemon passes global.interval).
        `max_wait`: cap on how long one collect() waits for the runs it started (None: until the
        soonest deadline + `grace`). `grace`: how long past its deadline a run may take to return its
        own timeout result before it is declared stuck. `types`: the check registry (tests)."""
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.max_wait = max_wait
        self.grace = grace
        self._mono = monotonic
        self._cond = threading.Condition()
        self._states: dict[str, _State] = {}
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

    # -- the collector interface ----------------------------------------------------------------
    def collect(self, now: float) -> list[Sample]:
        """Start due checks, wait at most until the soonest deadline among runs in flight, and return
        the latest result of every check that has produced one."""
        with self._cond:
            t_start = self._mono()
            self._harvest(now, t_start)
            started: list[_State] = []
            while True:
                # (re)fill free workers: a run that finished frees one within this same collect
                started += self._start_due(now, self._mono())
                if not self._any_running(started):
                    break
                left = self._wait_until(t_start, started) - self._mono()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._harvest(now, self._mono())
            return [s for st in self._states.values() for s in st.published]

    def last_results(self) -> dict[str, CheckResult]:
        with self._cond:
            return {name: st.result for name, st in self._states.items() if st.result is not None}

    def close(self) -> None:
        """Close checks that hold resources (D-Bus connections, open log files). Running threads are
        daemon threads and are not waited for."""
        with self._cond:
            states = list(self._states.values())
        for st in states:
            abort = getattr(st.check, "abort", None)
            if callable(abort) and st.thread is not None:  # a run in flight: end its child processes
                try:
                    abort()
                except Exception as e:
                    log.debug("check %s: abort failed: %s", st.config.name, e)
            closer = getattr(st.check, "close", None)
            if callable(closer) and st.thread is None:
                try:
                    closer()
                except Exception as e:
                    log.debug("check %s: close failed: %s", st.config.name, e)

    # -- internals (called with self._cond held) ------------------------------------------------
    def _live_runs(self) -> int:
        return sum(1 for st in self._states.values() if st.thread is not None and st.outcome is None
                   and not st.abandoned)

    def _start_due(self, now: float, mono: float) -> list[_State]:
        started: list[_State] = []
        free = self.max_workers - self._live_runs()
        for st in self._states.values():
            if free <= 0:
                break
            if st.thread is not None or st.check is None or now < st.next_due:
                continue
            st.next_due = now + st.interval
            st.started_mono = mono
            st.started_at = now
            st.deadline = mono + float(st.config.timeout)
            st.outcome = None
            st.abandoned = False
            st.thread = threading.Thread(target=self._run_one, args=(st,), daemon=True,
                                         name=f"check:{st.config.name}")
            st.thread.start()
            started.append(st)
            free -= 1
        return started

    def _wait_until(self, t_start: float, started: list[_State]) -> float:
        until = min(st.deadline for st in started) + self.grace
        if self.max_wait is not None:
            until = min(until, t_start + self.max_wait)
        return until

    def _any_running(self, started: list[_State]) -> bool:
        return any(st.thread is not None and st.outcome is None and not st.abandoned for st in started)

    def _run_one(self, st: _State) -> None:
        t0 = self._mono()
        try:
            result = st.check.run(st.deadline)
            if not isinstance(result, CheckResult):
                raise TypeError(f"run() returned {type(result).__name__}, not CheckResult")
        except Exception as e:
            log.debug("check %s raised", st.config.name, exc_info=True)
            result = CheckResult.failed(f"check error: {type(e).__name__}: {e}", status=Status.UNKNOWN)
        duration = self._mono() - t0
        with self._cond:
            st.outcome = (result, duration)
            self._cond.notify_all()

    def _harvest(self, now: float, mono: float) -> None:
        for st in self._states.values():
            if st.outcome is not None:
                result, duration = st.outcome
                st.outcome = None
                if st.thread is not None and st.abandoned:
                    log.info("check %s: abandoned run finished after %.1fs; result discarded",
                             st.config.name, duration)
                else:
                    self._publish(st, result, duration, now)
                st.thread = None
                st.abandoned = False
            elif st.thread is not None and not st.abandoned and mono >= st.deadline + self.grace:
                st.abandoned = True
                st.timeouts += 1
                timeout = float(st.config.timeout)
                self._publish(st, CheckResult.failed(f"timeout after {timeout:g}s", status=Status.UNKNOWN),
                              timeout, now)

    def _publish(self, st: _State, result: CheckResult, duration: float, now: float) -> None:
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
