"""Issue 13's reproduction: `hostwarden run` with the local store and one always-firing rule, SIGHUP, then
`hostwarden tickets list` from another process. Before the fix the reload closed a second descriptor of
the open database (dropping the process's POSIX locks), the CLI then believed it was the last user and
deleted the WAL: /proc/<pid>/fd showed `tickets.db-wal (deleted)` and later tickets were invisible."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, run_cli, start_agent, wait_for, write_config

pytestmark = pytest.mark.integration

RULES = """groups:
  - name: always
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: warning}
      - alert: SecondAlert
        expr: hw_test_second > 0
        labels: {severity: warning}
"""


def deleted_fds(pid: int) -> list[str]:
    """Open descriptors of `pid` whose file was unlinked (the symptom of a lost -wal/-shm)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)") and ".db" in target:
            out.append(target)
    return out


def db_fds(pid: int, name: str) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if os.path.basename(target.replace(" (deleted)", "")) == name:
            out.append(target)
    return out


def tickets(cfg: Path) -> list[dict]:
    res = run_cli("tickets", "list", "--format", "json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def reloads(agent: AgentProcess) -> int:
    return agent.log_text().count("configuration reloaded")


def set_second(tmp_path: Path, value: float) -> None:
    d = tmp_path / "state" / "textfile"
    d.mkdir(parents=True, exist_ok=True)
    (d / ".t.tmp").write_text(f"hw_test_second {value}\n")
    os.replace(d / ".t.tmp", d / "t.prom")


@pytest.fixture
def agent(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "rules.yaml").write_text(RULES)
    set_second(tmp_path, 0)
    cfg = write_config(tmp_path, f"rule_files: [{tmp_path / 'rules.yaml'}]\n")
    proc = start_agent(cfg)
    yield proc
    proc.kill()


def test_sighup_then_cli_no_deleted_wal_and_later_tickets_visible(agent: AgentProcess, tmp_path: Path) -> None:
    cfg = agent.config
    wait_for(lambda: tickets(cfg), 20, what="the first ticket")
    for n in range(1, 4):  # several reloads, each followed by the CLI opening the database
        agent.signal(signal.SIGHUP)
        wait_for(lambda n=n: reloads(agent) >= n, 20, what=f"reload {n}")
        assert len(tickets(cfg)) == 1
        assert deleted_fds(agent.proc.pid) == []
        # one connection per file: the database itself is open once (no leaked connection per reload)
        assert len(db_fds(agent.proc.pid, "tickets.db")) == 1, db_fds(agent.proc.pid, "tickets.db")
        assert len(db_fds(agent.proc.pid, "state.db")) == 1, db_fds(agent.proc.pid, "state.db")
    # a ticket opened after the reloads is visible to the CLI
    set_second(tmp_path, 1)
    got = wait_for(lambda: [t for t in tickets(cfg) if "SecondAlert" in t["title"]], 20, what="the second ticket")
    assert len(got) == 1
    # an operator's acknowledgement survives the agent's stop
    res = run_cli("tickets", "ack", str(got[0]["id"]), "--by", "alice", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert deleted_fds(agent.proc.pid) == []
    assert agent.stop() == 0, agent.log_text()
    (after,) = [t for t in tickets(cfg) if t["id"] == got[0]["id"]]
    assert (after["status"], after["acknowledged_by"]) == ("acknowledged", "alice")


def test_kill9_after_reload_and_cli_loses_no_ticket(agent: AgentProcess, tmp_path: Path) -> None:
    cfg = agent.config
    wait_for(lambda: tickets(cfg), 20, what="the first ticket")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: reloads(agent) >= 1, 20, what="reload")
    tickets(cfg)
    set_second(tmp_path, 1)
    wait_for(lambda: len(tickets(cfg)) == 2, 20, what="the second ticket")
    time.sleep(0.5)
    agent.kill()
    assert len(tickets(cfg)) == 2
    restarted = start_agent(cfg)
    try:
        time.sleep(3)
        assert len(tickets(cfg)) == 2
        assert "missing" not in restarted.log_text()
    finally:
        restarted.kill()
