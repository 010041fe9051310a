"""Golden exposition of every node_exporter-parity collector over the fixture tree tests/fixtures/nodeparity.

Each collector reads its /proc, /sys or /etc files from the fixture tree, and its rendered text
exposition is compared byte for byte with golden/<collector>.prom. The goldens were written by this
test (`HOSTWARDEN_UPDATE_GOLDEN=1`) and then checked by hand against the fixture files and against
node_exporter 1.5's output for the same families (names, HELP, TYPE, label names, units).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostwarden.collectors import base
from hostwarden.collectors.timex import STA_NANO, Timex
from hostwarden.exporters.prometheus import Exposition

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "nodeparity"
PROC, SYS = str(FIXTURE / "proc"), str(FIXTURE / "sys")
GOLDEN = FIXTURE / "golden"
NOW = 1700000000.25  # 2023-11-14 22:13:20 UTC: winter time in Europe


def fake_uname() -> os.uname_result:
    return os.uname_result(("Linux", "web-01", "6.1.0-13-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)",
                            "x86_64"))


def fake_adjtimex() -> tuple[int, Timex]:
    tx = Timex(status=0x2001 | STA_NANO, offset=-1234567, freq=-1310720, maxerror=16500, esterror=250, constant=7,
               tick=10000, ppsfreq=65536, jitter=2000, shift=2, stabil=131072, jitcnt=1, calcnt=2, errcnt=3,
               stbcnt=4, tai=37)
    return 0, tx


BUILDERS: dict[str, Callable[[type], Any]] = {
    "arp": lambda cls: cls(proc_root=PROC),
    "conntrack": lambda cls: cls(proc_root=PROC),
    "entropy": lambda cls: cls(proc_root=PROC),
    "filefd": lambda cls: cls(proc_root=PROC),
    "netclass": lambda cls: cls(sys_root=SYS),
    "netstat": lambda cls: cls(proc_root=PROC),
    "os": lambda cls: cls(root=str(FIXTURE)),
    "pressure": lambda cls: cls(proc_root=PROC),
    "sockstat": lambda cls: cls(proc_root=PROC, page_size=4096),
    "softnet": lambda cls: cls(proc_root=PROC),
    "stat": lambda cls: cls(proc_root=PROC),
    "time": lambda cls: cls(sys_root=SYS),
    "timex": lambda cls: cls(adjtimex=fake_adjtimex),
    "udp_queues": lambda cls: cls(proc_root=PROC),
    "uname": lambda cls: cls(proc_root=PROC, uname=fake_uname),
    "vmstat": lambda cls: cls(proc_root=PROC),
}


@pytest.fixture
def central_european_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")  # POSIX rule: no tzdata needed
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def render(name: str) -> str:
    cls = base.registry()[name]
    col = BUILDERS[name](cls)
    exp = Exposition(process_metrics=False)
    exp.update(name, col.collect(NOW), col.metrics)
    return exp.render().text.decode()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_collector_fixture_exposition_matches_golden(name: str, central_european_time: None) -> None:
    text = render(name)
    golden = GOLDEN / f"{name}.prom"
    if os.environ.get("HOSTWARDEN_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def test_every_parity_collector_has_a_golden_and_is_enabled_by_default() -> None:
    assert {p.stem for p in GOLDEN.glob("*.prom")} == set(BUILDERS)
    assert set(BUILDERS) <= set(base.DEFAULT_ENABLED)
    assert "systemd" in base.registry() and "systemd" not in base.DEFAULT_ENABLED  # off by default, as in 1.5


@pytest.mark.parametrize("name", sorted(set(BUILDERS) - {"timex", "uname", "time", "os"}))
def test_collector_without_its_source_reports_nothing(name: str, tmp_path: Path) -> None:
    cls = base.registry()[name]
    kw = {"sys_root": str(tmp_path)} if name == "netclass" else {"proc_root": str(tmp_path)}
    assert list(cls(**kw).collect(NOW)) == []


def test_os_without_release_files_and_time_without_clocksource_report_only_what_exists(tmp_path: Path) -> None:
    reg = base.registry()
    assert list(reg["os"](root=str(tmp_path)).collect(NOW)) == []
    names = [s.name for s in reg["time"](sys_root=str(tmp_path)).collect(NOW)]
    assert names == ["node_time_seconds", "node_time_zone_offset_seconds"]
