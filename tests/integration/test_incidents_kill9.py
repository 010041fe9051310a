"""kill -9 at random points while incidents are decided and delivered, then restart, many times.

Against a counting webhook receiver: every operation arrives, a repeat always carries the same
idempotency key, and a receiver that deduplicates by that key holds exactly one ticket per incident,
with its operations in order. Against the local backend: exactly one ticket per incident and each
event once, with no help from a receiver. The default run does 20 + 20 kills (about half a minute);
the `slow` variant (HOSTWARDEN_SLOW=1) 200 + 200.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.incident_driver import EXPECTED_OPS
from tests.support.webhook_receiver import CountingReceiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("HW_KILL9_SEED", "20240611"))
# like tests/reliability: the long variants run only when asked for
only_when_slow = pytest.mark.skipif(os.environ.get("HOSTWARDEN_SLOW", "") != "1",
                                    reason="slow kill -9 variant: set HOSTWARDEN_SLOW=1 to run it")


def driver_cmd(state: Path, incidents: int, target: list[str]) -> list[str]:
    return [sys.executable, "-m", "tests.support.incident_driver", "--state", str(state), "--incidents",
            str(incidents), *target]


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def kill_repeatedly(cmd: list[str], iterations: int, rng: random.Random) -> dict[str, int]:
    """Start the driver, let it work for a random moment, SIGKILL it; `iterations` times. Then let it finish."""
    stats = {"killed": 0, "finished_early": 0}
    for _ in range(iterations):
        proc = start(cmd)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # READY <step>: imports done, state opened, worker started
        if not line.startswith("READY"):
            proc.kill()
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"driver did not start: {line!r}\n{err}")
        time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            stats["killed"] += 1
            proc.communicate(timeout=30)
        else:
            stats["finished_early"] += 1
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0 and "DONE 0" in out, f"driver failed on its own:\n{out}\n{err}"
    final = start(cmd)
    out, err = final.communicate(timeout=180)
    assert final.returncode == 0 and "DONE 0" in out, f"final run failed ({final.returncode}):\n{out}\n{err}"
    return stats


def check_webhook(receiver: CountingReceiver, incidents: int) -> dict[str, int]:
    accepted = receiver.accepted()
    by_key: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in accepted:
        assert r.key.startswith("hw-") and r.body.get("idempotency_key") == r.key
        by_key[r.key].add((r.fingerprint, r.op))
    assert all(len(v) == 1 for v in by_key.values()), "one idempotency key was used for different operations"
    per_fp: dict[str, list[str]] = defaultdict(list)
    for r in receiver.distinct():
        per_fp[r.fingerprint].append(r.op)
    assert len(per_fp) == incidents
    wrong = {fp: ops for fp, ops in per_fp.items() if tuple(ops) != EXPECTED_OPS}
    assert not wrong, f"operations missing, extra or out of order: {list(wrong.items())[:3]}"
    opens = defaultdict(int)
    for key in receiver.tickets:
        (fp, _), = by_key[key]
        opens[fp] += 1
    assert set(opens.values()) == {1}  # exactly one ticket per incident at the deduplicating receiver
    return {"requests": len(accepted), "operations": len(by_key), "repeats": len(accepted) - len(by_key)}


def check_local(state_dir: Path, incidents: int) -> int:
    conn = sqlite3.connect(state_dir / "tickets.db")
    tickets = conn.execute("SELECT id, fingerprint, status, reopen_count FROM tickets").fetchall()
    assert len(tickets) == incidents
    assert len({t[1] for t in tickets}) == incidents  # exactly one ticket per incident
    assert {(t[2], t[3]) for t in tickets} == {("resolved", 1)}
    for tid, *_ in tickets:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events WHERE ticket_id = ? ORDER BY id", (tid,))]
        assert kinds == ["opened", "updated", "resolved", "reopened", "resolved"], (tid, kinds)
    conn.close()
    return len(tickets)


def run_webhook(tmp_path: Path, iterations: int, incidents: int) -> None:
    receiver = CountingReceiver(latency=0.002).up()
    try:
        stats = kill_repeatedly(driver_cmd(tmp_path / "state", incidents, ["--url", receiver.url]), iterations,
                                random.Random(SEED))
        counts = check_webhook(receiver, incidents)
    finally:
        receiver.close()
    print(f"kill -9 webhook: seed {SEED}, {stats}, {counts}")
    assert stats["killed"] >= iterations * 0.8


def run_local(tmp_path: Path, iterations: int, incidents: int) -> None:
    stats = kill_repeatedly(driver_cmd(tmp_path / "state", incidents, ["--local"]), iterations,
                            random.Random(SEED + 1))
    n = check_local(tmp_path / "state", incidents)
    print(f"kill -9 local: seed {SEED + 1}, {stats}, tickets {n}")
    assert stats["killed"] >= iterations * 0.8


def test_incidents_kill9_webhook_every_operation_once_per_key(tmp_path: Path) -> None:
    run_webhook(tmp_path, iterations=20, incidents=80)


def test_incidents_kill9_local_one_ticket_per_incident(tmp_path: Path) -> None:
    run_local(tmp_path, iterations=20, incidents=200)


@pytest.mark.slow
@only_when_slow
def test_incidents_kill9_webhook_many_iterations(tmp_path: Path) -> None:
    run_webhook(tmp_path, iterations=200, incidents=700)


@pytest.mark.slow
@only_when_slow
def test_incidents_kill9_local_many_iterations(tmp_path: Path) -> None:
    run_local(tmp_path, iterations=200, incidents=2000)
