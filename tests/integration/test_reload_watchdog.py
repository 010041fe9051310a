"""A reload that takes long (a backend's `token_file` is a FIFO nobody writes yet: reading it blocks) runs on
its own thread: the scheduler's heartbeat keeps pinging systemd's watchdog meanwhile, rules keep evaluating,
and once the secret arrives the reload completes (issue 13: "reload runs off the heartbeat job")."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_sdnotify import NotifySocket, _count
from tests.support.agent import start_agent, wait_for, write_config

pytestmark = pytest.mark.integration


def test_slow_reload_does_not_stop_watchdog_pings(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    fifo = tmp_path / "token.fifo"
    os.mkfifo(fifo)

    def body(token_file: Path) -> str:
        return (f"rule_files: []\ntickets:\n  backends:\n    - {{name: hook, type: webhook, "
                f"url: 'http://127.0.0.1:9/hook', token_file: {token_file}}}\n")

    cfg = write_config(tmp_path, body(token))
    notify = NotifySocket()
    agent = start_agent(cfg, env={"NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "2000000"})  # ping every 1 s
    writer: threading.Thread | None = None
    try:
        notify.receive_until(lambda r: _count(r, "WATCHDOG=1") >= 2, timeout=30)
        cfg.write_text(cfg.read_text().replace(str(token), str(fifo)))
        agent.signal(signal.SIGHUP)
        notify.receive_until(lambda r: any(d.has("RELOADING=1") for d in r), timeout=20)
        t_reloading = time.monotonic()
        before = _count(notify.received, "WATCHDOG=1")
        # the reload is blocked on the FIFO; four seconds of pings must go on
        notify.receive_until(lambda r: _count(r, "WATCHDOG=1") >= before + 3, timeout=6)
        assert time.monotonic() - t_reloading < 6
        assert "configuration reloaded" not in agent.log_text()

        def write_secret() -> None:
            with open(fifo, "w") as f:
                f.write("n3w-t0k3n\n")

        writer = threading.Thread(target=write_secret, daemon=True)
        writer.start()
        wait_for(lambda: "configuration reloaded" in agent.log_text(), 20, what="the reload to complete")
        assert agent.stop() == 0, agent.log_text()
    finally:
        agent.kill()
        notify.close()
        if writer is not None:
            writer.join(5)
