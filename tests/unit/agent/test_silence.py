"""Matchers, silences, recurring time intervals and the `maintenance:` section: pure, time passed in."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hostwarden.agent.config import load_config
from hostwarden.agent.core.schema import ConfigErrors
from hostwarden.agent.incidents.silence import (
    MaintenanceWindow,
    Matcher,
    Silence,
    TimeInterval,
    active_seconds,
    matches_everything,
    parse_matcher,
    parse_ranges,
    parse_timestamp,
    suppressed_by,
    union_seconds,
)


def ts(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(("text", "expected"), [
    ("alertname=HostHighCpuUsage", Matcher("alertname", "=", "HostHighCpuUsage")),
    ('mountpoint=~"/data.*"', Matcher("mountpoint", "=~", "/data.*")),
    ("env != prod", Matcher("env", "!=", "prod")),
    ('job!~"node|hw"', Matcher("job", "!~", "node|hw")),
    ('summary="say \\"hi\\""', Matcher("summary", "=", 'say "hi"')),
])
def test_silence_parse_matcher_alertmanager_forms(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected


@pytest.mark.parametrize("text", ["=x", "alertname", "a=~(", 'a="open', "a~x", "1a=b"])
def test_silence_parse_matcher_invalid_raises(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


def test_silence_matcher_regex_fully_anchored_and_absent_label_is_empty() -> None:
    m = parse_matcher('mountpoint=~"/data.*"')
    assert m.matches({"mountpoint": "/data"}) and m.matches({"mountpoint": "/data/db"})
    assert not m.matches({"mountpoint": "/srv/data"})  # anchored at the start
    assert not parse_matcher("mountpoint=~/dat").matches({"mountpoint": "/data"})  # and at the end
    assert parse_matcher('env!~"prod|stage"').matches({})  # absent = "" which is neither
    assert parse_matcher("env=").matches({}) and not parse_matcher("env=").matches({"env": "x"})
    assert matches_everything([parse_matcher("env=~.*")])
    assert not matches_everything([parse_matcher("env=~.*"), parse_matcher("alertname=X")])


def test_silence_active_between_start_and_end_and_state_names() -> None:
    s = Silence("abc", (parse_matcher("alertname=A"),), starts_at=100.0, ends_at=200.0)
    assert [s.state(t) for t in (99.9, 100.0, 199.9, 200.0)] == ["pending", "active", "active", "expired"]
    assert [s.active(t) for t in (99.9, 100.0, 199.9, 200.0)] == [False, True, True, False]


def test_silence_suppressed_by_first_covering_silence_then_window() -> None:
    s = Silence("abc", (parse_matcher("alertname=A"), parse_matcher('mountpoint=~"/data.*"')), 100.0, 200.0,
                comment="patching")
    w = MaintenanceWindow("nightly", (parse_matcher("alertname=B"),), start=150.0, end=300.0)
    a = {"alertname": "A", "mountpoint": "/data1"}
    assert suppressed_by(a, [s], [w], 150.0).label == "silence abc"
    assert suppressed_by({**a, "mountpoint": "/"}, [s], [w], 150.0) is None
    assert suppressed_by(a, [s], [w], 200.0) is None
    assert suppressed_by({"alertname": "B"}, [s], [w], 250.0).label == "maintenance nightly"
    assert suppressed_by({"alertname": "B"}, [s], [w], 300.0) is None


def test_silence_time_interval_weekdays_times_in_a_time_zone() -> None:
    iv = TimeInterval(times=((60, 180),), weekdays=parse_ranges(["monday:friday"], "weekdays"),
                      location="Europe/Berlin")
    # 2026-12-07 is a Monday; 01:00-03:00 Berlin (CET, UTC+1) is 00:00-02:00 UTC
    assert iv.contains(ts("2026-12-07T01:00:00", "Europe/Berlin"))
    assert iv.contains(ts("2026-12-07T00:30:00"))  # 01:30 in Berlin
    assert not iv.contains(ts("2026-12-07T02:00:00"))  # 03:00 in Berlin: end exclusive
    assert not iv.contains(ts("2026-12-07T00:59:00", "Europe/Berlin"))
    assert not iv.contains(ts("2026-12-06T01:30:00", "Europe/Berlin"))  # Sunday
    # summer time: 01:00 Berlin is 23:00 UTC the day before
    assert iv.contains(ts("2026-07-06T01:30:00", "Europe/Berlin"))


def test_silence_time_interval_days_of_month_negative_and_months() -> None:
    iv = TimeInterval(days_of_month=parse_ranges(["-1"], "days_of_month"),
                      months=parse_ranges(["february", "11:12"], "months"))
    assert iv.contains(ts("2028-02-29T12:00:00"))  # leap year: the last day is the 29th
    assert not iv.contains(ts("2028-02-28T12:00:00"))
    assert iv.contains(ts("2026-11-30T00:00:00")) and iv.contains(ts("2026-12-31T23:59:00"))
    assert not iv.contains(ts("2026-10-31T12:00:00"))  # October not listed


@pytest.mark.parametrize(("items", "what"), [(["funday"], "weekdays"), (["friday:monday"], "weekdays"),
                                             (["13"], "months"), (["0"], "days_of_month"),
                                             (["-1:5"], "days_of_month"), (["x"], "years")])
def test_silence_parse_ranges_invalid_raises(items: list[str], what: str) -> None:
    with pytest.raises(ValueError):
        parse_ranges(items, what)


def test_silence_active_seconds_one_off_and_recurring() -> None:
    one = MaintenanceWindow("m", start=1000.0, end=5000.0)
    assert active_seconds(one, 0.0, 2000.0) == 1000.0 and active_seconds(one, 4000.0, 9000.0) == 1000.0
    daily = MaintenanceWindow("d", intervals=(TimeInterval(times=((60, 180),)),))  # 01:00-03:00 UTC daily
    since = ts("2026-12-01T00:00:00")
    assert active_seconds(daily, since, since + 7 * 86400) == 7 * 2 * 3600
    assert active_seconds(daily, since + 3600 + 1800, since + 86400) == 5400  # from 01:30
    assert union_seconds([(0, 10), (5, 20), (30, 40)]) == 30


def test_silence_parse_timestamp_forms() -> None:
    assert parse_timestamp("2026-12-05T22:00:00Z") == ts("2026-12-05T22:00:00")
    assert parse_timestamp("2026-12-05 23:00+01:00") == ts("2026-12-05T22:00:00")
    with pytest.raises(ValueError):
        parse_timestamp("next tuesday")


def test_silence_maintenance_config_parsed(tmp_path: Path) -> None:
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text("""\
maintenance:
  - name: db-migration
    start: "2026-12-05T22:00:00Z"
    end: "2026-12-06T02:00:00Z"
    matchers: ['alertname=~"Host.*"']
    comment: CHG-1234
  - name: nightly
    time_intervals:
      - weekdays: ["monday:friday"]
        times: [{start_time: "01:00", end_time: "03:00"}]
        location: Europe/Berlin
""")
    windows = load_config(str(cfg)).sections["maintenance"]
    assert [w.name for w in windows] == ["db-migration", "nightly"]
    assert windows[0].start == ts("2026-12-05T22:00:00") and windows[0].matchers[0].op == "=~"
    assert windows[1].active(ts("2026-12-07T01:30:00", "Europe/Berlin"))


def test_silence_maintenance_config_errors_have_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text("""\
maintenance:
  - name: a
    start: "2026-12-05T22:00:00Z"
  - name: b
    time_intervals:
      - weekdays: [funday]
  - name: c
    time_intervals:
      - location: Mars/Olympus
  - name: d
    start: "2026-12-06T02:00:00Z"
    end: "2026-12-05T02:00:00Z"
    matchers: ['alertname=~"("']
  - name: e
    tme_intervals: []
""")
    with pytest.raises(ConfigErrors) as e:
        load_config(str(cfg))
    text = str(e.value)
    f = str(cfg)
    assert f"{f}:2:" in text and "a one-off window needs both start and end" in text
    assert f"{f}:6:" in text and "'funday' is not a day name" in text
    assert f"{f}:9:" in text and "unknown time zone 'Mars/Olympus'" in text
    assert f"{f}:10:" in text and "must be before end" in text and "invalid regular expression" in text
    assert f"{f}:15:" in text and "unknown key 'maintenance[4].tme_intervals'" in text
