"""sqlitefile: one connection per file per process, and no descriptor opened or closed beside it (the POSIX
lock trap of SQLite's "How To Corrupt An SQLite Database File" §2.2)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hostwarden.agent.core import sqlitefile
from hostwarden.exporters.tickets.local import MIGRATIONS, TicketStore

CHILD = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
print(c.execute("SELECT COUNT(*) FROM tickets").fetchone()[0])
c.close()
"""


def other_process_count(path: Path) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=30,
                         check=True)
    return int(out.stdout)


def insert(store: TicketStore, title: str) -> None:
    with store._tx() as c:
        c.execute("INSERT INTO tickets (fingerprint, title, status, priority, opened_at, status_changed_at, "
                  "updated_at) VALUES ('fp', ?, 'new', 'P3', 0, 0, 0)", (title,))


def test_sqlitefile_second_store_in_process_shares_the_connection_and_keeps_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "tickets.db"
    running = TicketStore(str(path))
    insert(running, "one")
    wal_inode = os.stat(str(path) + "-wal").st_ino
    reloaded = TicketStore(str(path))  # a reload builds the new backend while the old one runs
    assert reloaded._conn is running._conn
    assert sqlitefile.open_files()[os.path.realpath(path)] == 2
    running.close()
    assert other_process_count(path) == 1  # the CLI opens and closes the file meanwhile
    # the agent's WAL survived the other process's close: same inode, and later writes reach other processes
    assert os.stat(str(path) + "-wal").st_ino == wal_inode
    insert(reloaded, "two")
    assert other_process_count(path) == 2
    reloaded.close()
    assert os.path.realpath(path) not in sqlitefile.open_files()


def test_sqlitefile_last_release_closes_and_a_reopen_is_a_new_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    a = sqlitefile.acquire(path, MIGRATIONS, what="t")
    b = sqlitefile.acquire(path, MIGRATIONS, what="t")
    assert a is b and a.refs == 2
    sqlitefile.release(a)
    a.conn.execute("SELECT 1")  # still open for the other user
    sqlitefile.release(b)
    sqlitefile.release(b)  # an extra release is harmless
    with pytest.raises(sqlite3.ProgrammingError):
        a.conn.execute("SELECT 1")
    c = sqlitefile.acquire(path, MIGRATIONS, what="t")
    assert c is not a
    sqlitefile.release(c)


def test_sqlitefile_open_database_refuses_a_file_already_open_in_the_process(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    shared = sqlitefile.acquire(path, MIGRATIONS, what="t")
    try:
        with pytest.raises(RuntimeError, match="already open"):
            sqlitefile.open_database(path, MIGRATIONS, what="t")
    finally:
        sqlitefile.release(shared)


def test_sqlitefile_new_file_is_0600_and_existing_file_tightened_by_path(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "sub" / "new.db"
        shared = sqlitefile.acquire(str(path), MIGRATIONS, what="t")
        sqlitefile.release(shared)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        loose = tmp_path / "loose.db"
        loose.write_bytes(b"")
        os.chmod(loose, 0o644)
        shared = sqlitefile.acquire(str(loose), MIGRATIONS, what="t")
        sqlitefile.release(shared)
        assert stat.S_IMODE(os.stat(loose).st_mode) == 0o600
    finally:
        os.umask(old)


def test_sqlitefile_replaced_file_gets_its_own_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    old = sqlitefile.acquire(path, MIGRATIONS, what="t")
    os.replace(path, path + ".aside")  # moved away while held (as move_aside does with a corrupt file)
    new = sqlitefile.acquire(path, MIGRATIONS, what="t")
    assert new is not old and new.inode != old.inode
    sqlitefile.release(old)  # releasing the old one leaves the new one registered and open
    assert sqlitefile.open_files()[os.path.realpath(path)] == 1
    new.conn.execute("SELECT 1")
    sqlitefile.release(new)


def test_sqlitefile_cli_waits_for_the_agents_write_transaction_instead_of_failing(tmp_path: Path) -> None:
    """The CLI and the agent meet: a write transaction held for 1.5 s makes `tickets ack` wait (busy timeout),
    not fail with "database is locked"."""
    from tests.support.agent import run_cli

    state = tmp_path / "state"
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {state}\n  hostname: h\nrule_files: []\n")
    agent_side = TicketStore(str(state / "tickets.db"))
    try:
        insert(agent_side, "held")
        import threading
        import time

        held = threading.Event()

        def hold() -> None:
            with agent_side._tx():
                held.set()
                time.sleep(1.5)

        t = threading.Thread(target=hold)
        t.start()
        held.wait(5)
        started = time.monotonic()
        res = run_cli("tickets", "ack", "1", "--by", "alice", "--config", str(cfg))
        waited = time.monotonic() - started
        t.join()
        assert res.returncode == 0, res.stderr
        assert "locked" not in res.stderr
        assert waited >= 0.5  # it did meet the transaction
        assert agent_side.get(1)["acknowledged_by"] == "alice"
    finally:
        agent_side.close()
