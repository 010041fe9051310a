"""A process that drives the real IncidentManager + OutboxWorker through a fixed scenario, for kill -9 tests.

    python -m tests.support.incident_driver --state DIR --incidents N (--url URL | --local)

Scenario: N incidents, each firing → escalated → resolved → firing again (reopened within the window) →
resolved, played phase by phase across all incidents at simulated times T0 + step. Progress is saved in
the state database's alert states after each step, exactly as the agent saves the rule manager's states
after handing transitions over — so a kill between the two replays the step, which the incident
manager must recognise. Prints READY once set up, DONE when every operation was delivered.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

T0 = 1_700_000_000.0
PHASES = ("firing", "escalated", "resolved", "refiring", "resolved_again")
EXPECTED_OPS = ("open", "update", "resolve", "reopen", "resolve")


def transition(phase: int, i: int, at: float):  # type: ignore[no-untyped-def]
    from hostwarden.agent.core.alert import AlertState
    from hostwarden.rules.alerts import AlertTransition, TransitionKind

    from tests.support.incidents import alert

    a = alert("KillNine", at=at, disk=f"d{i:04d}")
    name = PHASES[phase]
    if name in ("firing", "refiring"):
        return AlertTransition(a, TransitionKind.FIRING, at)
    if name == "escalated":
        labels = tuple(sorted((k, "critical" if k == "severity" else v) for k, v in a.labels))
        return AlertTransition(dataclasses.replace(a, severity="critical", labels=labels), TransitionKind.ESCALATED,
                               at, previous_severity="warning")
    return AlertTransition(dataclasses.replace(a, state=AlertState.INACTIVE, resolved_at=at, value=0.1),
                           TransitionKind.RESOLVED, at)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--incidents", type=int, required=True)
    ap.add_argument("--url")
    ap.add_argument("--local", action="store_true")
    ap.add_argument("--step-sleep", type=float, default=0.003)
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()

    from hostwarden.agent.incidents.manager import IncidentManager
    from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
    from hostwarden.agent.incidents.state import StateDB

    from tests.support.incidents import HOST, tickets_config

    if args.local:
        text = "backends: [{name: local, type: local}]\n"
    else:
        text = (f"backends: [{{name: hook, type: webhook, url: '{args.url}', timeout: 5s, rate_limit: 1000, "
                f"burst: 1000}}]\n")
    cfg = tickets_config(text + "reopen_window: 1h\nupdate_interval: 5m\nstorm_threshold: 100000\n")
    os.makedirs(args.state, exist_ok=True)
    state = StateDB(os.path.join(args.state, "state.db"))
    manager = IncidentManager(cfg, state=state, hostname=HOST, external_labels={"host": HOST})
    worker = OutboxWorker(state, build_backends(cfg, state_dir=args.state))
    worker.start()
    saved = state.load_alert_states()
    step = int(saved[0]["step"]) if saved else 0
    print("READY", step, flush=True)
    total = len(PHASES) * args.incidents
    while step < total:
        phase, i = divmod(step, args.incidents)
        at = T0 + step
        manager.handle([transition(phase, i, at)], at)
        worker.wake()
        state.save_alert_states([{"rule": "driver", "step": step + 1}])
        step += 1
        time.sleep(args.step_sleep)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not state.query("SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1"):
            break
        worker.wake()
        time.sleep(0.02)
    else:
        print("TIMEOUT: operations still pending", flush=True)
        return 1
    dead = state.query("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")[0][0]
    worker.stop(drain_timeout=1.0)
    state.close()
    print("DONE", dead, flush=True)
    return 0 if dead == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
