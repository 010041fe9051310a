"""500 incidents at once: one storm ticket lists the excess, the per-backend rate limit holds, nothing is lost.
Real worker thread, real time, real HTTP receiver on 127.0.0.1 (about five seconds)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
from hostwarden.agent.incidents.state import StateDB

from tests.support.incidents import HOST, alert, firing, resolved, tickets_config
from tests.support.webhook_receiver import CountingReceiver

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
RATE, BURST, THRESHOLD, N = 20.0, 5, 20, 500


def wait_until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_incidents_storm_500_at_once_storm_ticket_rate_limited_nothing_lost(tmp_path: Path) -> None:
    receiver = CountingReceiver().up()
    state = StateDB(str(tmp_path / "state.db"))
    cfg = tickets_config(f"backends: [{{name: hook, type: webhook, url: '{receiver.url}', rate_limit: {RATE}, "
                         f"burst: {BURST}}}]\nstorm_threshold: {THRESHOLD}\nstorm_window: 1m\n")
    m = IncidentManager(cfg, state=state, hostname=HOST, external_labels={"host": HOST})
    worker = OutboxWorker(state, build_backends(cfg, state_dir=str(tmp_path)))
    worker.start()
    try:
        alerts = [alert("DiskFailing", at=T0, disk=f"sd{i:03d}") for i in range(N)]
        m.handle([firing(a) for a in alerts], T0)
        worker.wake()
        wait_until(lambda: len(receiver.distinct()) == THRESHOLD + 1, 30)
        opens = [r for r in receiver.distinct() if r.op == "open"]
        storm = [r for r in opens if r.body["incident"]["alertname"] == "HostwardenAlertStorm"]
        assert len(opens) == THRESHOLD + 1 and len(storm) == 1
        storm_incident = storm[0].body["incident"]
        assert storm_incident["title"] == f"Alert storm on {HOST}: {N - THRESHOLD} grouped incidents"
        individual = {r.fingerprint for r in opens} - {storm[0].fingerprint}
        assert set(storm_incident["storm_of"]) == {a.fingerprint for a in alerts} - individual
        assert "480 incidents grouped in this storm ticket" in storm_incident["diagnosis"]

        for a in alerts:
            m.handle([resolved(a, T0 + 300)], T0 + 300)
        m.tick(T0 + 301)  # every member resolved: the storm ticket resolves
        worker.wake()
        wait_until(lambda: not state.query("SELECT 1 FROM outbox WHERE status != 'done' LIMIT 1"), 30)
    finally:
        worker.stop(drain_timeout=5)
    distinct = receiver.distinct()
    resolves = [r for r in distinct if r.op == "resolve"]
    assert len(resolves) == THRESHOLD + 1 and storm[0].fingerprint in {r.fingerprint for r in resolves}
    rows = state.query("SELECT idempotency_key, status FROM outbox")
    assert {r["status"] for r in rows} == {"done"}
    assert {r["idempotency_key"] for r in rows} == {r.key for r in distinct}  # every operation arrived
    assert len(receiver.accepted()) == len(distinct)  # and once
    times = sorted(r.at for r in receiver.requests)
    for i, start in enumerate(times):  # token bucket: at most BURST + RATE·w requests in any window w
        for j in range(i, len(times)):
            window = times[j] - start
            assert j - i + 1 <= BURST + RATE * window + 1, f"{j - i + 1} requests within {window:.3f}s"
    receiver.close()
    state.close()
