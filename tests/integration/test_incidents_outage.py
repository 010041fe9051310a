"""A receiver that is down, then answers 500, then 429 with Retry-After, then works: every operation arrives
once, in order, and the waiting is backoff, not a busy loop. Real HTTP on 127.0.0.1; the outbox's
monotonic clock is simulated so the test takes about a second."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
from hostwarden.agent.incidents.state import StateDB

from tests.support.incidents import HOST, alert, firing, resolved, severity, tickets_config
from tests.support.webhook_receiver import CountingReceiver, Reply

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
STEP = 0.5


def test_incidents_outage_500_429_then_up_every_operation_once_in_order(tmp_path: Path) -> None:
    receiver = CountingReceiver()
    receiver.down()
    state = StateDB(str(tmp_path / "state.db"))
    cfg = tickets_config(f"backends: [{{name: hook, type: webhook, url: '{receiver.url}', timeout: 2s}}]\n"
                         "update_interval: 1s\n")
    m = IncidentManager(cfg, state=state, hostname=HOST, external_labels={"host": HOST})
    worker = OutboxWorker(state, build_backends(cfg, state_dir=str(tmp_path)), clock=lambda: 0.0, rng=lambda: 0.5)
    alerts = [alert("Outage", at=T0, disk=f"d{i}") for i in range(3)]
    m.handle([firing(a) for a in alerts], T0)
    m.handle([severity(a, "critical", T0 + 5) for a in alerts], T0 + 5)
    m.handle([resolved(a, T0 + 9) for a in alerts], T0 + 9)

    t = 0.0
    calls_while_down = 0
    while t < 30.0:  # 30 s of receiver outage
        worker.run_once(t)
        calls_while_down += 1
        t += STEP
    ops, _ = state.stats.snapshot()
    refused = sum(n for (_, _, result), n in ops.items() if result == "transient")
    assert refused <= 6, f"{refused} attempts in 30 s of outage: backoff, not a busy loop"
    assert all(r["status"] == "pending" for r in state.query("SELECT status FROM outbox"))
    pending = {s.labels: s.value for s in m.self_samples(T0 + 40) if s.name == "hostwarden_outbox_pending"}
    assert pending == {(("backend", "hook"),): 9.0}

    receiver.script([Reply(500), Reply(503), Reply(429, {"Retry-After": "20"})])
    receiver.up()
    seen_429_at = None
    while t < 3000.0 and len(receiver.distinct()) < 9:
        before = len(receiver.requests)
        worker.run_once(t)
        new = receiver.requests[before:]
        if seen_429_at is not None and new:
            assert t >= seen_429_at + 20.0, f"a request {t - seen_429_at:.2f}s after a 429 asking for 20 s"
            seen_429_at = None
        if any(r.status == 429 for r in new):
            seen_429_at = t
        t += STEP
    statuses = [r.status for r in receiver.requests]
    assert statuses[:3] == [500, 503, 429] and set(statuses[3:]) == {200}

    distinct = receiver.distinct()
    assert len(distinct) == 9 and len(receiver.accepted()) == 9  # once each: no operation delivered twice
    per_fp: dict[str, list[str]] = defaultdict(list)
    for r in distinct:
        per_fp[r.fingerprint].append(r.op)
    assert sorted(per_fp) == sorted(a.fingerprint for a in alerts)
    assert all(v == ["open", "update", "resolve"] for v in per_fp.values())
    failed_keys = {r.key for r in receiver.requests if r.status != 200}
    assert failed_keys <= {r.key for r in distinct}  # the retried operations kept their keys
    assert all(r["status"] == "done" for r in state.query("SELECT status FROM outbox"))
    samples = {(s.name, s.labels): s.value for s in m.self_samples(T0 + 500)}
    assert samples[("hostwarden_outbox_pending", (("backend", "hook"),))] == 0
    assert samples[("hostwarden_ticket_errors_total", (("backend", "hook"),))] == refused + 3
    receiver.close()
    state.close()
