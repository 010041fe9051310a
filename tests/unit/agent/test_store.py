from __future__ import annotations

from hostwarden.agent.core.samples import Sample, labels_of
from hostwarden.agent.core.store import STALE_NAN, SeriesStore, is_stale


def _snap(t: float, **series: float) -> list[Sample]:
    return [Sample("m", labels_of(dev=dev), v, t) for dev, v in series.items()]


def test_append_vanished_series_referenced_by_rules_gets_stale_marker() -> None:
    store = SeriesStore()
    store.set_retention({"m": 600.0})
    store.append("c", _snap(10, a=1, b=2), 10)
    store.append("c", _snap(20, a=3), 20)
    b = store.get("m", labels_of(dev="b"))
    assert b is not None
    assert list(b.ts) == [10, 20] and is_stale(b.vals[-1])
    assert b.at(25) is None  # stale: no longer matches an instant selector
    assert store.get("m", labels_of(dev="a")).at(25) == (20, 3)


def test_append_names_no_rule_reads_not_stored() -> None:
    store = SeriesStore()
    store.append("c", _snap(10, a=1, b=2), 10)
    assert store.series_count() == 0
    store.set_retention({"m": 0.0}, all_names=60.0)  # a rule selecting {__name__=~...}
    store.append("c", _snap(20, a=3), 20)
    assert store.series_count() == 1


def test_append_keeps_only_retention_window_plus_latest_point() -> None:
    store = SeriesStore()
    store.set_retention({"m": 30.0})
    for t in range(0, 100, 10):
        store.append("c", _snap(t, a=t), t)
    a = store.get("m", labels_of(dev="a"))
    assert list(a.ts) == [60, 70, 80, 90]


def test_sweep_drops_stale_series_once_out_of_retention() -> None:
    store = SeriesStore()
    store.set_retention({"m": 30.0})
    store.append("c", _snap(0, a=1, b=1), 0)
    store.append("c", _snap(10, a=1), 10)  # b gets a stale marker at 10
    assert store.get("m", labels_of(dev="b")) is not None
    store.append("c", _snap(100, a=1), 100)  # the minute sweep: b's last point (10) is older than 100 - 30
    assert store.get("m", labels_of(dev="b")) is None
    assert store.get("m", labels_of(dev="a")) is not None


def test_window_is_left_open_and_includes_stale_markers() -> None:
    store = SeriesStore()
    s = store.load_series("m", (), [(0, 1.0), (10, 2.0), (20, STALE_NAN), (30, 4.0)])
    ts, vals = s.window(0, 20)
    assert list(ts) == [10, 20] and vals[0] == 2.0 and is_stale(vals[1])
    assert s.at(29) is None and s.at(30) == (30, 4.0)
    assert s.at(400) is None  # outside the 5 m lookback


def test_out_of_order_point_ignored_same_timestamp_overwrites() -> None:
    store = SeriesStore()
    s = store.load_series("m", (), [(10, 1.0), (5, 9.0), (10, 2.0)])
    assert list(s.ts) == [10] and list(s.vals) == [2.0]


def test_series_matching_uses_postings_and_follows_removals() -> None:
    store = SeriesStore()
    store.set_retention({"m": 0.0}, all_names=0.0)
    store.set_retention({"m": 60.0})
    snap = [Sample("m", labels_of(dev=d, host=h), 1.0, 10) for d in ("a", "b") for h in ("x", "y")]
    store.append("c", snap, 10)
    got = store.series_matching("m", (("dev", "a"),))
    assert [s.labels for s in got] == [labels_of(dev="a", host="x"), labels_of(dev="a", host="y")]
    assert [s.labels for s in store.series_matching("m", (("dev", "b"), ("host", "y")))] == [
        labels_of(dev="b", host="y")]
    assert store.series_matching("m", (("dev", "zzz"),)) == []
    assert len(store.series_matching("m", ())) == 4
    store.append("c", snap[:1], 20)  # three vanish: stale now, dropped by the sweep once out of retention
    store.append("c", snap[:1], 200)
    assert [s.labels for s in store.series_matching("m", (("host", "y"),))] == []
    assert [s.labels for s in store.series_matching("m", (("dev", "a"),))] == [labels_of(dev="a", host="x")]
