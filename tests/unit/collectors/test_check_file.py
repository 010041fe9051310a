"""The file check on real files, with mtimes set by os.utime and `now` passed to the pure evaluation."""

from __future__ import annotations

import os
import time

from hostwarden.agent.core.schema import Duration
from hostwarden.collectors.check_file import FileCheck, FileConfig, evaluate, stat_files

NOW = 1_700_000_000.0


def make(path, size: int, mtime: float) -> str:
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return str(path)


def by_name(result) -> dict[tuple[str, str], float]:
    return {(s.name, s.label("path")): s.value for s in result.samples}


def test_file_fresh_and_big_enough_is_up(tmp_path) -> None:
    p = make(tmp_path / "db.dump", 2048, NOW - 3600)
    config = FileConfig(name="b", path=p, max_age=Duration(86400), min_size=1024)
    files, error = stat_files(config)
    result = evaluate(files, config, NOW, error)
    assert result.ok, result.message
    assert by_name(result) == {("hostwarden_file_exists", p): 1.0, ("hostwarden_file_age_seconds", p): 3600.0,
                               ("hostwarden_file_size_bytes", p): 2048.0,
                               ("hostwarden_file_modified_timestamp_seconds", p): NOW - 3600}


def test_file_too_old_or_too_small_is_down_with_reason(tmp_path) -> None:
    p = make(tmp_path / "db.dump", 10, NOW - 2 * 86400)
    config = FileConfig(name="b", path=p, max_age=Duration(86400), min_size=1024)
    result = evaluate(stat_files(config)[0], config, NOW)
    assert not result.ok
    assert result.message == f"{p} is 2d old (max 1d); {p} is 10 bytes (min 1024)"


def test_file_missing_reports_exists_zero(tmp_path) -> None:
    p = str(tmp_path / "absent")
    config = FileConfig(name="b", path=p)
    files, error = stat_files(config)
    assert (files, error) == ([], None)
    result = evaluate(files, config, NOW, error)
    assert not result.ok and result.message == f"{p}: does not exist"
    assert by_name(result) == {("hostwarden_file_exists", p): 0.0}


def test_file_glob_limits_apply_to_newest_and_series_capped(tmp_path) -> None:
    for day in range(5):
        make(tmp_path / f"db-{day}.dump", 100 + day, NOW - (5 - day) * 86400)
    config = FileConfig(name="b", path=str(tmp_path / "db-*.dump"), max_age=Duration(86400 + 60), max_files=2)
    files, _ = stat_files(config)
    result = evaluate(files, config, NOW)
    assert result.ok, result.message  # newest is db-4, 1 day old
    got = by_name(result)
    assert got[("hostwarden_file_matches", "")] == 5.0
    assert {path for (_name, path) in got if path} == {str(tmp_path / "db-4.dump"), str(tmp_path / "db-3.dump")}
    stale = evaluate(files, FileConfig(name="b", path=config.path, max_age=Duration(3600)), NOW)
    assert not stale.ok and stale.message.startswith(str(tmp_path / "db-4.dump"))


def test_file_glob_without_matches_and_min_count(tmp_path) -> None:
    pattern = str(tmp_path / "*.dump")
    assert evaluate([], FileConfig(name="b", path=pattern), NOW).message == f"{pattern}: no file matches"
    assert evaluate([], FileConfig(name="b", path=pattern, min_count=0), NOW).ok
    make(tmp_path / "one.dump", 1, NOW)
    config = FileConfig(name="b", path=pattern, min_count=2)
    result = evaluate(stat_files(config)[0], config, NOW)
    assert result.message == f"1 file(s) match {pattern}, expected at least 2"


def test_file_check_run_uses_the_clock(tmp_path) -> None:
    p = make(tmp_path / "f", 5, time.time() - 120)
    result = FileCheck(FileConfig(name="b", path=p, max_age=Duration(60))).run(time.monotonic() + 5)
    assert not result.ok and "old (max 1m)" in result.message
    age = by_name(result)[("hostwarden_file_age_seconds", p)]
    assert 119 <= age < 180


def test_file_unreadable_directory_reports_stat_error(tmp_path) -> None:
    if os.geteuid() == 0:
        # root can stat through a mode-000 directory; use a path through a regular file instead
        blocker = tmp_path / "plain"
        blocker.write_text("")
        p = str(blocker / "child")
    else:
        d = tmp_path / "locked"
        d.mkdir(mode=0)
        p = str(d / "child")
    config = FileConfig(name="b", path=p)
    files, error = stat_files(config)
    result = evaluate(files, config, NOW, error)
    assert not result.ok and result.message.startswith(f"cannot stat {p}: ")
