from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.collectors.textfile import TextfileCollector, TextfileConfig, parse_textfile
from hostwarden.exporters.prometheus import Exposition
from prometheus_client.parser import text_string_to_metric_families

GOOD = """\
# HELP backup_last_success_timestamp_seconds When the last backup finished.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds{job="db"} 1795000000
backup_last_success_timestamp_seconds{job="files"} 1795000100
# HELP backup_runs_total Backup runs.
# TYPE backup_runs_total counter
backup_runs_total{job="db"} 42
"""


def values(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, s.labels): s.value for s in samples}


def make(tmp_path: Path) -> tuple[TextfileCollector, Path]:
    d = tmp_path / "textfile"
    return TextfileCollector(TextfileConfig(directory=str(d))), d


def write_old(path: Path, text: str) -> None:
    """Write a file and date it back a minute, as a finished cron job's file is."""
    path.write_text(text)
    old = time.time() - 60
    os.utime(path, (old, old))


def test_textfile_good_file_samples_defs_mtime_no_error(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    assert d.is_dir()  # created when missing
    write_old(d / "backup.prom", GOOD)
    out = values(list(col.collect(time.time())))
    assert out[("backup_last_success_timestamp_seconds", (("job", "db"),))] == 1795000000
    assert out[("backup_runs_total", (("job", "db"),))] == 42
    assert out[("node_textfile_mtime_seconds", (("file", str(d / "backup.prom")),))] == int(
        (d / "backup.prom").stat().st_mtime)
    assert out[("node_textfile_scrape_error", ())] == 0
    assert col.metrics["backup_last_success_timestamp_seconds"].type == "gauge"
    assert col.metrics["backup_last_success_timestamp_seconds"].help == "When the last backup finished."
    assert col.metrics["backup_runs_total"].type == "counter"


def test_textfile_empty_directory_only_scrape_error_zero(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    (d / "notes.txt").write_text("not a metrics file")
    (d / "backup.prom.tmp").write_text("garbage {{{")  # an atomic writer's temporary file is ignored
    assert values(list(col.collect(1.0))) == {("node_textfile_scrape_error", ()): 0}


def test_textfile_malformed_file_reported_other_file_kept_logged_once(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    col, d = make(tmp_path)
    write_old(d / "a_good.prom", GOOD)
    write_old(d / "b_bad.prom", "this is { not metrics\n")
    with caplog.at_level(logging.WARNING, logger="hostwarden.collectors.textfile"):
        for _ in range(3):
            out = values(list(col.collect(time.time())))
    assert out[("node_textfile_scrape_error", ())] == 1
    assert out[("backup_runs_total", (("job", "db"),))] == 42
    assert ("node_textfile_mtime_seconds", (("file", str(d / "b_bad.prom")),)) not in out
    assert ("node_textfile_mtime_seconds", (("file", str(d / "a_good.prom")),)) in out
    assert len([r for r in caplog.records if "b_bad.prom" in r.getMessage()]) == 1

    write_old(d / "b_bad.prom", "fixed_metric 1\n")
    with caplog.at_level(logging.INFO, logger="hostwarden.collectors.textfile"):
        out = values(list(col.collect(time.time())))
    assert out[("node_textfile_scrape_error", ())] == 0
    assert out[("fixed_metric", ())] == 1
    assert any("ok again" in r.getMessage() for r in caplog.records)


def test_textfile_timestamps_make_the_whole_file_an_error(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "ts.prom", "good_one 1\nwith_ts{a=\"b\"} 2 1795000000000\n")
    out = values(list(col.collect(time.time())))
    assert out == {("node_textfile_scrape_error", ()): 1}


def test_textfile_inconsistent_help_or_type_drops_later_family(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "a.prom", "# HELP job_ok First help.\n# TYPE job_ok gauge\njob_ok{job=\"a\"} 1\n")
    write_old(d / "b.prom", "# HELP job_ok Other help.\n# TYPE job_ok gauge\njob_ok{job=\"b\"} 0\nb_only 5\n")
    write_old(d / "c.prom", "# TYPE job_ok counter\njob_ok{job=\"c\"} 3\n")
    out = values(list(col.collect(time.time())))
    assert out[("job_ok", (("job", "a"),))] == 1
    assert ("job_ok", (("job", "b"),)) not in out
    assert ("job_ok", (("job", "c"),)) not in out
    assert out[("b_only", ())] == 5  # the rest of the file still counts
    assert out[("node_textfile_scrape_error", ())] == 1
    assert col.metrics["job_ok"].help == "First help."


def test_textfile_same_family_in_two_files_merges_duplicate_series_is_error(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "a.prom", "# TYPE job_ok gauge\njob_ok{job=\"a\"} 1\n")
    write_old(d / "b.prom", "# HELP job_ok Job succeeded.\n# TYPE job_ok gauge\njob_ok{job=\"b\"} 1\n")
    out = values(list(col.collect(time.time())))
    assert out[("job_ok", (("job", "a"),))] == 1 and out[("job_ok", (("job", "b"),))] == 1
    assert out[("node_textfile_scrape_error", ())] == 0
    assert col.metrics["job_ok"].help == "Job succeeded."
    write_old(d / "c.prom", "job_ok{job=\"a\"} 7\n")
    out = values(list(col.collect(time.time())))
    assert out[("job_ok", (("job", "a"),))] == 1  # first definition wins
    assert out[("node_textfile_scrape_error", ())] == 1


def test_textfile_missing_help_names_the_files(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "x.prom", "plain_metric 3\n")
    col.collect(time.time())
    assert col.metrics["plain_metric"].help == f"Metric read from {d / 'x.prom'}"
    assert col.metrics["plain_metric"].type == "untyped"


def test_textfile_parse_keeps_counter_names_as_written() -> None:
    fams = {f.name: f for f in parse_textfile(
        "# TYPE runs counter\nruns 3\n# TYPE jobs_total counter\njobs_total 4\n"
        "# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_count 2\nlat_sum 1.5\n")}
    assert fams["runs"].type == "counter" and fams["runs"].samples == [("runs", (), 3.0)]
    assert fams["jobs_total"].samples == [("jobs_total", (), 4.0)]
    assert fams["lat"].type == "histogram"
    assert [s[0] for s in fams["lat"].samples] == ["lat_bucket", "lat_bucket", "lat_count", "lat_sum"]


def test_textfile_exposition_shows_file_types_and_help(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "backup.prom", GOOD + "# HELP lat Latency.\n# TYPE lat histogram\n"
              "lat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_count 2\nlat_sum 1.5\n")
    exp = Exposition(process_metrics=False)
    exp.update("textfile", col.collect(time.time()), col.metrics)
    fams = {f.name: f for f in text_string_to_metric_families(exp.render().text.decode())}
    assert fams["backup_runs"].type == "counter"
    assert fams["backup_last_success_timestamp_seconds"].documentation == "When the last backup finished."
    assert fams["lat"].type == "histogram" and len(fams["lat"].samples) == 4
    assert fams["node_textfile_scrape_error"].type == "gauge"


def test_textfile_directory_unreadable_is_scrape_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    col = TextfileCollector(TextfileConfig(directory=str(not_a_dir)))
    assert values(list(col.collect(1.0))) == {("node_textfile_scrape_error", ()): 1}


def test_textfile_non_utf8_and_directory_named_prom_are_errors(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "bin.prom", "")
    (d / "bin.prom").write_bytes(b"metric_\xff 1\n")
    (d / "sub.prom").mkdir()
    write_old(d / "ok.prom", "fine 1\n")
    out = values(list(col.collect(time.time())))
    assert out[("fine", ())] == 1
    assert out[("node_textfile_scrape_error", ())] == 1


def test_textfile_unchanged_file_not_reparsed_changed_file_is(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "a.prom", "v 1\n")
    col.collect(time.time())
    state = col._files[str(d / "a.prom")]
    col.collect(time.time())
    assert col._files[str(d / "a.prom")] is state  # cached: stat only
    write_old(d / "a.prom", "v 2\n")
    assert values(list(col.collect(time.time())))[("v", ())] == 2


def test_textfile_recently_modified_file_is_reread_until_settled(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    (d / "a.prom").write_text("v 1\n")
    mtime = (d / "a.prom").stat().st_mtime
    col.collect(mtime + 0.2)  # within a second of the write: maybe torn, do not trust the cache
    state = col._files[str(d / "a.prom")]
    col.collect(mtime + 0.4)
    assert col._files[str(d / "a.prom")] is not state
    col.collect(mtime + 5)
    settled = col._files[str(d / "a.prom")]
    col.collect(mtime + 6)
    assert col._files[str(d / "a.prom")] is settled


def test_textfile_removed_file_disappears(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    write_old(d / "a.prom", "v 1\n")
    assert ("v", ()) in values(list(col.collect(time.time())))
    (d / "a.prom").unlink()
    assert values(list(col.collect(time.time()))) == {("node_textfile_scrape_error", ()): 0}
    assert "v" not in col.metrics


def test_textfile_concurrent_non_atomic_rewrite_never_breaks_collect(tmp_path: Path) -> None:
    col, d = make(tmp_path)
    path = d / "busy.prom"
    body = "".join(f'busy_metric{{n="{i}"}} {i}\n' for i in range(300)).encode()
    path.write_bytes(body)
    stop = threading.Event()
    rewrites = 0

    def writer() -> None:  # truncate, then write in small pieces: readers see every partial state
        nonlocal rewrites
        while not stop.is_set():
            with open(path, "wb") as f:
                for i in range(0, len(body), 97):
                    f.write(body[i:i + 97])
                    f.flush()
            rewrites += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        for _ in range(200):
            out = values(list(col.collect(time.time())))
            n = sum(1 for name, _ in out if name == "busy_metric")
            # a torn read is a parse error (cut inside a line) or a clean prefix, never wrong values or a crash
            assert out[("node_textfile_scrape_error", ())] == 1 or all(
                out[("busy_metric", (("n", str(i)),))] == i for i in range(n))
    finally:
        stop.set()
        t.join(10)
    assert rewrites > 0
    path.write_bytes(body)
    old = time.time() - 60
    os.utime(path, (old, old))
    out = values(list(col.collect(time.time())))
    assert sum(1 for name, _ in out if name == "busy_metric") == 300
    assert out[("node_textfile_scrape_error", ())] == 0
