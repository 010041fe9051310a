#!/usr/bin/env python3
"""Silence cost benchmark: the incident tick and the `hostwarden_alerts_silenced` gauge with N open incidents and
S silences in effect (a real state database in a temporary directory, the real IncidentManager).

    .venv/bin/python bench/silences.py [--incidents 1000] [--silences 5]

Prints the tick that pauses the covered incidents, a steady tick (same silences: memoised decisions), the tick
that releases them, an idle tick (no silence in effect: one indexed query), and the gauge over N firing alerts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.silence import parse_matcher
from hostwarden.agent.incidents.state import StateDB
from hostwarden.agent.incidents.suppress import add_silence

from tests.support.incidents import HOST, alert, firing, tickets_config

T0 = 1_700_000_000.0


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--incidents", type=int, default=1000)
    ap.add_argument("--silences", type=int, default=5)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        db = StateDB(os.path.join(d, "state.db"))
        m = IncidentManager(tickets_config("{storm_threshold: 1000000}"), state=db, hostname=HOST,
                            external_labels={"host": HOST})
        m.handle([firing(alert(at=T0, instance=f"i{i}")) for i in range(args.incidents)], T0)
        for i in range(args.silences):
            add_silence(db, [parse_matcher(f"instance=~i{i}0.*"), parse_matcher("alertname=HighCPU")],
                        starts_at=T0 + 5, ends_at=T0 + 3600, created_by="bench", comment="", now=T0)
        pause = timed(lambda: m.tick(T0 + 10))
        steady = timed(lambda: m.tick(T0 + 20))
        covered = db.query("SELECT COUNT(*) FROM incidents WHERE silenced_by != ''")[0][0]
        alerts = [alert(at=T0, instance=f"i{i}") for i in range(args.incidents)]
        gauge = timed(lambda: m.suppress.samples(db, alerts, T0 + 30))
        release = timed(lambda: m.tick(T0 + 3700))
        idle = timed(lambda: m.tick(T0 + 3710))
        db.close()
    print(f"{args.incidents} open incidents, {args.silences} silences ({covered} incidents covered): tick pausing "
          f"{pause:.1f} ms, steady {steady:.1f} ms, releasing {release:.1f} ms, idle {idle:.1f} ms; gauge over "
          f"{args.incidents} firing alerts {gauge:.1f} ms")


if __name__ == "__main__":
    main()
