"""`hostwarden report` against the hand-computed fixture (tests/support/report_fixture.py), exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostwarden.agent.core.priority import build_policy
from hostwarden.agent.incidents.report import build_report, percentile, render_text
from hostwarden.agent.incidents.report_html import render_html
from hostwarden.agent.incidents.state import StateDB

from tests.support.report_fixture import NOW, WINDOWS, T, populate


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    state = StateDB(str(tmp_path_factory.mktemp("report") / "state.db"))
    populate(state)
    rep = build_report(state, since=T, now=NOW, policy=build_policy({}, "P3", {}), checks=["web", "db", "dns"],
                       windows=WINDOWS)
    state.close()
    return rep


def test_report_percentile_linear_interpolation() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([300.0, 600.0, 1200.0, 5400.0], 50) == 900.0
    assert percentile([300.0, 600.0, 1200.0, 5400.0], 90) == 4140.0


def test_report_totals_exact(report: dict) -> None:
    # occurrences: A1, A2 (HighCPU), B, C (DiskFull), D (Blip), E (Deferred); C is open
    # TTA (ticketed, acknowledged): A1 600, A2 300, B 5400, E 1200 (from the end of its silence)
    #   mean 7500/4 = 1875; median (600+1200)/2 = 900; p90 rank 2.7 → 1200 + 0.7·4200 = 4140
    # TTR: A1 3600, A2 900, B 90000, E 2400 (D fired and cleared inside a silence: no ticket, not counted)
    #   mean 96900/4 = 24225; median (2400+3600)/2 = 3000; p90 rank 2.7 → 3600 + 0.7·86400 = 64080
    assert report["incidents"] == {
        "count": 6, "open": 1, "silenced": 2, "silenced_without_ticket": 1,
        "mtta_seconds": 1875.0, "mtta_median_seconds": 900.0, "mtta_p90_seconds": 4140.0,
        "mttr_seconds": 24225.0, "mttr_median_seconds": 3000.0, "mttr_p90_seconds": 64080.0}
    assert report["storms"] == 0


def test_report_sla_breaches_per_priority_exact(report: dict) -> None:
    # P2 targets: acknowledge 1 h, resolve 24 h. B: acked after 1.5 h, resolved after 25 h → both;
    # C: open, unacknowledged for 664000 s → both. P3 (4 h / 3 d): nothing late.
    assert report["sla_breaches"] == {"acknowledge": 2, "resolve": 2}
    assert report["sla_breaches_by_priority"] == {"P2": {"acknowledge": 2, "resolve": 2, "occurrences": 2},
                                                  "P3": {"acknowledge": 0, "resolve": 0, "occurrences": 4}}


def test_report_groups_exact(report: dict) -> None:
    assert {k: g["count"] for k, g in report["by_rule"].items()} == {"Blip": 1, "Deferred": 1, "DiskFull": 2,
                                                                    "HighCPU": 2}
    assert {k: g["count"] for k, g in report["by_category"].items()} == {"capacity": 2, "performance": 4}
    # P3: TTA [300, 600, 1200] → mean 700, median 600, p90 rank 1.8 → 600 + 0.8·600 = 1080
    #     TTR [900, 2400, 3600] → mean 2300, median 2400, p90 → 2400 + 0.8·1200 = 3360
    assert report["by_priority"]["P3"] == {
        "count": 4, "open": 0, "mtta_seconds": 700.0, "mtta_median_seconds": 600.0, "mtta_p90_seconds": 1080.0,
        "mttr_seconds": 2300.0, "mttr_median_seconds": 2400.0, "mttr_p90_seconds": 3360.0}
    assert report["by_priority"]["P2"] == {
        "count": 2, "open": 1, "mtta_seconds": 5400.0, "mtta_median_seconds": 5400.0, "mtta_p90_seconds": 5400.0,
        "mttr_seconds": 90000.0, "mttr_median_seconds": 90000.0, "mttr_p90_seconds": 90000.0}
    assert report["by_rule"]["HighCPU"]["mttr_median_seconds"] == 2250.0  # (900 + 3600) / 2


def test_report_availability_from_check_history_exact(report: dict) -> None:
    # web: known the whole period (864000 s), down 3600 + 1800 s in 2 outages → 858600 / 864000
    # db: known from T+432000, always up; dns: no history, no incidents → from incidents, 100 %
    assert report["availability"] == {
        "db": {"availability_ratio": 1.0, "up_seconds": 432000.0, "down_seconds": 0.0, "known_seconds": 432000.0,
               "outages": 0, "incidents": 0, "source": "history"},
        "dns": {"availability_ratio": 1.0, "down_seconds": 0.0, "incidents": 0, "source": "incidents"},
        "web": {"availability_ratio": 858600 / 864000, "up_seconds": 858600.0, "down_seconds": 5400.0,
                "known_seconds": 864000.0, "outages": 2, "incidents": 0, "source": "history"}}


def test_report_noisiest_rules_exact(report: dict) -> None:
    assert report["noisiest_rules"] == [
        {"rule": "DiskFull", "occurrences": 2, "incidents": 2, "flapping": 2},
        {"rule": "HighCPU", "occurrences": 2, "incidents": 1, "flapping": 0},
        {"rule": "Blip", "occurrences": 1, "incidents": 1, "flapping": 0},
        {"rule": "Deferred", "occurrences": 1, "incidents": 1, "flapping": 0}]


def test_report_silenced_and_maintenance_time_exact(report: dict) -> None:
    # silences: 3600 + 1800 s; maintenance: upgrade 7200 s + nightly 01:00-02:00 on Nov 15..24 = 10 h
    sup = report["suppression"]
    assert (sup["silences"], sup["silenced_seconds"]) == (2, 5400.0)
    assert sup["maintenance_windows"] == {"upgrade": 7200.0, "nightly": 36000.0}
    assert sup["maintenance_seconds"] == 43200.0
    assert [(s["created_by"], s["comment"]) for s in sup["silence_list"]] == [("alice", "patching"),
                                                                              ("bob", "reboot")]


def test_report_text_and_json_render(report: dict) -> None:
    text = render_text(report)
    assert "Incidents: 6 (1 open), 2 silenced (1 without a ticket)" in text
    assert "MTTA median 15m, p90 1h 9m" in text
    assert "MTTR median 50m, p90 17h 48m" in text
    assert "  P2: acknowledge 2, resolve 2 (of 2)" in text
    assert "  web: 99.375%" in text and "from history" in text
    assert "  DiskFull: 2 occurrence(s) in 2 incident(s), 2 flapping episode(s)" in text
    assert "Silenced: 1h 30m (2 silence(s))   Maintenance: 12h" in text
    assert json.loads(json.dumps(report)) == report


def test_report_html_self_contained_and_escaped(report: dict, tmp_path: Path) -> None:
    evil = json.loads(json.dumps(report))
    evil["by_rule"]['<script>alert(1)</script>'] = evil["by_rule"]["Blip"]
    html = render_html(evil, host="web-1")
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 6
    assert "<script" not in html and "&lt;script&gt;" in html
    for external in ("http://", "https://", "src=", "@import", "url("):
        assert external not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
