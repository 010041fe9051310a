"""kill -9 of the process delivering the outbox to a real ticketing system, many times; then count what arrived.

The generic half of the kill -9 tests against the real Redmine and RT (tests/integration/test_redmine.py,
test_rt.py): the test decides incidents with the real IncidentManager into a state database (topping the
outbox up to BACKLOG pending operations before every start, so the kills land on pending work however fast
the server is), starts tests/integration/servers/outbox_worker_main.py on it, SIGKILLs it at a random
moment after its READY, `iterations` times, and finally lets it deliver the rest. The ticketing system must
then hold exactly one ticket per fingerprint, every update comment (at least once: a comment is not
idempotent, so a kill between the server's answer and the commit that records it repeats it) and the right
final status; the outbox must be all done. The backend-specific half is a `Kill9Target`: how to configure
the backend and how to read tickets back from the system (never through the backend under test).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hostwarden.agent.core.alert import Alert, AlertState
from hostwarden.agent.core.schema import Duration
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.state import StateDB
from hostwarden.exporters.tickets.config import TicketsConfig
from hostwarden.rules.alerts import AlertTransition, TransitionKind

from tests.integration.servers import outbox_worker_main
from tests.support.agent import ROOT

WORKER = "tests.integration.servers.outbox_worker_main"
READY_TIMEOUT = 60.0
FINAL_TIMEOUT = outbox_worker_main.DEADLINE + 60.0
SLOT = 30.0  # seconds of alert time between two steps of an incident
MAX_INCIDENTS = 600  # bounds the scenario (the alert times stay in the past: t0 is 6 h ago)
BACKLOG = 12  # operations kept pending before each start: more than a worker gets through before its kill

# like tests/reliability and test_incidents_kill9: the 200-kill variants run only when asked for
only_when_slow = pytest.mark.skipif(os.environ.get("HOSTWARDEN_SLOW", "") != "1",
                                    reason="slow kill -9 variant: set HOSTWARDEN_SLOW=1 to run it")


class Ticket(NamedTuple):
    comments: list[str]  # the text of every comment / note, oldest first
    status: str  # as the ticketing system names it


@dataclass(frozen=True)
class Kill9Target:
    """What the driver needs to know about one ticketing system."""

    label: str  # in the figures line: "kill -9 against {label}: {...}"
    kind: str  # backend type, one of outbox_worker_main.BACKENDS
    settings: dict[str, Any]  # backend config keys besides name/type; secrets by *_env
    env: dict[str, str]  # the environment variables the settings name (the secrets)
    open_status: str  # what an incident that never resolved leaves its ticket in
    resolved_status: str
    tickets: Callable[[str], list[str]]  # fingerprint -> ids of the tickets carrying it, searched in the system
    read: Callable[[str], Ticket]  # ticket id -> its comments and status

    def config(self) -> Any:
        cls = outbox_worker_main.BACKENDS[self.kind]
        return cls.Config(**{**self.settings, "name": outbox_worker_main.NAME, "type": self.kind})


class Scenario:
    """Alert transitions decided on demand with the real IncidentManager into the state database: incident i
    fires (warning) in slot i, escalates in slot i+1, de-escalates in slot i+2 and, every other one, resolves in
    slot i+3. A slot thus queues one operation of every kind, and since the worker delivers the oldest pending
    operation of every incident in turn, the kills land on opens, updates and resolves alike."""

    def __init__(self, target: Kill9Target, state_path: str, t0: float) -> None:
        self.state = StateDB(state_path)
        tickets = TicketsConfig(backends=(target.config(),), update_interval=Duration(0), storm_threshold=100_000)
        self.manager = IncidentManager(tickets, state=self.state, hostname="web1", external_labels={})
        self.t0 = t0
        self.tag = secrets.token_hex(4)
        self.slot = 0
        self.started = 0

    def pending(self) -> int:
        return int(self.state.query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"])

    def top_up(self, backlog: int) -> None:
        """Start incidents (one per slot) until at least `backlog` operations are pending."""
        while self.pending() < backlog:
            assert self.started < MAX_INCIDENTS, "the scenario ran out of incidents"
            self._step(start=True)

    def finish(self) -> None:
        """The remaining steps of the incidents started: no new ones."""
        for _ in range(3):
            self._step(start=False)

    def _alert(self, i: int) -> Alert:
        labels = (("host", "web1"), ("instance", f"kill9-{self.tag}-{i}"))
        at = self.t0 + i * SLOT
        return Alert(rule="Kill9Disk", group="disk", labels=labels, identity=labels, state=AlertState.FIRING,
                     severity="warning", value=0.91, active_since=at, fired_at=at, threshold="> 0.9")

    def _step(self, *, start: bool) -> None:
        at = self.t0 + self.slot * SLOT
        batch: list[AlertTransition] = []
        if start:
            batch.append(AlertTransition(self._alert(self.slot), TransitionKind.FIRING, at))
            self.started += 1
        if 0 <= (i := self.slot - 1) < self.started:
            crit = dataclasses.replace(self._alert(i), severity="critical", value=0.97)
            batch.append(AlertTransition(crit, TransitionKind.ESCALATED, at))
        if 0 <= (i := self.slot - 2) < self.started:
            batch.append(AlertTransition(self._alert(i), TransitionKind.DEESCALATED, at))
        if 0 <= (i := self.slot - 3) < self.started and i % 2 == 0:
            gone = dataclasses.replace(self._alert(i), state=AlertState.INACTIVE, resolved_at=at)
            batch.append(AlertTransition(gone, TransitionKind.RESOLVED, at))
        self.manager.handle(batch, at)
        self.slot += 1

    def close(self) -> None:
        self.state.close()


@dataclass(frozen=True)
class _Plan:
    operations: int
    fingerprints: list[str]
    resolved: set[str]
    updates: list[tuple[str, str]]  # (fingerprint, event text) of every update operation, in order
    outbox: dict[str, int]  # status -> rows
    recorded: dict[str, str | None]  # fingerprint -> ticket id in the state database


def _read_state(state_path: str, incidents: int) -> _Plan:
    state = StateDB(state_path)
    try:
        updates = [(r["fingerprint"], json.loads(r["payload"])["event"])
                   for r in state.query("SELECT fingerprint, payload FROM outbox WHERE op = 'update' ORDER BY id")]
        rows = state.query("SELECT fingerprint, status, ticket_id FROM incidents")
        plan = _Plan(operations=state.query("SELECT COUNT(*) AS n FROM outbox")[0]["n"],
                     fingerprints=sorted({r["fingerprint"] for r in rows}),
                     resolved={r["fingerprint"] for r in rows if r["status"] == "resolved"},
                     updates=updates,
                     outbox={r["status"]: r["n"] for r in
                             state.query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")},
                     recorded={r["fingerprint"]: r["ticket_id"] for r in rows})
    finally:
        state.close()
    n_resolved = (incidents + 1) // 2  # the scenario decided what it should have
    assert len(plan.fingerprints) == incidents and len(updates) == 2 * incidents
    assert len(plan.resolved) == n_resolved and plan.operations == 3 * incidents + n_resolved
    return plan


def _kill_loop(cmd: list[str], env: dict[str, str], tmp_path: Path, scenario: Scenario, *, iterations: int,
               window: float, backlog: int, rnd: random.Random) -> dict[str, Any]:
    """Top the outbox up, start the worker, wait for its READY, SIGKILL it after uniform(0, window) seconds;
    `iterations` times, and more (up to 3x in all) while no operation of some kind was delivered yet: on a loaded
    machine the worker gets through fewer operations per life, and the kills must also have met resolves."""
    kills = progressed = 0
    i = -1
    while (i := i + 1) < iterations or (i < 3 * iterations and _kinds_done(scenario) < {"open", "update", "resolve"}):
        scenario.top_up(backlog)
        before = scenario.pending()
        log_path = tmp_path / f"worker-{i}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
            assert ready and proc.stdout.readline().strip() == "READY", log_path.read_text()
            time.sleep(rnd.uniform(0.0, window))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            if proc.stdout is not None:
                proc.stdout.close()
        progressed += scenario.pending() < before
    done = scenario.state.query("SELECT op, COUNT(*) AS n FROM outbox WHERE status = 'done' GROUP BY op")
    return {"kills": kills, "iterations_run": i, "iterations_with_progress": progressed,
            "pending_after_kills": scenario.pending(),
            "delivered_during_kills": {r["op"]: r["n"] for r in done}}


def run_kill9(target: Kill9Target, tmp_path: Path, *, iterations: int, window: float,
              backlog: int = BACKLOG) -> dict[str, Any]:
    """SIGKILL the delivering process at random points `iterations` times (restarting it each time, with at least
    `backlog` operations pending at each start), then let it deliver the rest; the system must end with exactly
    one ticket per fingerprint, every update comment and every resolve delivered. `window`: kills land uniformly
    in the first `window` seconds after READY. Prints the figures line and returns the figures; asserts after
    printing them. Seed: $HW_KILL9_SEED, else random."""
    seed = int(os.environ.get("HW_KILL9_SEED") or int.from_bytes(os.urandom(4), "big"))
    rnd = random.Random(seed)
    started = time.monotonic()
    state_path = str(tmp_path / "state.db")
    cmd = [sys.executable, "-m", WORKER, state_path, target.kind, json.dumps(target.settings)]
    env = {**os.environ, **target.env, "PYTHONPATH": str(ROOT)}
    scenario = Scenario(target, state_path, time.time() - 6 * 3600)
    try:
        loop = _kill_loop(cmd, env, tmp_path, scenario, iterations=iterations, window=window, backlog=backlog,
                          rnd=rnd)
        scenario.finish()
        incidents = scenario.started
    finally:
        scenario.close()
    final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=FINAL_TIMEOUT,
                           check=False)
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log")) + final.stderr
    plan = _read_state(state_path, incidents)

    per_fp: dict[str, int] = {}
    lost: list[tuple[str, str]] = []
    repeated = 0
    wrong_status: list[tuple[str, str]] = []
    not_recorded: list[tuple[str, str | None, str]] = []  # the state database names another ticket
    for fp in plan.fingerprints:
        found = target.tickets(fp)
        per_fp[fp] = len(found)
        if len(found) != 1:
            continue
        [tid] = found
        if plan.recorded.get(fp) != tid:
            not_recorded.append((fp, plan.recorded.get(fp), tid))
        ticket = target.read(tid)
        for ufp, text in plan.updates:
            if ufp == fp:
                hits = sum(1 for c in ticket.comments if text in c)
                lost += [(fp, text)] if hits == 0 else []
                repeated += max(0, hits - 1)
        want = target.resolved_status if fp in plan.resolved else target.open_status
        if ticket.status != want:
            wrong_status.append((fp, ticket.status))
    figures = {"seed": seed, "iterations": iterations, "kills": loop["kills"], "incidents": incidents,
               "operations": plan.operations, "iterations_run": loop["iterations_run"],
               "iterations_with_progress": loop["iterations_with_progress"],
               "delivered_during_kills": loop["delivered_during_kills"],
               "pending_after_kills": loop["pending_after_kills"], "tickets": sum(per_fp.values()),
               "tickets_per_fingerprint": sorted(set(per_fp.values())),
               "duplicate_tickets": sum(n - 1 for n in per_fp.values() if n > 1),
               "adopted_after_kill": logs.count("recording it instead of opening another"),
               "repeated_comments": repeated, "lost_comments": len(lost), "wrong_status": len(wrong_status),
               "outbox": plan.outbox, "run_seconds": round(time.monotonic() - started, 1)}
    print(f"kill -9 against {target.label}: {json.dumps(figures)}")

    assert final.returncode == 0 and "DONE" in final.stdout, (seed, final.returncode, final.stderr[-3000:])
    assert plan.outbox == {"done": plan.operations}, (seed, plan.outbox)
    assert set(per_fp.values()) == {1}, (seed, {fp: n for fp, n in per_fp.items() if n != 1})
    assert not not_recorded, (seed, not_recorded[:5])
    assert not lost, (seed, lost[:5])
    assert not wrong_status, (seed, wrong_status[:5])
    assert loop["kills"] >= iterations * 0.9, figures  # the work lasted across (nearly) every kill
    assert {"open", "update", "resolve"} <= set(loop["delivered_during_kills"]), figures  # kills hit every kind
    return figures


def _kinds_done(scenario: Scenario) -> set[str]:
    return {r["op"] for r in scenario.state.query("SELECT DISTINCT op FROM outbox WHERE status = 'done'")}
