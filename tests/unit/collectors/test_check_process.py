"""The process check against real `sleep` processes started by the test."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.schema import Duration
from hostwarden.collectors.check_process import ProcessCheck, ProcessConfig, ProcessTable

SLEEP = shutil.which("sleep")
pytestmark = pytest.mark.skipif(SLEEP is None, reason="needs the sleep binary (coreutils)")


@pytest.fixture
def sleepers() -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """Three `sleep` processes whose command line carries a unique duration the test can match."""
    token = f"{3000 + uuid.uuid4().int % 5000}.{uuid.uuid4().int % 10**6:06d}"
    procs = [subprocess.Popen([SLEEP, token]) for _ in range(3)]
    yield token, procs
    for p in procs:
        p.kill()
        p.wait(5)


def run(**kw: object):
    # deadline = start + timeout, as the runner passes it: the shared process table is read afresh
    return ProcessCheck(ProcessConfig(name="p", timeout=Duration(5), **kw)).run(time.monotonic() + 5)


def values(result) -> dict[str, float]:
    return {s.name: s.value for s in result.samples}


def test_process_cmdline_regex_counts_matches_and_sums_rss(sleepers) -> None:
    token, _ = sleepers
    result = run(cmdline=rf"sleep {token}$", min=3, max=3)
    assert result.ok, result.message
    got = values(result)
    assert got["hostwarden_process_count"] == 3
    assert got["hostwarden_process_resident_memory_bytes"] > 0
    assert got["hostwarden_process_cpu_seconds_total"] >= 0


def test_process_count_outside_bounds_is_down(sleepers) -> None:
    token, _ = sleepers
    too_few = run(cmdline=token, min=4)
    assert not too_few.ok and too_few.message == f"3 process(es) matching cmdline /{token}/, expected at least 4"
    too_many = run(cmdline=token, max=2)
    assert not too_many.ok and "expected at most 2" in too_many.message


def test_process_name_and_cmdline_must_both_match(sleepers) -> None:
    token, _ = sleepers
    assert values(run(process="sleep", cmdline=token))["hostwarden_process_count"] == 3
    assert values(run(process="not-sleep", cmdline=token, min=0))["hostwarden_process_count"] == 0


def test_process_pidfile_tracks_that_process(sleepers, tmp_path) -> None:
    _, procs = sleepers
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{procs[1].pid}\n")
    assert values(run(pidfile=str(pidfile)))["hostwarden_process_count"] == 1
    procs[1].kill()
    procs[1].wait(5)
    gone = run(pidfile=str(pidfile))
    assert not gone.ok and values(gone)["hostwarden_process_count"] == 0


def test_process_bad_or_missing_pidfile_is_down_with_reason(tmp_path) -> None:
    missing = run(pidfile=str(tmp_path / "none.pid"))
    assert not missing.ok and missing.message.startswith(f"cannot read pidfile {tmp_path / 'none.pid'}")
    bad = tmp_path / "bad.pid"
    bad.write_text("hello")
    assert run(pidfile=str(bad)).message == f"pidfile {bad} does not hold a pid: 'hello'"


def test_process_agent_itself_is_never_counted() -> None:
    # a child interpreter runs the check for a regex that its own command line matches
    token = f"hw-self-{uuid.uuid4().hex}"
    code = ("import time; from hostwarden.collectors.check_process import ProcessCheck, ProcessConfig; "
            f"r = ProcessCheck(ProcessConfig(name='p', cmdline='{token}', min=0)).run(time.monotonic() + 5); "
            "print(int(r.samples[0].value))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_process_user_filter(sleepers) -> None:
    token, _ = sleepers
    me = pwd.getpwuid(os.getuid()).pw_name
    assert values(run(cmdline=token, user=me))["hostwarden_process_count"] == 3
    assert values(run(cmdline=token, user="hostwarden-no-such-user", min=0))["hostwarden_process_count"] == 0


def test_process_table_shared_by_runs_started_before_it_was_read() -> None:
    table = ProcessTable()
    batch_start = time.monotonic()
    first = table.rows(batch_start)
    assert table.rows(batch_start) is first  # a second check of the same batch reuses the read
    assert any(row["pid"] == os.getpid() for row in first)
    later = time.monotonic() + 0.001
    assert table.rows(later) is not first  # a run that started after the read gets a fresh one
