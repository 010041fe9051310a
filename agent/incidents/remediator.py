"""Remediation at the edge: which plan applies to an alert, running actions, recording them on the ticket.

`Remediator.step(alerts, now)` is called by the daemon (under its lock, about every second): it turns
the firing alerts into engine candidates, asks the pure engine (agent.incidents.remediation) what to
do, records every decision on the alert's incident (its ticket timeline) and hands the actions to a
small worker pool — the evaluation path never waits for an action. Results come back through a
queue and are recorded by the next step.

Actions:
- `restart_unit` / `start_unit` / `reload_unit`: Manager.RestartUnit/StartUnit/ReloadUnit(name,
  "replace") over systemd's D-Bus API (the `systemd` check's jeepney connection), then waiting for
  the job to leave the queue and reading the unit's state — never `systemctl`, never a shell;
- `run`: the argv without a shell, stdin /dev/null, the Nagios checks' sanitised environment (PATH,
  LANG=C, LC_ALL=C), its own process group killed at the timeout, optionally as another user.

Every action (and every dry-run "would run") is logged at NOTICE (journald priority 5).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hostwarden.agent.core.alert import Alert, AlertState
from hostwarden.agent.core.logsetup import NOTICE
from hostwarden.agent.core.remedy import Plan, RemediationSettings, Step, file_trust_problem
from hostwarden.agent.core.samples import MetricDef, Sample, labels_of, metric_defs
from hostwarden.agent.core.units import format_duration
from hostwarden.agent.incidents.remediation import (
    AlertRemediation,
    Candidate,
    Exhaust,
    Refuse,
    Run,
    decide,
    finished,
    seed,
)

log = logging.getLogger(__name__)

OUTPUT_TAIL = 400
REMEDIATION_METRICS = metric_defs(
    MetricDef("hostwarden_remediation_actions_total", "counter",
              "Remediation actions finished, by action kind and result (ok, failed; dry_run: recorded, not run).",
              ("action", "result")),
    MetricDef("hostwarden_remediation_refused_total", "counter",
              "Remediation actions refused (an unsafe label value, an untrusted file)."),
    MetricDef("hostwarden_remediation_exhausted_total", "counter",
              "Alerts whose remediation stopped at its bound (max within) and was escalated."),
    MetricDef("hostwarden_remediation_running", "gauge", "Remediation actions running right now."),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
UNIT_METHODS = {"restart_unit": "RestartUnit", "start_unit": "StartUnit", "reload_unit": "ReloadUnit"}


def never_silenced(alert: Alert, now: float) -> bool:
    """The default silence predicate: until silences/maintenance windows exist, nothing is silenced."""
    return False


@dataclass(frozen=True)
class Result:
    """What an action did: `status` is "exit 0", "exit 3", "timed out", "ok", "failed", ..."""

    ok: bool
    status: str
    output: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class PlanIndex:
    """The plans of the loaded rules (by group and alert name) and checks (by check name)."""

    rules: dict[tuple[str, str], Plan]
    checks: dict[str, Plan]

    @classmethod
    def build(cls, rule_groups: list[Any], checks: list[Any]) -> PlanIndex:
        rules = {(g.name, r.name): r.remediate for g in rule_groups for r in g.rules
                 if getattr(r, "remediate", None) is not None}
        by_check = {c.name: c.remediate for c in checks
                    if getattr(c, "remediate", None) is not None and getattr(c, "enabled", True)}
        return cls(rules, by_check)

    def plan_for(self, alert: Alert) -> Plan | None:
        plan = self.rules.get((alert.group, alert.rule))
        if plan is None and alert.label("check"):
            plan = self.checks.get(alert.label("check"))
        return plan

    def files(self) -> set[str]:
        return {p.file for p in (*self.rules.values(), *self.checks.values())}

    def __bool__(self) -> bool:
        return bool(self.rules or self.checks)


def tail(text: str, limit: int = OUTPUT_TAIL) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())  # one line: control characters and newlines to spaces
    return text if len(text) <= limit else "…" + text[-limit:]


class Executor:
    """Runs steps in a small worker pool; results are read with `results()`."""

    def __init__(self, *, bus_address: str | None = None, workers: int = 2,
                 trust: Callable[[str], str | None] = file_trust_problem) -> None:
        from hostwarden.collectors.check_nagios import DEFAULT_PATH

        self.bus_address = bus_address
        self.trust = trust  # a program someone else could rewrite is not run either
        self.env = {"PATH": DEFAULT_PATH, "LANG": "C", "LC_ALL": "C"}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remediation")
        self._results: queue.SimpleQueue[tuple[str, Step, Result]] = queue.SimpleQueue()
        self._running: set[Any] = set()

    def submit(self, fingerprint: str, step: Step) -> None:
        def work() -> None:
            start = time.monotonic()
            try:
                result = self.execute(step)
            except Exception as e:  # an executor bug must still end the attempt
                result = Result(False, f"failed: {type(e).__name__}: {e}")
            self._results.put((fingerprint, step, Result(result.ok, result.status, result.output,
                                                         time.monotonic() - start)))

        self._pool.submit(work)

    def results(self) -> list[tuple[str, Step, Result]]:
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def execute(self, step: Step) -> Result:
        if step.kind == "run":
            return self._run(step)
        return self._unit(step)

    def _run(self, step: Step) -> Result:
        from hostwarden.collectors.check_nagios import PluginError, run_plugin

        if not os.path.isfile(step.argv[0]) or not os.access(step.argv[0], os.X_OK):
            return Result(False, f"failed: {step.argv[0]} is not an executable file")
        problem = self.trust(step.argv[0])
        if problem:
            return Result(False, f"refused: {problem}")
        try:
            run = run_plugin(list(step.argv), dict(self.env), time.monotonic() + step.timeout, max_output=65536,
                             running=self._running, user=step.user)
        except PluginError as e:
            return Result(False, f"failed: {e}")
        output = (run.stdout + ("\n" + run.stderr if run.stderr.strip() else "")).strip()
        if run.returncode is None:
            return Result(False, f"timed out after {format_duration(step.timeout)} (process group killed)",
                          tail(output))
        return Result(run.returncode == 0, f"exit {run.returncode}", tail(output))

    def _unit(self, step: Step) -> Result:
        from hostwarden.collectors.check_systemd import DEFAULT_BUS, MANAGER, SystemdBus, describe_error
        from jeepney import DBusErrorResponse

        address = self.bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_BUS
        bus = SystemdBus(address)
        deadline = time.monotonic() + step.timeout
        try:
            (job,) = bus.call(MANAGER, UNIT_METHODS[step.kind], "ss", (step.unit, "replace"), deadline)
            while True:  # the job object disappears once systemd finished it
                try:
                    bus.get_property(job, "org.freedesktop.systemd1.Job", "State", deadline)
                except DBusErrorResponse:
                    break
                if deadline - time.monotonic() <= 0.1:
                    return Result(False, f"timed out after {format_duration(step.timeout)} (job {job} still queued)")
                time.sleep(0.1)
            info = bus.unit(step.unit, deadline)
        except Exception as e:
            return Result(False, f"failed: {describe_error(e)}")
        finally:
            bus.close()
        ok = info.active_state in ("active", "reloading", "activating")
        return Result(ok, "ok" if ok else "failed", f"{info.name} {info.active_state} ({info.sub_state})")

    def close(self) -> None:
        from hostwarden.collectors.check_nagios import _kill_group

        for proc in list(self._running):
            _kill_group(proc)
        self._pool.shutdown(wait=False, cancel_futures=True)


class Remediator:
    """The daemon's remediation: engine state across evaluations (and reloads), decisions recorded, actions run.

    `is_silenced(alert, now)` is the hook for silences and maintenance windows (default: never silenced).
    `trust(path)` returns why a file may not declare actions (default: not owned by root, or group/world
    writable), injectable for tests.
    """

    def __init__(self, *, settings: RemediationSettings, plans: PlanIndex, incidents: Any, hostname: str,
                 external_labels: dict[str, str], dry_run: bool = False,
                 is_silenced: Callable[[Alert, float], bool] = never_silenced,
                 trust: Callable[[str], str | None] = file_trust_problem, executor: Executor | None = None) -> None:
        self.is_silenced = is_silenced
        self.trust = trust
        self.force_dry_run = dry_run
        self.states: dict[str, AlertRemediation] = {}
        self.executor = executor or Executor(trust=trust)
        self.counts: dict[tuple[str, str], int] = {}  # (action kind, result) -> finished actions
        self.refused = 0
        self.exhausted = 0
        self.configure(settings=settings, plans=plans, incidents=incidents, hostname=hostname,
                       external_labels=external_labels)

    def configure(self, *, settings: RemediationSettings, plans: PlanIndex, incidents: Any, hostname: str,
                  external_labels: dict[str, str]) -> None:
        """(Re)load: new plans and settings; the attempts made so far are kept (the bounds survive a reload)."""
        self.settings = settings
        self.plans = plans
        self.incidents = incidents
        self.local_hosts = {hostname, external_labels.get("host", hostname)}
        self.untrusted = {f: p for f in sorted(plans.files()) if (p := self.trust(f))}
        if plans and not settings.enabled:
            log.info("remediation is switched off (remediation: {enabled: false}); no action will run")
        for f, problem in self.untrusted.items():
            log.warning("remediation declared in %s is refused: %s", f, problem)

    def restore(self, now: float) -> None:
        """After a restart: the attempts and exhaustions on record count against the bounds again."""
        history = getattr(self.incidents, "remediation_history", None)
        windows = [p.within for p in (*self.plans.rules.values(), *self.plans.checks.values())]
        if not callable(history) or not windows:
            return
        attempts, exhausted = history(now - max(windows))
        self.states = seed(attempts, exhausted, window=max(windows))

    @property
    def idle(self) -> bool:
        """Nothing to decide and nothing running (no plans loaded, or switched off): the daemon skips the step."""
        return (not self.plans or not self.settings.enabled) and not any(s.running for s in self.states.values())

    @property
    def dry_run(self) -> bool:
        return self.force_dry_run or self.settings.dry_run

    def candidates(self, alerts: list[Alert], now: float) -> list[Candidate]:
        out = []
        for a in alerts:
            if a.state is not AlertState.FIRING:
                continue
            plan = self.plans.plan_for(a)
            if plan is None:
                continue
            host = a.label("host")
            out.append(Candidate(fingerprint=a.fingerprint, severity=a.severity,
                                 firing_since=a.fired_at if a.fired_at is not None else a.active_since,
                                 labels=tuple(a.labels), plan=plan, untrusted=self.untrusted.get(plan.file, ""),
                                 local=not host or host in self.local_hosts, silenced=self._silenced(a, now)))
        return out

    def _silenced(self, alert: Alert, now: float) -> bool:
        try:
            return bool(self.is_silenced(alert, now))
        except Exception as e:  # a broken hook must not fire actions at a silenced alert: treat as silenced
            log.warning("silence check for %s failed (%s: %s); not remediating", alert.fingerprint,
                        type(e).__name__, e)
            return True

    def step(self, alerts: list[Alert], now: float) -> None:
        """Record finished actions, then decide and dispatch. Call with the daemon's lock held (about every
        second: an action's end is taken as the `now` of the step that records it)."""
        for fp, step, result in self.executor.results():
            self.states = dict(finished(self.states, fp, ok=result.ok, at=now))
            self._count(step.kind, "ok" if result.ok else "failed")
            text = f"{step.describe()}: {result.status} after {result.seconds:.1f}s"
            if result.output:
                text += f"; output: {result.output}"
            self._record(fp, now, "remediation_result", text, now)
            log.log(NOTICE, "remediation for %s finished: %s", fp, text)
        if not self.settings.enabled or not self.plans:
            return
        decided = decide(self.states, self.candidates(alerts, now), now)
        self.states = dict(decided.states)
        for d in decided.decisions:
            if isinstance(d, Run):
                self._start(d, now)
            elif isinstance(d, Refuse):
                self.refused += 1
                self._record(d.fingerprint, d.at, "remediation_refused", d.reason, now)
                log.warning("remediation for %s: %s", d.fingerprint, d.reason)
            elif isinstance(d, Exhaust):
                self._exhaust(d, now)

    def _start(self, d: Run, now: float) -> None:
        what = f"{d.step.describe()} (attempt {d.attempt} of {d.max_attempts})"
        if self.dry_run:
            self._record(d.fingerprint, d.at, "remediation_dry_run", f"Dry run: would {what}", now)
            log.log(NOTICE, "remediation for %s (dry run): would %s", d.fingerprint, what)
            self._count(d.step.kind, "dry_run")
            self.states = dict(finished(self.states, d.fingerprint, ok=True, at=d.at))
            return
        self._record(d.fingerprint, d.at, "remediation", f"Remediation: {what}", now)
        log.log(NOTICE, "remediation for %s: %s", d.fingerprint, what)
        self.executor.submit(d.fingerprint, d.step)

    def _exhaust(self, d: Exhaust, now: float) -> None:
        self.exhausted += 1
        text = f"Remediation exhausted: {d.reason}"
        if self.dry_run:
            self._record(d.fingerprint, d.at, "remediation_exhausted", text + " (dry run: priority unchanged)", now)
        else:
            raise_priority = getattr(self.incidents, "raise_priority", None)
            changed = raise_priority(d.fingerprint, d.at, text, now) if callable(raise_priority) else None
            if changed is None:
                self._record(d.fingerprint, d.at, "remediation_exhausted", text, now)
        log.log(NOTICE, "remediation for %s exhausted: %s", d.fingerprint, d.reason)

    def _record(self, fingerprint: str, at: float, kind: str, text: str, now: float) -> None:
        record = getattr(self.incidents, "record_remediation", None)
        if callable(record):
            try:
                record(fingerprint, at, kind, text, now)
            except Exception:
                log.exception("recording remediation for %s failed", fingerprint)

    def _count(self, kind: str, result: str) -> None:
        self.counts[(kind, result)] = self.counts.get((kind, result), 0) + 1

    def self_samples(self, now: float) -> list[Sample]:
        out = [Sample("hostwarden_remediation_actions_total", labels_of(action=kind, result=result), float(n), now)
               for (kind, result), n in sorted(self.counts.items())]
        out.append(Sample("hostwarden_remediation_refused_total", (), float(self.refused), now))
        out.append(Sample("hostwarden_remediation_exhausted_total", (), float(self.exhausted), now))
        out.append(Sample("hostwarden_remediation_running", (), float(sum(s.running for s in self.states.values())),
                          now))
        return out

    def close(self) -> None:
        self.executor.close()


def describe_plans(plans: PlanIndex) -> list[str]:
    """For check-config: every action each rule and check may take."""
    lines = []
    for (group, rule), plan in sorted(plans.rules.items()):
        lines.append(f"rule {rule} (group {group}, {plan.source}): {plan.describe()}")
        lines.extend(f"  {i + 1}. {a.describe()} (timeout {format_duration(a.timeout)})"
                     for i, a in enumerate(plan.actions))
    for name, plan in sorted(plans.checks.items()):
        lines.append(f"check {name} ({plan.source}): {plan.describe()}")
        lines.extend(f"  {i + 1}. {a.describe()} (timeout {format_duration(a.timeout)})"
                     for i, a in enumerate(plan.actions))
    return lines
