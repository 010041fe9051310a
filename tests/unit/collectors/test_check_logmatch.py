"""The logmatch check following real files through appends, rename rotation, truncation and partial lines."""

from __future__ import annotations

import os
import time

from hostwarden.collectors.check_logmatch import LogFollower, LogmatchCheck, LogmatchConfig


def append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def check(path, **kw: object) -> LogmatchCheck:
    kw.setdefault("patterns", {"error": "ERROR", "warn": r"\bWARN\b"})
    return LogmatchCheck(LogmatchConfig(name="app", path=str(path), **kw))


def counts(result) -> dict[str, float]:
    out = {s.label("pattern"): s.value for s in result.samples if s.name == "hostwarden_log_matches_total"}
    out["lines"] = next(s.value for s in result.samples if s.name == "hostwarden_log_lines_total")
    return out


def run(c: LogmatchCheck):
    return c.run(time.monotonic() + 5)


def test_logmatch_first_run_starts_at_end_then_counts_new_lines(tmp_path) -> None:
    log = tmp_path / "app.log"
    log.write_text("ERROR old\nERROR old\n")
    c = check(log)
    assert counts(run(c)) == {"error": 0, "warn": 0, "lines": 0}
    append(log, "ERROR new\nWARN x\nINFO y\nERROR WARN both\n")
    result = run(c)
    assert result.ok, result.message
    assert counts(result) == {"error": 2, "warn": 2, "lines": 4}
    labels = {dict(s.labels)["pattern"]: dict(s.labels) for s in result.samples if "pattern" in dict(s.labels)}
    assert labels["error"] == {"file": str(log), "pattern": "error"}


def test_logmatch_from_beginning_reads_existing_lines(tmp_path) -> None:
    log = tmp_path / "app.log"
    log.write_text("ERROR a\nERROR b\n")
    assert counts(run(check(log, from_beginning=True)))["error"] == 2


def test_logmatch_partial_line_counted_only_once_complete(tmp_path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    c = check(log)
    run(c)
    append(log, "ERR")
    assert counts(run(c)) == {"error": 0, "warn": 0, "lines": 0}
    append(log, "OR split\nERROR")
    assert counts(run(c)) == {"error": 1, "warn": 0, "lines": 1}
    append(log, " second\n")
    assert counts(run(c)) == {"error": 2, "warn": 0, "lines": 2}


def test_logmatch_rotation_by_rename_keeps_lines_written_before_rotation(tmp_path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    c = check(log)
    run(c)
    append(log, "ERROR 1\n")
    run(c)
    append(log, "ERROR 2 written after the last run\nERROR 3 no newline")
    os.rename(log, tmp_path / "app.log.1")  # logrotate `create`
    log.write_text("ERROR 4 in the new file\n")
    result = run(c)
    assert result.ok, result.message
    assert counts(result) == {"error": 4, "warn": 0, "lines": 4}
    append(log, "WARN after\n")
    assert counts(run(c)) == {"error": 4, "warn": 1, "lines": 5}  # monotonic across rotation


def test_logmatch_rotation_by_truncate_restarts_at_zero(tmp_path) -> None:
    log = tmp_path / "app.log"
    log.write_text("INFO padding line that makes the old offset large\n" * 5)
    c = check(log)
    run(c)
    with open(log, "r+") as f:  # logrotate `copytruncate`
        f.truncate(0)
    append(log, "ERROR after truncate\n")
    assert counts(run(c)) == {"error": 1, "warn": 0, "lines": 1}


def test_logmatch_missing_file_is_down_then_read_from_beginning_when_created(tmp_path) -> None:
    log = tmp_path / "later.log"
    c = check(log)
    first = run(c)
    assert not first.ok and first.message == f"{log} does not exist"
    assert counts(first) == {"error": 0, "warn": 0, "lines": 0}
    log.write_text("ERROR created\n")
    second = run(c)
    assert second.ok and counts(second)["error"] == 1


def test_logmatch_read_budget_spreads_a_burst_over_runs(tmp_path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    c = check(log, max_read_bytes=1024)
    run(c)
    line = "ERROR " + "x" * 93 + "\n"  # 100 bytes
    append(log, line * 25)
    first = run(c)
    assert counts(first)["error"] == 10 and "read limit reached" in first.message
    run(c)
    assert counts(run(c))["error"] == 25


def test_log_follower_over_long_line_is_cut_and_counted_once(tmp_path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    f = LogFollower(str(log), max_line_bytes=64)
    f.read(1 << 20)
    append(log, "A" * 200 + "\nshort\n")
    got = f.read(1 << 20)
    assert got.lines == [b"A" * 64, b"short"]
    f.close()
