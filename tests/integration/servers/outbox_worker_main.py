"""A process that delivers a state database's outbox to a Redmine, for the kill -9 test.

    python -m tests.integration.servers.outbox_worker_main STATE_DB URL PROJECT FIELD   (API key in $HW_TEST_KEY)

Prints READY when the worker is about to deliver, DONE and exits 0 when nothing is pending any more;
gives up (exit 3) after DEADLINE seconds. Runs `OutboxWorker.run_once` in the foreground (no threads), so
a SIGKILL can land anywhere: between the HTTP call and the commit that records it, mid-transaction …
"""

from __future__ import annotations

import logging
import sys
import time

from agent.outbox import OutboxWorker
from agent.state import StateDB
from exporters.tickets.redmine import RedmineBackend, RedmineConfig

DEADLINE = 120.0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    state_path, url, project, field = argv
    backend = RedmineBackend(RedmineConfig(name="ops", type="redmine", url=url, project=project,
                                           api_key_env="HW_TEST_KEY", fingerprint_field=field, timeout=30,
                                           rate_limit=1000.0, burst=1000))
    state = StateDB(state_path)
    worker = OutboxWorker(state, {"ops": backend}, poll_interval=1e9)
    print("READY", flush=True)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        worker.run_once(time.monotonic())
        if not state.query("SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1"):
            print("DONE", flush=True)
            return 0
        time.sleep(0.05)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
