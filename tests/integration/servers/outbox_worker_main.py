"""A process that delivers a state database's outbox to a real ticketing system, for the kill -9 tests.

    python -m tests.integration.servers.outbox_worker_main STATE_DB {redmine|rt} SETTINGS_JSON

SETTINGS_JSON holds the backend's config keys besides name and type (e.g. `url`, `project` or `queue`,
`fingerprint_field`, and `api_key_env` / `token_env` naming the environment variable that holds the
secret: the secret itself never appears on the command line). The backend is named `ops`, like the one
the test's IncidentManager queued the operations for; its rate limit is lifted so kills land mid-call.

Prints READY when the worker is about to deliver, DONE and exits 0 when nothing is pending any more;
gives up (exit 3) after DEADLINE seconds. Runs `OutboxWorker.run_once` in the foreground (no threads), so
a SIGKILL can land anywhere: between the HTTP call and the commit that records it, mid-transaction …
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from hostwarden.agent.incidents.outbox import OutboxWorker
from hostwarden.agent.incidents.state import StateDB
from hostwarden.exporters.tickets.base import BackendConfig, TicketBackend
from hostwarden.exporters.tickets.redmine import RedmineBackend
from hostwarden.exporters.tickets.rt import RtBackend

DEADLINE = 120.0
BACKENDS: dict[str, Any] = {"redmine": RedmineBackend, "rt": RtBackend}
NAME = "ops"
OVERRIDES: dict[str, Any] = {"rate_limit": 1000.0, "burst": 1000}


def build_backend(kind: str, settings: dict[str, Any]) -> TicketBackend:
    cls = BACKENDS[kind]
    cfg: BackendConfig = cls.Config(**{"timeout": 30, **settings, **OVERRIDES, "name": NAME, "type": kind})
    backend: TicketBackend = cls(cfg)
    return backend


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if len(argv) != 3 or argv[1] not in BACKENDS:
        print(__doc__, file=sys.stderr)
        return 2
    state_path, kind, settings = argv
    backend = build_backend(kind, json.loads(settings))
    state = StateDB(state_path)
    worker = OutboxWorker(state, {NAME: backend}, poll_interval=1e9)
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
