"""The state database file: mode, WAL, corrupt/truncated files, schema migrations, alert states."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.core import sqlitefile
from hostwarden.agent.incidents.state import MIGRATIONS, SCHEMA_VERSION, StateDB


def test_state_new_file_mode_0600_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.db"
    db = StateDB(str(path))
    db.save_alert_states([{"rule": "A", "group": "g", "labels": [["host", "h"]], "state": "firing"}])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for sidecar in ("state.db-wal", "state.db-shm"):
        p = path.parent / sidecar
        assert p.exists() and stat.S_IMODE(p.stat().st_mode) == 0o600
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    assert db.query("PRAGMA synchronous")[0][0] == 2  # FULL
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    db.close()


def test_state_existing_file_with_wide_mode_tightened_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateDB(str(path)).close()
    os.chmod(path, 0o644)
    StateDB(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_state_garbage_file_moved_aside_logged_and_fresh_db(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database\n" * 200)
    with caplog.at_level(logging.ERROR):
        db = StateDB(str(path))
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.db.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "moved it to" in caplog.text and str(aside[0]) in caplog.text
    assert db.load_alert_states() == [] and not db.degraded
    db.save_alert_states([{"rule": "A"}])
    assert db.load_alert_states() == [{"rule": "A"}]
    db.close()


def test_state_truncated_file_moved_aside_and_fresh_db(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = StateDB(str(path))
    db.save_alert_states([{"rule": f"R{i}", "pad": "x" * 2000} for i in range(300)])
    db.close()
    size = path.stat().st_size
    assert size > 100_000
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    db = StateDB(str(path))
    assert db.load_alert_states() == []
    assert any(p.name.startswith("state.db.corrupt-") for p in tmp_path.iterdir())
    db.close()


def test_state_older_schema_migrated_and_rows_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    conn = sqlitefile.connect(path)
    sqlitefile.migrate(conn, MIGRATIONS[:1], what="test", path=path)  # a version-1 database
    conn.execute("INSERT INTO incidents (fingerprint, backend, rule, title, priority, status, alert, labels, "
                 "opened_at, fired_at) VALUES ('fp1', 'local', 'R', 'T', 'P3', 'open', '{}', '[]', 1, 1)")
    conn.execute("INSERT INTO alert_state (key, row) VALUES ('k', ?)", (json.dumps({"rule": "R"}),))
    conn.close()
    db = StateDB(path)
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    row = db.query("SELECT fingerprint, muted, remote_state FROM incidents")[0]
    assert (row["fingerprint"], row["muted"], row["remote_state"]) == ("fp1", 0, "")
    assert db.load_alert_states() == [{"rule": "R"}]
    db.close()


def test_state_newer_schema_refused_and_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(sqlitefile.SchemaTooNew, match="newer than this hostwarden"):
        StateDB(str(path))
    assert path.read_bytes() == before
    assert not any(p.name.startswith("state.db.corrupt-") for p in tmp_path.iterdir())


def test_state_alert_states_round_trip_and_unchanged_rows_not_rewritten(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "state.db"))
    rows = [{"group": "g", "rule": "A", "signature": "s", "occurrence": 0, "labels": [["i", str(i)]],
             "state": "pending", "active_since": 10.0 + i} for i in range(5)]
    db.save_alert_states(rows)
    changes = db.query("SELECT total_changes()")[0][0]
    db.save_alert_states([dict(r) for r in rows])  # identical: nothing written
    assert db.query("SELECT total_changes()")[0][0] == changes
    rows[2] = {**rows[2], "state": "firing", "fired_at": 99.0}
    db.save_alert_states(rows[:4])  # one changed, one gone
    assert db.query("SELECT total_changes()")[0][0] == changes + 2
    loaded = sorted(db.load_alert_states(), key=lambda r: r["labels"][0][1])
    assert loaded == rows[:4]
    db.close()
    reopened = StateDB(str(tmp_path / "state.db"))
    assert sorted(reopened.load_alert_states(), key=lambda r: r["labels"][0][1]) == rows[:4]
    reopened.close()


def test_state_write_failure_logged_once_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = StateDB(str(tmp_path / "state.db"))
    pages = db.query("PRAGMA page_count")[0][0]
    db.connection.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: SQLITE_FULL
    big = [{"rule": f"R{i}", "pad": "x" * 4000} for i in range(50)]
    with caplog.at_level(logging.ERROR):
        db.save_alert_states(big)
        db.save_alert_states(big)
    assert caplog.text.count("write failed") == 1 and "full" in caplog.text
    assert db.write_errors == 2
    db.connection.execute("PRAGMA max_page_count = 1000000")
    db.save_alert_states(big)
    assert len(db.load_alert_states()) == 50
    db.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user (nobody) in a child process")
def test_state_unwritable_directory_runs_on_in_memory_copy() -> None:
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # pytest's tmp_path is not traversable by others
        os.chmod(top, 0o755)
        _run_unwritable(Path(top), subprocess, sys)


def _run_unwritable(d: Path, subprocess: Any, sys: Any) -> None:
    path = d / "state.db"
    db = StateDB(str(path))
    db.save_alert_states([{"rule": "Kept"}])
    db.close()
    os.chmod(path, 0o644)
    code = (
        "import os, sys, json, logging\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from hostwarden.agent.incidents.state import StateDB\n"
        "import hostwarden.agent.core.sqlitefile, urllib.parse, hashlib, uuid\n"
        "os.setgid(65534); os.setuid(65534)\n"
        f"db = StateDB({str(path)!r})\n"
        "rows = db.load_alert_states()\n"
        "db.save_alert_states(rows + [{'rule': 'New'}])\n"
        "print(json.dumps({'degraded': db.degraded, 'rows': db.load_alert_states()}))\n"
    )
    root = Path(__file__).resolve().parents[3]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["degraded"] is True
    assert {r["rule"] for r in out["rows"]} == {"Kept", "New"}
    assert "in-memory copy" in res.stderr
    reread = StateDB(str(path))
    assert reread.load_alert_states() == [{"rule": "Kept"}]  # nothing written to the file
    reread.close()
