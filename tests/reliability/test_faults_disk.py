"""The state database on a real, small, full file system: a 2 MiB tmpfs mounted over the agent's state
directory (unmounted by a finalizer), filled to the last block with a filler file while a real `hostwarden
run` works, and freed again by deleting it.

- Disk full while running: the agent keeps scraping and serving /metrics, logs the write failure once
  (not on every tick), `hostwarden_state_write_errors_total` counts the failed writes; a delivery the
  backend accepted but the full disk did not let the agent record is sent again (same Idempotency-Key,
  so one ticket), incidents decided while the disk is full are kept in memory and recorded and
  delivered once space is back. Every operation arrives once per idempotency key, in order.
- Disk full at start: the agent starts on an in-memory copy of the state database and says so; once
  space is back it writes that copy to the file, so what was decided meanwhile survives a restart.

Needs root (mount); skipped with the reason when mounting a tmpfs is not permitted.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.state import StateDB

from tests.reliability.agentprobe import Scraper, parse_exposition, record, value
from tests.support.agent import AgentProcess, start_agent, wait_for, write_config
from tests.support.incidents import HOST, alert, firing, tickets_config
from tests.support.webhook_receiver import CountingReceiver, Reply

pytestmark = pytest.mark.integration

TMPFS_SIZE = "2m"
T0 = 1_700_000_000.0
FULL_WINDOW_SECONDS = 12.0  # longer than the incident tick (10 s): every periodic writer runs while full


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> int:
        """Write zeros until the file system says ENOSPC; the bytes written."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        written = 0
        try:
            block = b"\0" * 65536
            while len(block) >= 512:
                try:
                    written += os.write(fd, block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    block = block[: len(block) // 2]  # the last few blocks
        finally:
            os.close(fd)
        st = os.statvfs(self.path)
        assert st.f_bavail * st.f_frsize < 4096, "the tmpfs is not full"
        return written

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount(8)/umount(8) not installed (util-linux)")
    path = tmp_path / "state"
    path.mkdir(mode=0o750)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0750", "tmpfs", str(path)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a {TMPFS_SIZE} tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True, timeout=30)


def _trigger(textfile: Path, values: dict[int, int]) -> None:
    tmp = textfile / "disk.prom.tmp"
    tmp.write_text("".join(f'disk_trigger{{n="{n}"}} {v}\n' for n, v in sorted(values.items())))
    tmp.rename(textfile / "disk.prom")


def _config(tmp_path: Path, receiver: CountingReceiver, state_dir: Path) -> Path:
    textfile = tmp_path / "textfile"
    textfile.mkdir(exist_ok=True)
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: disk\n    interval: 1s\n    rules:\n"
        "      - alert: DiskFullTest\n        expr: disk_trigger > 0\n"
        "        labels: {severity: critical}\n"
        "        annotations: {summary: 'disk full test #{{ $labels.n }}'}\n")
    return write_config(tmp_path, f"collectors:\n  textfile: {{directory: {textfile}}}\nrule_files: [rules.yaml]\n"
                                  f"tickets:\n  backends:\n    - {{name: hook, type: webhook, url: '{receiver.url}', "
                                  f"timeout: 10s}}\n", state_dir=state_dir)


def _metric(agent: AgentProcess, name: str, **labels: str) -> float:
    return value(parse_exposition(agent.scrape()), name, **labels) or 0.0


def _ops_per_fingerprint(receiver: CountingReceiver) -> dict[str, list[str]]:
    per_fp: dict[str, list[str]] = defaultdict(list)
    for r in receiver.distinct():
        per_fp[r.fingerprint].append(r.op)
    return dict(per_fp)


def _one_ticket_per_key(receiver: CountingReceiver) -> None:
    ops_by_key: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in receiver.accepted():
        ops_by_key[r.key].add((r.fingerprint, r.op))
    assert all(len(v) == 1 for v in ops_by_key.values()), "one idempotency key used for different operations"
    opens = defaultdict(int)
    for key in receiver.tickets:
        ((fp, _),) = ops_by_key[key]
        opens[fp] += 1
    assert set(opens.values()) == {1}, dict(opens)


def test_faults_disk_full_while_running_keeps_scraping_logs_once_no_ticket_lost_or_duplicated(
        tmp_path: Path, small_disk: SmallDisk) -> None:
    receiver = CountingReceiver().up()
    textfile = tmp_path / "textfile"
    values = {n: 0 for n in range(1, 5)}
    cfg = _config(tmp_path, receiver, small_disk.path)
    _trigger(textfile, values)
    agent = start_agent(cfg)
    scraper = Scraper(agent.url + "/metrics", interval=0.5).start()
    started = time.monotonic()
    try:
        # incident #1 opens; its delivery takes 3 s at the receiver, and the disk fills meanwhile: the ticket
        # exists at the receiver but the agent cannot record that it does
        receiver.script([Reply(200, delay=3.0)])
        values[1] = 1
        _trigger(textfile, values)
        wait_for(lambda: _metric(agent, "hostwarden_outbox_pending", backend="hook") == 1, 10, interval=0.05,
                 what="incident #1's open in the outbox")
        filled = small_disk.fill()
        full_at = time.monotonic()
        errors_at_fill = _metric(agent, "hostwarden_state_write_errors_total")
        # incidents #2-#4 fire while the disk is full: decided, but they cannot be recorded
        values.update({2: 1, 3: 1, 4: 1})
        _trigger(textfile, values)
        time.sleep(FULL_WINDOW_SECONDS)
        series_full = parse_exposition(agent.scrape())
        errors_full = value(series_full, "hostwarden_state_write_errors_total") or 0.0
        opens_while_full = len([r for r in receiver.accepted() if r.op == "open"])
        keys_while_full = {r.key for r in receiver.accepted()}
        alive_while_full = agent.proc.poll() is None

        small_disk.free()
        freed_at = time.monotonic()
        wait_for(lambda: len(receiver.distinct()) == 4 and
                 _metric(agent, "hostwarden_outbox_pending", backend="hook") == 0, 40, interval=0.5,
                 what="the four opens delivered and recorded once space is back")
        recovered_after = time.monotonic() - freed_at
        values.update(dict.fromkeys(values, 0))
        _trigger(textfile, values)
        wait_for(lambda: len(receiver.distinct()) == 8 and
                 _metric(agent, "hostwarden_outbox_pending", backend="hook") == 0, 30, interval=0.5,
                 what="the four resolves delivered")
        time.sleep(1.0)
        scrapes = scraper.stop()
        log_text = agent.log_text()
    finally:
        scraper.stop()
        code = agent.stop()
        receiver.close()
    with sqlite3.connect(small_disk.path / "state.db") as c:
        outbox = dict(c.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
        unticketed = c.execute("SELECT COUNT(*) FROM incidents WHERE ticket_id IS NULL").fetchone()[0]

    during = [s for s in scrapes if full_at <= s.at < freed_at]
    per_fp = _ops_per_fingerprint(receiver)
    write_failed_lines = log_text.count("write failed")
    record("state_disk_full_running", tmpfs=TMPFS_SIZE, filler_bytes=filled,
           full_seconds=round(freed_at - full_at, 1), scrapes_while_full=len(during),
           scrape_errors_while_full=sum(1 for s in during if s.status != 200),
           write_errors_while_full=errors_full - errors_at_fill, write_failed_log_lines=write_failed_lines,
           opens_sent_while_full=opens_while_full, recovered_seconds_after_free=round(recovered_after, 1),
           requests=len(receiver.accepted()), operations=len(receiver.distinct()),
           repeats=len(receiver.accepted()) - len(receiver.distinct()), tickets=len(receiver.tickets),
           run_seconds=round(time.monotonic() - started, 1))

    assert code == 0, log_text[-3000:]
    # the agent kept running and scraping while the disk was full
    assert alive_while_full
    assert len(during) >= FULL_WINDOW_SECONDS and all(s.status == 200 for s in during), [s.status for s in during]
    assert all(value(s.series, "hostwarden_collector_success", collector="textfile") == 1 for s in during)
    cycles = [value(s.series, "hostwarden_last_successful_cycle_timestamp_seconds") or 0.0 for s in during]
    assert cycles[-1] - cycles[0] >= FULL_WINDOW_SECONDS - 2, cycles  # collection cycles went on all along
    # the failure is visible: counted by the self-metric, logged once, recovery logged once
    assert errors_full - errors_at_fill >= 2, (errors_at_fill, errors_full)
    assert write_failed_lines == 1, [ln for ln in log_text.splitlines() if "write failed" in ln]
    assert "database or disk is full" in log_text
    assert log_text.count("state database writable again") == 1
    # while full only incident #1's open (accepted, not recordable) went out, re-sent with the same key
    assert keys_while_full and len(keys_while_full) == 1, keys_while_full
    # nothing lost, nothing duplicated: every incident's open then resolve, once per key, one ticket each
    assert len(per_fp) == 4 and all(ops == ["open", "resolve"] for ops in per_fp.values()), per_fp
    _one_ticket_per_key(receiver)
    assert outbox == {"done": 8} and unticketed == 0, (outbox, unticketed)
    # while full the outbox gauge showed what was durable: #1's open (sent, not recorded as done)
    assert value(series_full, "hostwarden_outbox_pending", backend="hook") == 1


def test_faults_disk_full_at_start_runs_in_memory_then_written_back_nothing_lost_after_restart(
        tmp_path: Path, small_disk: SmallDisk) -> None:
    receiver = CountingReceiver()
    receiver.down()  # nothing can be delivered until the third run: the outbox must carry it across restarts
    textfile = tmp_path / "textfile"
    values = {1: 1, 2: 0}
    cfg = _config(tmp_path, receiver, small_disk.path)
    _trigger(textfile, values)
    started = time.monotonic()
    try:
        first = start_agent(cfg)
        wait_for(lambda: _metric(first, "hostwarden_ticket_errors_total", backend="hook") >= 1, 15,
                 what="incident #1's open attempted")
        assert first.stop() == 0

        filled = small_disk.fill()
        second = start_agent(cfg)
        try:
            write_errors_at_start = _metric(second, "hostwarden_state_write_errors_total")
            degraded_at_start = _metric(second, "hostwarden_state_degraded")
            values[2] = 1  # decided while the state database lives in memory
            _trigger(textfile, values)
            wait_for(lambda: _metric(second, "hostwarden_outbox_pending", backend="hook") == 2, 15,
                     what="incident #2's open queued (in memory)")
            small_disk.free()
            freed_at = time.monotonic()
            wait_for(lambda: "the in-memory copy was written back" in second.log_text(), 40, interval=0.5,
                     what="the in-memory copy written back to the file")
            written_back_after = time.monotonic() - freed_at
            wait_for(lambda: value(parse_exposition(second.scrape()), "hostwarden_state_degraded") == 0.0, 10,
                     what="hostwarden_state_degraded back to 0 (exposed, and 0)")
        finally:
            code_second = second.stop()
        log_second = second.log_text()
        with sqlite3.connect(small_disk.path / "state.db") as c:
            pending_in_file = c.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]

        receiver.up()
        third = start_agent(cfg)
        try:
            wait_for(lambda: len(receiver.distinct()) == 2 and
                     _metric(third, "hostwarden_outbox_pending", backend="hook") == 0, 40, interval=0.5,
                     what="both opens delivered by the third run")
            time.sleep(1.0)
        finally:
            code_third = third.stop()
    finally:
        receiver.close()
    per_fp = _ops_per_fingerprint(receiver)
    record("state_disk_full_at_start", tmpfs=TMPFS_SIZE, filler_bytes=filled,
           write_errors_at_start=write_errors_at_start, written_back_seconds_after_free=round(written_back_after, 1),
           pending_in_file_after_second_run=pending_in_file, operations=len(receiver.distinct()),
           repeats=len(receiver.accepted()) - len(receiver.distinct()), tickets=len(receiver.tickets),
           run_seconds=round(time.monotonic() - started, 1))

    assert code_second == 0 and code_third == 0
    # started on the full disk: said so, counted it, ran on the in-memory copy
    assert "running on an in-memory copy" in log_second and "until there is space again" in log_second
    assert write_errors_at_start >= 1 and degraded_at_start == 1.0
    # once space was back the copy (with incident #2, decided meanwhile) went to the file and survived a restart
    assert pending_in_file == 2
    assert sorted(per_fp.values()) == [["open"], ["open"]], per_fp
    _one_ticket_per_key(receiver)


def test_faults_disk_full_incident_opened_logged_once_not_per_retry(  # F19 (fixed)
        tmp_path: Path, small_disk: SmallDisk, caplog: pytest.LogCaptureFixture) -> None:
    state = StateDB(str(small_disk.path / "state.db"))
    manager = IncidentManager(tickets_config("backends: [{name: hook, type: webhook, url: 'http://127.0.0.1:9/h'}]"),
                              state=state, hostname=HOST, external_labels={})
    small_disk.fill()
    a = alert("DiskFullRetry", at=T0, disk="sda")
    with caplog.at_level(logging.INFO, logger="hostwarden.agent.incidents.manager"):
        manager.handle([firing(a)], T0)  # cannot be recorded: kept in memory
        manager.tick(T0 + 10)  # retried: still full
        manager.tick(T0 + 20)
        small_disk.free()
        manager.tick(T0 + 30)  # recorded now
    rows = state.query("SELECT op FROM outbox")
    state.close()
    assert [r["op"] for r in rows] == ["open"]
    opened = [r.getMessage() for r in caplog.records if " opened: " in r.getMessage()]
    assert len(opened) == 1, opened


def test_faults_disk_full_fresh_state_db_in_memory_then_written_back_when_space_returns(
        small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import hostwarden.agent.incidents.state

    monkeypatch.setattr(hostwarden.agent.incidents.state, "RECOVER_EVERY", 0.0)
    small_disk.fill()
    path = small_disk.path / "state.db"
    with caplog.at_level(logging.INFO, logger="hostwarden.agent.incidents.state"):
        db = StateDB(str(path))
        assert db.degraded and db.write_errors == 1
        db.save_alert_states([{"rule": "WhileFull"}])  # in memory; the file cannot take it (tried, still full)
        assert db.degraded
        small_disk.free()
        db.save_alert_states([{"rule": "WhileFull"}, {"rule": "AfterFree"}])
        assert not db.degraded
        db.close()
    assert caplog.text.count("the in-memory copy was written back") == 1
    reopened = StateDB(str(path))
    assert not reopened.degraded
    assert sorted(r["rule"] for r in reopened.load_alert_states()) == ["AfterFree", "WhileFull"]
    assert reopened.query("PRAGMA journal_mode")[0][0] == "wal"
    reopened.close()


def test_faults_disk_full_wal_left_by_kill_9_not_overwritten_by_memory_copy(
        small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import hostwarden.agent.incidents.state

    monkeypatch.setattr(hostwarden.agent.incidents.state, "RECOVER_EVERY", 0.0)
    path = small_disk.path / "state.db"
    StateDB(str(path)).close()
    # a writer killed with -9 right after its commit: the row lives only in the -wal file
    code = ("import os, sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('PRAGMA journal_mode = WAL'); c.execute('PRAGMA wal_autocheckpoint = 0')\n"
            "c.execute(\"INSERT INTO alert_state (key, row) VALUES ('k', '{\\\"rule\\\": \\\"InWal\\\"}')\")\n"
            "os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", code, str(path)], timeout=30, check=False)
    assert os.path.getsize(str(path) + "-wal") > 0
    # without its -shm (lost, or never there) the file opens on a full disk only `immutable`, i.e. without
    # the WAL (with -shm and -wal in place it opens normally and writes fail as in the running case)
    os.unlink(str(path) + "-shm")
    small_disk.fill()
    db = StateDB(str(path))
    assert db.degraded
    small_disk.free()
    db.save_alert_states([{"rule": "Other"}])
    assert db.degraded  # not written back: that could drop the WAL's commits; a restart replays them
    db.close()
    reopened = StateDB(str(path))
    assert [r["rule"] for r in reopened.load_alert_states()] == ["InWal"]
    reopened.close()
