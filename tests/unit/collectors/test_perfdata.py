"""Nagios plugin output parsing: text, long text, perfdata items, units, and malformed input."""

from __future__ import annotations

import os

import pytest
from hostwarden.collectors.perfdata import PerfItem, parse_output, parse_perfdata
from hypothesis import given
from hypothesis import strategies as st

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "checks", "plugin-output")


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


def by_label(items: list[PerfItem]) -> dict[str, PerfItem]:
    return {i.label: i for i in items}


def test_parse_output_multiline_collects_perfdata_from_first_and_later_lines() -> None:
    out = parse_output(fixture("multiline.txt"))
    assert out.text == "DISK OK - free space: / 3326 MB (56%);"
    assert out.long_text.splitlines() == ["/ 15272 MB (77%);", "/boot 68 MB (69%);", "/home 69357 MB (27%);",
                                          "/var/log 819 MB (84%);"]
    items = by_label(out.perfdata)
    assert list(items) == ["/", "/boot", "/home", "/var/log"]
    mib = 1024 * 1024
    assert items["/"] == PerfItem("/", 2643 * mib, "bytes", "MB", 5948 * mib, 5958 * mib, 0.0, 5968 * mib)
    assert items["/var/log"].value == 818 * mib and items["/var/log"].max == 980 * mib
    assert out.errors == []


def test_parse_output_seconds_and_bytes_converted_to_base_units() -> None:
    items = by_label(parse_output(fixture("check_http.txt")).perfdata)
    assert items["time"].value == pytest.approx(0.117728) and items["time"].uom == "seconds"
    assert items["time"].min == 0.0 and items["time"].max == 10.0
    assert items["size"] == PerfItem("size", 11395.0, "bytes", "B", None, None, 0.0, None)


def test_parse_output_milliseconds_and_percent() -> None:
    items = by_label(parse_output(fixture("check_ping.txt")).perfdata)
    assert items["rta"].value == pytest.approx(0.00005) and items["rta"].uom == "seconds"
    assert items["rta"].warning == pytest.approx(0.1) and items["rta"].critical == pytest.approx(0.5)
    assert items["pl"] == PerfItem("pl", 0.0, "percent", "%", 20.0, 60.0, 0.0, None)


def test_parse_output_trailing_semicolons_and_no_uom() -> None:
    items = by_label(parse_output(fixture("check_load.txt")).perfdata)
    assert items["load15"] == PerfItem("load15", 0.35, "", "", 5.0, 20.0, 0.0, None)


def test_parse_output_quoted_labels_with_spaces_quotes_and_equals() -> None:
    items = by_label(parse_output(fixture("quoted.txt")).perfdata)
    assert items["eth0 in"] == PerfItem("eth0 in", 123456.0, "counter", "c", None, None, 0.0, None)
    odd = items["it's = odd"]
    # KB is 1024-based; range thresholds (10: and @20:30) are not single numbers and are left out
    assert (odd.value, odd.uom, odd.warning, odd.critical, odd.min) == (5 * 1024.0, "bytes", None, None, 0.0)


def test_parse_output_garbage_items_are_skipped_and_reported_rest_kept() -> None:
    out = parse_output(fixture("garbage.txt"))
    assert [(i.label, i.value) for i in out.perfdata] == [("ok", 1.0), ("z", 2.0), ("w", 1.5)]
    assert len(out.errors) == 4  # 'unterminated, novalue=, =5, x=abc ('U' is a legal "unknown" value)
    assert any("unterminated quote" in e for e in out.errors)


@pytest.mark.parametrize(("text", "value", "uom"), [
    ("a=5us", 5e-6, "seconds"),
    ("a=2GB", 2 * 1024.0**3, "bytes"),
    ("a=1TB", 1024.0**4, "bytes"),
    ("a=3MiB", 3 * 1024.0**2, "bytes"),
    ("a=-4.5", -4.5, ""),
    ("a=1e3", 1000.0, ""),
    ("a=7dBm", 7.0, "dBm"),  # unknown units are kept, unconverted
    ("a=0,25s", 0.25, "seconds"),  # decimal comma from a plugin ignoring LANG=C
])
def test_parse_perfdata_units(text: str, value: float, uom: str) -> None:
    (item,), errors = parse_perfdata(text)
    assert errors == []
    assert item.value == pytest.approx(value) and item.uom == uom


def test_parse_perfdata_missing_fields_are_none() -> None:
    (item,), _ = parse_perfdata("users=3;;10")
    assert (item.warning, item.critical, item.min, item.max) == (None, 10.0, None, None)


def test_parse_output_empty_and_text_only() -> None:
    assert parse_output("").text == ""
    out = parse_output("OK - all fine\n")
    assert (out.text, out.long_text, out.perfdata) == ("OK - all fine", "", [])


@given(st.text(max_size=200))
def test_parse_output_never_raises_on_arbitrary_text(text: str) -> None:
    out = parse_output(text)
    assert all(isinstance(i.value, float) for i in out.perfdata)
