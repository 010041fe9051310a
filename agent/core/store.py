"""Recent samples per series, kept only as long as a loaded rule can look back.

Each series is two parallel `array('d')` (timestamps, values): 16 bytes a point instead of ~120 for
tuples in a deque. Retention is per metric name and set from the rules (longest range + offset +
lookback, at least the diagnosis window); names no rule reads are not kept at all (the exposition
holds their latest values), so the store's cost follows the rules, not the number of series.

When a source (a collector) stops reporting a series, the store appends a Prometheus stale marker
so `foo` stops matching at once instead of lingering for the 5 m lookback, and the series is
dropped from memory once its last real point falls out of retention.
"""

from __future__ import annotations

import itertools
import math
import struct
import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from hostwarden.agent.core.samples import Labels, Sample

STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
_STALE_BITS = struct.pack("<d", STALE_NAN)

LOOKBACK_SECONDS = 300.0


def is_stale(value: float) -> bool:
    return value != value and struct.pack("<d", value) == _STALE_BITS


@dataclass(slots=True, eq=False)
class Series:
    name: str
    labels: Labels
    ts: array = field(default_factory=lambda: array("d"))
    vals: array = field(default_factory=lambda: array("d"))

    def append(self, t: float, v: float) -> None:
        if self.ts and t < self.ts[-1]:
            return  # out of order: ignore, as Prometheus' TSDB does
        if self.ts and t == self.ts[-1]:
            self.vals[-1] = v
            return
        self.ts.append(t)
        self.vals.append(v)

    def trim(self, oldest: float, keep_last: bool) -> None:
        cut = bisect_left(self.ts, oldest)
        if keep_last and cut >= len(self.ts):
            cut = len(self.ts) - 1
        if cut > 0:
            del self.ts[:cut]
            del self.vals[:cut]

    def window(self, start: float, end: float) -> tuple[array, array]:
        """Points with start < t <= end (Prometheus' left-open range), stale markers included."""
        lo = bisect_right(self.ts, start)
        hi = bisect_right(self.ts, end)
        return self.ts[lo:hi], self.vals[lo:hi]

    def at(self, t: float, lookback: float = LOOKBACK_SECONDS) -> tuple[float, float] | None:
        """The latest point at or before t within the lookback, or None (absent or stale)."""
        i = bisect_right(self.ts, t) - 1
        if i < 0 or self.ts[i] <= t - lookback:
            return None
        v = self.vals[i]
        if v != v and is_stale(v):
            return None
        return self.ts[i], v

    @property
    def nbytes(self) -> int:
        return (len(self.ts) + len(self.vals)) * 8 + 200


_STORE_IDS = itertools.count(1)


class SeriesStore:
    """Thread-safe: collectors append from scheduler threads while rule groups read.

    Readers hold `store.lock` for one consistent evaluation (`with store.lock: ...`).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._by_name: dict[str, dict[Labels, Series]] = {}
        self._retention: dict[str, float] = {}
        self._by_source: dict[str, set[tuple[str, Labels]]] = {}
        # postings: name -> (label, value) -> series having it, in creation order (the inverted index
        # that lets `foo{shard="3"}` touch the series of shard 3 instead of every `foo`)
        self._postings: dict[str, dict[tuple[str, str], dict[Labels, Series]]] = {}
        self._retention_cache: dict[str, float] = {}
        # generations: bumped when a series of the name is created or dropped, so a selector can keep the
        # series it selected until the set changes (values are appended in place and need no bump)
        self._gen: dict[str, int] = {}
        self._gen_next = 0
        self.uid = next(_STORE_IDS)  # tells stores apart in caches keyed by generation
        self._last_sweep = float("-inf")
        self._memory: tuple[float, int] = (float("-inf"), 0)

    # -- retention -------------------------------------------------------------------------------
    def set_retention(self, retention_by_name: dict[str, float], *, all_names: float | None = None) -> None:
        """Replace per-name retention (seconds). `all_names` applies to every name (rules with regex names)."""
        with self.lock:
            self._retention = dict(retention_by_name)
            if all_names is not None:
                self._retention["*"] = all_names
            self._retention_cache = {}

    def retention(self, name: str) -> float:
        keep = self._retention_cache.get(name)
        if keep is None:
            keep = self._retention_cache[name] = max(self._retention.get(name, 0.0), self._retention.get("*", 0.0))
        return keep

    # -- writing ---------------------------------------------------------------------------------
    def append(self, source: str, samples: Iterable[Sample], now: float) -> int:
        """Append one complete snapshot from `source`; series it no longer reports get a stale marker.

        Only the series touched here are trimmed (cost proportional to the snapshot, not the store);
        a full sweep for series that went stale runs at most once a minute.
        """
        seen: set[tuple[str, Labels]] = set()
        by_name = self._by_name
        retention = self.retention
        with self.lock:
            for s in samples:
                if retention(s.name) <= 0.0:
                    continue  # no loaded rule reads this name: nothing to keep
                key = (s.name, s.labels)
                seen.add(key)
                by_labels = by_name.get(s.name)
                series = by_labels.get(s.labels) if by_labels is not None else None
                if series is None:
                    series = self._create(s.name, s.labels)
                series.append(_ms_floor(s.timestamp), s.value)
                ts = series.ts
                if len(ts) > 1 and ts[0] < now - retention(s.name):
                    series.trim(now - retention(s.name), keep_last=True)
            previous = self._by_source.get(source, set())
            for name, labels in previous - seen:
                by_labels = by_name.get(name, {})
                series = by_labels.get(labels)
                if series is None:
                    continue
                if retention(name) <= 0:  # no rule looks back at it: gone at once
                    self._drop(name, labels)
                else:
                    series.append(_ms_floor(now), STALE_NAN)
            self._by_source[source] = seen
            if now - self._last_sweep >= 60.0:
                self._sweep(now)
                self._last_sweep = now
        return len(seen)

    def load_series(self, name: str, labels: Labels, points: Iterable[tuple[float, float]]) -> Series:
        """Add points to one series without snapshot/staleness bookkeeping or trimming (rule unit tests)."""
        with self.lock:
            series = self._by_name.get(name, {}).get(labels)
            if series is None:
                series = self._create(name, labels)
            for t, v in points:
                series.append(t, v)
            return series

    def generation(self, name: str | None) -> int:
        """Changes whenever the set of series of `name` (of any name, for None) changes; never repeats."""
        return self._gen.get(name, 0) if name is not None else self._gen_next

    def _bump(self, name: str) -> None:
        self._gen_next += 1
        self._gen[name] = self._gen_next

    def _create(self, name: str, labels: Labels) -> Series:
        self._bump(name)
        series = Series(name, labels)
        self._by_name.setdefault(name, {})[labels] = series
        postings = self._postings.setdefault(name, {})
        for item in labels:
            postings.setdefault(item, {})[labels] = series
        return series

    def _drop(self, name: str, labels: Labels) -> None:
        by_labels = self._by_name.get(name)
        if by_labels is None or by_labels.pop(labels, None) is None:
            return
        self._bump(name)
        postings = self._postings.get(name, {})
        for item in labels:
            plist = postings.get(item)
            if plist is not None:
                plist.pop(labels, None)
                if not plist:
                    del postings[item]
        if not by_labels:
            del self._by_name[name]
            self._postings.pop(name, None)
            self._gen.pop(name, None)  # a later series of this name gets a newer generation from _gen_next

    def forget_source(self, source: str, now: float) -> None:
        """A collector removed by a reload: mark its series stale."""
        self.append(source, (), now)
        with self.lock:
            self._by_source.pop(source, None)

    def _sweep(self, now: float) -> None:
        """Trim every series and drop those whose last point is a stale marker older than retention."""
        for name, by_labels in list(self._by_name.items()):
            keep = self.retention(name)
            dead = []
            for labels, series in by_labels.items():
                if not series.ts:
                    dead.append(labels)
                    continue
                if series.ts[0] < now - keep:
                    series.trim(now - keep, keep_last=True)
                last = series.vals[-1]
                if last != last and is_stale(last) and series.ts[-1] < now - keep:
                    dead.append(labels)
            for labels in dead:
                self._drop(name, labels)

    # -- reading ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self.lock:
            return list(self._by_name)

    def series(self, name: str | None = None) -> Iterator[Series]:
        """Series of one metric name, or of every name when `name` is None (for `{__name__=~...}`)."""
        if name is not None:
            yield from list(self._by_name.get(name, {}).values())
            return
        for by_labels in list(self._by_name.values()):
            yield from list(by_labels.values())

    def series_matching(self, name: str, equal: tuple[tuple[str, str], ...]) -> list[Series]:
        """Series of `name` having every (label, value) of `equal`, in creation order, via the postings."""
        if not equal:
            return list(self._by_name.get(name, {}).values())
        postings = self._postings.get(name)
        if not postings:
            return []
        lists = []
        for item in equal:
            plist = postings.get(item)
            if plist is None:
                return []
            lists.append(plist)
        smallest = min(lists, key=len)
        if len(lists) == 1:
            return list(smallest.values())
        return [s for labels, s in smallest.items() if all(item in labels for item in equal)]

    def get(self, name: str, labels: Labels) -> Series | None:
        return self._by_name.get(name, {}).get(labels)

    def series_count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self._by_name.values())

    def memory_bytes(self, *, max_age: float = 30.0) -> int:
        """Estimated bytes held; a full walk at most every `max_age` seconds (it is a self-metric)."""
        import time

        at, value = self._memory
        if time.monotonic() - at < max_age:
            return value
        with self.lock:
            total = sys.getsizeof(self._by_name)
            for by_labels in self._by_name.values():
                total += sys.getsizeof(by_labels)
                for s in by_labels.values():
                    total += s.nbytes
        self._memory = (time.monotonic(), total)
        return total


def _ms_floor(t: float) -> float:
    """A collected sample's time on Prometheus' millisecond grid, truncated as a scrape's timestamp is: rules
    evaluate at times rounded to the millisecond, so a sample collected a few microseconds before an evaluation
    is seen by it (kept to the microsecond, it would lie "after" the evaluation's rounded time)."""
    return math.floor(t * 1000.0) / 1000.0


def finite(v: float) -> bool:
    return not (math.isnan(v) or math.isinf(v))
