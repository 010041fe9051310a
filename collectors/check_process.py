"""`process` check: count the processes matching a name, a command-line regex and/or a pidfile
(all given filters must match), compare with min/max, and sum their CPU time and resident memory.

The agent's own process is never counted (as pgrep excludes itself).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass

import psutil
from hostwarden.agent.core.samples import MetricDef, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.checks import CheckConfig, CheckResult, register_check, resolve_path, sample


@dataclass(frozen=True)
class ProcessConfig(CheckConfig):
    process: str | None = None  # process name (comm, or the basename of the executable)
    cmdline: Regex | None = None  # searched in the space-joined command line
    pidfile: str | None = None
    user: str | None = None  # only processes of this user
    min: int = 1
    max: int | None = None

    def validate(self) -> list[str]:
        problems = super().validate()
        if not (self.process or self.cmdline or self.pidfile):
            problems.append("one of process, cmdline or pidfile is required")
        if self.min < 0:
            problems.append("min must not be negative")
        if self.max is not None and self.max < self.min:
            problems.append("max must not be less than min")
        return problems

    def with_base_dir(self, base_dir: str) -> ProcessConfig:
        import dataclasses

        return dataclasses.replace(self, pidfile=resolve_path(self.pidfile, base_dir))


class PidfileError(Exception):
    pass


def read_pidfile(path: str) -> int:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read(64).strip()
    except OSError as e:
        raise PidfileError(f"cannot read pidfile {path}: {e.strerror or e}") from None
    first = text.split()[0] if text else ""
    if not first.isdigit() or int(first) <= 0:
        raise PidfileError(f"pidfile {path} does not hold a pid: {text[:20]!r}")
    return int(first)


class ProcessTable:
    """One read of the process table shared by the process checks of a collection cycle: a table
    taken after a run started is as fresh as that run needs, so concurrent checks reuse it instead
    of each walking /proc (~0.2 ms per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = -math.inf
        self._with_user = False
        self._rows: list[dict] = []

    @staticmethod
    def attrs(with_user: bool) -> tuple[str, ...]:
        return ("pid", "name", "exe", "cmdline", "username") if with_user else ("pid", "name", "exe", "cmdline")

    def rows(self, since: float, *, with_user: bool = False) -> list[dict]:
        with self._lock:
            if self._taken < since or (with_user and not self._with_user):
                taken = time.monotonic()
                self._rows = [p.info for p in psutil.process_iter(list(self.attrs(with_user)), ad_value=None)]
                self._taken, self._with_user = taken, with_user
            return self._rows


PROCESS_TABLE = ProcessTable()


@register_check("process")
class ProcessCheck:
    Config = ProcessConfig
    metrics = metric_defs(
        MetricDef("hostwarden_process_count", "gauge", "Processes matching the check.", ("check",)),
        MetricDef("hostwarden_process_cpu_seconds_total", "counter",
                  "User+system CPU time of the matching processes (sum; drops when one exits).", ("check",)),
        MetricDef("hostwarden_process_resident_memory_bytes", "gauge", "Sum of RSS of the matching processes.",
                  ("check",)),
    )

    def __init__(self, config: ProcessConfig) -> None:
        self.config = config
        self._cmdline = re.compile(config.cmdline) if config.cmdline else None
        self._self = os.getpid()

    def _matches(self, info: dict) -> bool:
        cfg = self.config
        if info["pid"] == self._self:
            return False
        if cfg.user is not None and info.get("username") != cfg.user:
            return False
        if cfg.process is not None:
            exe = info.get("exe") or ""
            if cfg.process not in (info.get("name"), os.path.basename(exe)):
                return False
        return self._cmdline is None or bool(self._cmdline.search(" ".join(info.get("cmdline") or ())))

    def _candidates(self, since: float) -> list[psutil.Process]:
        if self.config.pidfile:
            try:
                proc = psutil.Process(read_pidfile(self.config.pidfile))
                info = proc.as_dict(list(PROCESS_TABLE.attrs(self.config.user is not None)), ad_value=None)
            except psutil.NoSuchProcess:
                return []
            return [proc] if self._matches(info) else []
        out = []
        for info in PROCESS_TABLE.rows(since, with_user=self.config.user is not None):
            if self._matches(info):
                try:
                    out.append(psutil.Process(info["pid"]))
                except psutil.NoSuchProcess:
                    continue
        return out

    def run(self, deadline: float) -> CheckResult:
        try:
            # the runner starts a batch of due checks at deadline - timeout; one process table read
            # taken after that moment serves every process check of the batch
            matched = self._candidates(deadline - float(self.config.timeout))
        except PidfileError as e:
            return CheckResult.failed(str(e), samples=[sample("hostwarden_process_count", 0)])
        count, cpu, rss = 0, 0.0, 0
        for p in matched:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    mem = p.memory_info()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # exited between listing and reading
            except psutil.AccessDenied:
                t, mem = None, None
            count += 1
            if t is not None and mem is not None:
                cpu += t.user + t.system
                rss += mem.rss
        samples = [sample("hostwarden_process_count", count),
                   sample("hostwarden_process_cpu_seconds_total", cpu),
                   sample("hostwarden_process_resident_memory_bytes", rss)]
        return evaluate(count, self.config, samples)


def describe(config: ProcessConfig) -> str:
    parts = []
    if config.process:
        parts.append(f"name {config.process!r}")
    if config.cmdline:
        parts.append(f"cmdline /{config.cmdline}/")
    if config.pidfile:
        parts.append(f"pidfile {config.pidfile}")
    if config.user:
        parts.append(f"user {config.user}")
    return ", ".join(parts)


def evaluate(count: int, config: ProcessConfig, samples: list) -> CheckResult:
    what = describe(config)
    if count < config.min:
        return CheckResult.failed(f"{count} process(es) matching {what}, expected at least {config.min}",
                                  samples=samples)
    if config.max is not None and count > config.max:
        return CheckResult.failed(f"{count} process(es) matching {what}, expected at most {config.max}",
                                  samples=samples)
    return CheckResult(ok=True, message=f"{count} process(es) matching {what}", samples=samples)
