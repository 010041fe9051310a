"""Backends failing in four ways at once under a real `hostwarden run`: the outbox holds, the self-metrics
show it, the agent does not busy-loop while waiting (its CPU is measured), and every ticket arrives once.

One agent, four webhook backends on 127.0.0.1, each its own receiver and fault, routed by a label of the
series that fires:

- `down`: the port refuses connections;
- `slow`: the receiver answers after 3 s, past the backend's 1 s timeout (it still records the request
  and creates the ticket: the agent's retry carries the same Idempotency-Key, so no duplicate);
- `500`: Internal Server Error;
- `429`: Too Many Requests with `Retry-After: 4`.

The agent's CPU time (utime + stime from /proc) is compared over two equal windows: before the rule fires
(the idle baseline) and while all four tickets wait. A busy loop would use about a whole core; the bound
asserted (0.25 cores above the baseline) is a correctness check with a wide margin, not a timing.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.reliability.agentprobe import cpu_seconds, named, parse_exposition, record
from tests.support.agent import start_agent, wait_for, write_config
from tests.support.webhook_receiver import CountingReceiver, Reply

pytestmark = pytest.mark.integration

FAULTS = ("down", "slow", "500", "429")
WINDOW_SECONDS = 8.0
RETRY_AFTER_SECONDS = 4


def _cpu_over(pid: int, seconds: float) -> float:
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def _fault(receiver: CountingReceiver, fault: str) -> None:
    if fault == "down":
        receiver.down()
        return
    receiver.up()
    reply = {"slow": Reply(200, delay=3.0), "500": Reply(500),
             "429": Reply(429, {"Retry-After": str(RETRY_AFTER_SECONDS)})}[fault]
    receiver.script([reply] * 1000)


def _heal(receiver: CountingReceiver) -> None:
    with receiver.lock:
        receiver._script.clear()
    receiver.up()


def test_faults_four_backends_failing_outbox_holds_no_busy_loop_each_ticket_once(tmp_path: Path) -> None:
    receivers = {f: CountingReceiver() for f in FAULTS}
    for fault, receiver in receivers.items():
        _fault(receiver, fault)
    textfile = tmp_path / "textfile"
    textfile.mkdir()

    def trigger(value: int) -> None:
        tmp = textfile / "trigger.prom.tmp"
        tmp.write_text("".join(f'outage_trigger{{fault="{f}"}} {value}\n' for f in FAULTS))
        tmp.rename(textfile / "trigger.prom")

    trigger(0)
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: outage\n    interval: 1s\n    rules:\n"
        "      - alert: OutageTest\n        expr: outage_trigger > 0\n"
        "        labels: {severity: critical}\n"
        "        annotations: {summary: 'fault {{ $labels.fault }}'}\n")
    backends = "".join(f"    - {{name: hook{f}, type: webhook, url: '{r.url}', timeout: 1s}}\n"
                       for f, r in receivers.items())
    routes = "".join(f"    - {{match: {{fault: '{f}'}}, backend: hook{f}}}\n" for f in FAULTS)
    cfg = write_config(tmp_path, f"collectors:\n  textfile: {{directory: {textfile}}}\nrule_files: [rules.yaml]\n"
                                 f"tickets:\n  backends:\n{backends}  route:\n{routes}")
    agent = start_agent(cfg)
    try:
        time.sleep(2.0)  # past start-up work
        idle_cores = _cpu_over(agent.proc.pid, WINDOW_SECONDS)

        trigger(1)

        def errors() -> dict[str, float]:
            series = parse_exposition(agent.scrape())
            return {dict(lab)["backend"]: v for lab, v in named(series, "hostwarden_ticket_errors_total").items()}

        wait_for(lambda: all(errors().get(f"hook{f}", 0) >= 1 for f in FAULTS), 30,
                 what="a failed attempt on each of the four backends")
        errors_before = errors()
        waiting_cores = _cpu_over(agent.proc.pid, WINDOW_SECONDS)
        errors_after = errors()
        series = parse_exposition(agent.scrape())
        pending = {dict(lab)["backend"]: v for lab, v in named(series, "hostwarden_outbox_pending").items()}
        oldest = {dict(lab)["backend"]: v for lab, v in named(series, "hostwarden_outbox_oldest_age_seconds").items()}
        attempts = {f: errors_after[f"hook{f}"] - errors_before[f"hook{f}"] for f in FAULTS}
        requests_429 = [r.at for r in receivers["429"].requests]

        for receiver in receivers.values():
            _heal(receiver)
        # the next attempt comes at the end of the current backoff step (at most 16 s after ~13 s of failures)
        # (the slow receiver recorded tickets while the agent timed out: wait for the agent's own outbox too)
        wait_for(lambda: all(r.distinct() for r in receivers.values()) and not any(
                 named(parse_exposition(agent.scrape()), "hostwarden_outbox_pending").values()), 60, interval=0.5,
                 what="every ticket delivered once the backends are back")
        time.sleep(2.0)  # a straggling retry would show up as a second distinct open
        distinct = {f: [r.key for r in receivers[f].distinct() if r.op == "open"] for f in FAULTS}
        series = parse_exposition(agent.scrape())
        pending_after = {dict(lab)["backend"]: v for lab, v in named(series, "hostwarden_outbox_pending").items()}
    finally:
        code = agent.stop()
        for receiver in receivers.values():
            receiver.close()

    record("outbox_outage_agent", idle_cores=round(idle_cores, 4), waiting_cores=round(waiting_cores, 4),
           window_seconds=WINDOW_SECONDS, attempts_in_window=attempts, pending=pending, oldest_age_seconds=oldest,
           distinct_opens={f: len(k) for f, k in distinct.items()},
           slow_requests_seen=len(receivers["slow"].requests))
    assert code == 0
    # the outbox holds one operation per backend and the metrics say so
    assert all(pending.get(f"hook{f}", 0) >= 1 for f in FAULTS), pending
    assert all(oldest.get(f"hook{f}", 0) > 0 for f in FAULTS), oldest
    # backoff, not a busy loop: a handful of attempts per backend in the window and no CPU burn
    assert all(n <= 4 for n in attempts.values()), attempts
    assert waiting_cores - idle_cores < 0.25, (idle_cores, waiting_cores)
    # Retry-After honoured: consecutive 429 attempts at least RETRY_AFTER_SECONDS apart
    gaps = [b - a for a, b in itertools.pairwise(requests_429)]
    assert gaps and min(gaps) >= RETRY_AFTER_SECONDS - 0.1, gaps
    # delivered once: one ticket per backend (the slow one may see repeats, all with the same key)
    assert {f: len(k) for f, k in distinct.items()} == dict.fromkeys(FAULTS, 1)
    assert len({r.key for r in receivers["slow"].requests if r.op == "open"}) == 1
    assert all(pending_after.get(f"hook{f}", 0) == 0 for f in FAULTS), pending_after
