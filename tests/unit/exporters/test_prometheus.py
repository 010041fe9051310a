from __future__ import annotations

import gzip

from hostwarden.agent.core.samples import MetricDef, Sample, labels_of, metric_defs
from hostwarden.exporters.prometheus import Exposition, format_value
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

DEFS = metric_defs(
    MetricDef("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", ("cpu", "mode")),
    MetricDef("node_load1", "gauge", "1m load average."),
)


def _exposition() -> Exposition:
    exp = Exposition(process_metrics=False)
    exp.update("cpu", [
        Sample("node_cpu_seconds_total", labels_of(cpu="0", mode="user"), 12.5, 1.0),
        Sample("node_cpu_seconds_total", labels_of(cpu="0", mode="idle"), 100.0, 1.0),
    ], DEFS)
    exp.update("load", [Sample("node_load1", (), 0.25, 1.0)], DEFS)
    exp.update("textfile", [Sample("backup_ok", labels_of(job='a"b\\c\nd'), 1.0, 1.0)], {})
    return exp


def test_render_text_format_matches_golden_bytes() -> None:
    r = _exposition().render()
    assert r.text.decode() == (
        "# HELP backup_ok backup ok\n"
        "# TYPE backup_ok untyped\n"
        'backup_ok{job="a\\"b\\\\c\\nd"} 1\n'
        "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n"
        "# TYPE node_cpu_seconds_total counter\n"
        'node_cpu_seconds_total{cpu="0",mode="user"} 12.5\n'
        'node_cpu_seconds_total{cpu="0",mode="idle"} 100\n'
        "# HELP node_load1 1m load average.\n"
        "# TYPE node_load1 gauge\n"
        "node_load1 0.25\n"
    )
    assert r.series == 4
    assert gzip.decompress(r.text_gz) == r.text


def test_render_both_formats_parse_with_client_parsers() -> None:
    r = _exposition().render()
    text_fams = {f.name: f for f in parse_text(r.text.decode())}
    om_fams = {f.name: f for f in parse_om(r.openmetrics.decode())}
    assert text_fams["node_cpu_seconds"].type == "counter"
    assert om_fams["node_cpu_seconds"].type == "counter"
    assert om_fams["backup_ok"].type == "unknown"
    assert r.openmetrics.endswith(b"# EOF\n")
    assert {s.value for s in om_fams["node_cpu_seconds"].samples} == {12.5, 100.0}


def test_update_replaces_snapshot_vanished_series_disappear() -> None:
    exp = _exposition()
    exp.update("load", [], DEFS)
    r = exp.render()
    assert b"node_load1" not in r.text
    exp.remove("textfile")
    assert b"backup_ok" not in exp.render().text


def test_body_for_gzip_first_request_encodes_plain_variant_too() -> None:
    exp = _exposition()
    r = exp.render()
    body, _ctype, gz = exp.body_for("application/openmetrics-text; version=1.0.0", "gzip")  # nothing cached yet
    assert gz and gzip.decompress(body) == r.openmetrics


def test_body_for_picks_format_and_encoding_from_headers() -> None:
    exp = _exposition()
    r = exp.render()
    body, ctype, gz = exp.body_for("application/openmetrics-text; version=1.0.0", "gzip")
    assert gz and ctype.startswith("application/openmetrics-text") and gzip.decompress(body) == r.openmetrics
    body, ctype, gz = exp.body_for("*/*", "")
    assert not gz and ctype.startswith("text/plain; version=0.0.4") and body == r.text


def test_format_value_special_values_go_style() -> None:
    assert [format_value(v) for v in (float("nan"), float("inf"), float("-inf"), 3.0, 0.1, 1e20)] == [
        "NaN", "+Inf", "-Inf", "3", "0.1", "1e+20"]


def test_counter_without_total_suffix_rendered_untyped() -> None:
    exp = Exposition(process_metrics=False)
    exp.update("t", [Sample("odd_counter", (), 1.0, 0.0)], {"odd_counter": MetricDef("odd_counter", "counter", "x")})
    text = exp.render().text.decode()
    assert "# TYPE odd_counter untyped\n" in text
    assert next(iter(parse_text(text))).type == "unknown"  # the client parser maps untyped to unknown


def test_render_same_series_from_two_sources_first_wins() -> None:
    exp = Exposition(process_metrics=False)
    exp.update("a", [Sample("dup", labels_of(x="1"), 1.0, 0.0), Sample("dup", labels_of(x="2"), 2.0, 0.0)])
    exp.update("b", [Sample("dup", labels_of(x="1"), 9.0, 0.0)])
    r = exp.render()
    assert r.series == 2
    assert 'dup{x="1"} 1\n' in r.text.decode() and "9" not in r.text.decode().split("# TYPE dup untyped")[1]


def test_render_two_sources_same_series_first_wins_and_changed_values_rerendered() -> None:
    exp = Exposition(process_metrics=False)
    exp.update("a", [Sample("node_time_seconds", (), 10.0, 1.0),
                     Sample("node_cpu_seconds_total", labels_of(cpu="0", mode="user"), 1.0, 1.0)], DEFS)
    exp.update("b", [Sample("node_time_seconds", (), 11.0, 1.0),
                     Sample("node_cpu_seconds_total", labels_of(cpu="0", mode="user"), 2.0, 1.0)], DEFS)
    text = exp.render().text.decode()
    assert text.count("\nnode_time_seconds ") == 1 and "node_time_seconds 10\n" in text
    assert text.count('node_cpu_seconds_total{cpu="0",mode="user"}') == 1
    # a cached line is reused only while its value is unchanged
    exp.update("a", [Sample("node_time_seconds", (), 12.0, 2.0),
                     Sample("node_cpu_seconds_total", labels_of(cpu="0", mode="user"), 1.0, 2.0)], DEFS)
    exp.update("b", [], DEFS)
    text = exp.render().text.decode()
    assert "node_time_seconds 12\n" in text and 'node_cpu_seconds_total{cpu="0",mode="user"} 1\n' in text
    exp.update("a", [Sample("node_time_seconds", (), float("nan"), 3.0)], DEFS)
    assert "node_time_seconds NaN\n" in exp.render().text.decode()
