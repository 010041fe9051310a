"""Prometheus exposition: rendered at most once per collection cycle, served from memory.

Collection is decoupled from scrapes: each source (a collector, the check runner, the rule
manager, the agent itself) hands over a complete snapshot; `render()` turns all snapshots into
the text format (0.0.4) and OpenMetrics 1.0 bytes, plain and gzip, when the first scrape after a
change asks for them; every other scrape picks the cached bytes matching its Accept/Accept-Encoding
headers. A vanished series disappears with the
next snapshot of its source (client_python's "fresh families every scrape" idea).

The per-series line `name{labels} value` is cached between renders, so a render costs a dict lookup per
series, plus the value's repr and one string join where the value changed.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
import time
from collections.abc import Iterable

from hostwarden.agent.core.samples import Labels, MetricDef, Sample
from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created", "_info", "_gsum", "_gcount")


def format_value(v: float) -> str:
    if v != v:
        return "NaN"
    if -1e15 < v < 1e15:
        i = int(v)
        return str(i) if i == v else repr(float(v))
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    return repr(float(v))


def _escape_label_value(v: str) -> str:
    if "\\" in v or '"' in v or "\n" in v:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return v


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _series_prefix(name: str, labels: Labels) -> str:
    if not labels:
        return name + " "
    inner = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in labels)
    return f"{name}{{{inner}}} "


class Rendered:
    """One render: the series lines are built once; each of the four encodings (text or OpenMetrics,
    plain or gzip) is joined/compressed on first request and then served from memory. Prometheus
    asks for gzipped OpenMetrics, so a typical cycle pays for exactly one encoding."""

    __slots__ = ("_cache", "_lock", "_parts", "render_seconds", "rendered_at", "series")

    def __init__(self, parts: list[tuple[str, str, str]], series: int, rendered_at: float,
                 render_seconds: float) -> None:
        self._parts = parts  # (text header, OpenMetrics header, series lines) per family
        self._cache: dict[str, bytes] = {}
        self._lock = threading.RLock()  # a gzip variant encodes its plain variant under the same lock
        self.series = series
        self.rendered_at = rendered_at
        self.render_seconds = render_seconds

    def _get(self, key: str) -> bytes:
        got = self._cache.get(key)
        if got is not None:
            return got
        with self._lock:
            got = self._cache.get(key)
            if got is None:
                if key == "text":
                    got = "".join(h + body for h, _o, body in self._parts).encode()
                elif key == "openmetrics":
                    got = ("".join(o + body for _h, o, body in self._parts) + "# EOF\n").encode()
                else:
                    got = gzip.compress(self._get(key[:-3]), compresslevel=1)  # half the CPU of 5, ~15 % bigger
                self._cache[key] = got
            return got

    @property
    def text(self) -> bytes:
        return self._get("text")

    @property
    def text_gz(self) -> bytes:
        return self._get("text_gz")

    @property
    def openmetrics(self) -> bytes:
        return self._get("openmetrics")

    @property
    def openmetrics_gz(self) -> bytes:
        return self._get("openmetrics_gz")


class Exposition:
    """Snapshots by source → cached exposition bytes."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._snapshots: dict[str, tuple[list[Sample], dict[str, MetricDef]]] = {}
        # (name, labels) -> (prefix, value, line) of the last render: an unchanged value reuses its line
        self._line_cache: dict[tuple[str, Labels], tuple[str, float, str]] = {}
        self._header_cache: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        if process_metrics:
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)
        self._rendered = Rendered([], 0, 0.0, 0.0)
        self._dirty = True

    # -- input ------------------------------------------------------------------------------------
    def update(self, source: str, samples: Iterable[Sample], defs: dict[str, MetricDef] | None = None) -> None:
        snap = (list(samples), dict(defs or {}))
        with self._lock:
            self._snapshots[source] = snap
            self._dirty = True

    def remove(self, source: str) -> None:
        with self._lock:
            self._snapshots.pop(source, None)
            self._dirty = True

    def sources(self) -> list[str]:
        with self._lock:
            return list(self._snapshots)

    # -- rendering --------------------------------------------------------------------------------
    def render(self) -> Rendered:
        start = time.perf_counter()
        with self._render_lock:
            with self._lock:
                snaps = list(self._snapshots.values())
                self._dirty = False  # an update from here on makes the next scrape render again
            snaps.append(self._client_snapshot())
            families: dict[str, list[Sample]] = {}
            owner: dict[str, int] = {}  # which snapshot a name came from; -1 once two did
            defs: dict[str, MetricDef] = {}
            for i, (samples, sdefs) in enumerate(snaps):
                for name, d in sdefs.items():
                    defs.setdefault(name, d)
                for s in samples:
                    fam = families.get(s.name)
                    if fam is None:
                        fam = families[s.name] = []
                        owner[s.name] = i
                    elif owner[s.name] != i:
                        owner[s.name] = -1
                    fam.append(s)
            shared = {n for n, o in owner.items() if o == -1}
            # the families holding a series two sources report (e.g. node_time_seconds from uptime and time)
            shared_fams = {n[:-6] if n.endswith("_total") and getattr(defs.get(n), "type", "") == "counter" else n
                           for n in shared}
            parts: list[tuple[str, str, str]] = []
            new_cache: dict[tuple[str, Labels], tuple[str, float, str]] = {}
            cache = self._line_cache
            series = 0
            grouped = self._group_families(families, defs)
            headers = self._header_cache
            new_headers: dict[tuple[str, str, str], tuple[str, str]] = {}
            for fam_name, (mtype, help_text, members) in grouped.items():
                hkey = (fam_name, mtype, help_text)
                head = headers.get(hkey) or self._headers(fam_name, mtype, help_text)
                new_headers[hkey] = head
                lines = []
                dedupe = fam_name in shared_fams or (bool(shared) and mtype in ("histogram", "summary")
                                                     and any(m.name in shared for m in members))
                seen: set[tuple[str, Labels]] = set()
                for s in members:
                    key = (s.name, s.labels)
                    if dedupe:  # two sources reporting the same series: first wins
                        if key in seen:
                            continue
                        seen.add(key)
                    v = s.value
                    entry = cache.get(key)
                    if entry is None or entry[1] != v:  # NaN != NaN: formatted again, correctly
                        prefix = entry[0] if entry is not None else _series_prefix(s.name, s.labels)
                        entry = (prefix, v, prefix + format_value(v) + "\n")
                    new_cache[key] = entry
                    lines.append(entry[2])
                series += len(lines)
                parts.append((head[0], head[1], "".join(lines)))
            self._header_cache = new_headers
            self._line_cache = new_cache
            rendered = Rendered(parts, series, time.time(), time.perf_counter() - start)
            self._rendered = rendered
            return rendered

    @staticmethod
    def _headers(fam_name: str, mtype: str, help_text: str) -> tuple[str, str]:
        text_type = "untyped" if mtype == "unknown" else mtype
        om_type = "unknown" if mtype == "untyped" else mtype
        text_name = fam_name + "_total" if mtype == "counter" else fam_name
        h = _escape_help(help_text)
        return (f"# HELP {text_name} {h}\n# TYPE {text_name} {text_type}\n",
                f"# HELP {fam_name} {h}\n# TYPE {fam_name} {om_type}\n")

    def _client_snapshot(self) -> tuple[list[Sample], dict[str, MetricDef]]:
        """prometheus-client's process/platform/GC collectors, as samples for our own renderer."""
        samples: list[Sample] = []
        defs: dict[str, MetricDef] = {}
        for fam in self._registry.collect():
            mtype = fam.type if fam.type in ("counter", "gauge", "info") else "untyped"
            name = fam.name + "_total" if mtype == "counter" else fam.name + "_info" if mtype == "info" else fam.name
            defs[name] = MetricDef(name, mtype, fam.documentation)
            for s in fam.samples:
                if s.name.endswith("_created"):
                    continue
                samples.append(Sample(s.name, tuple(sorted(s.labels.items())), float(s.value), 0.0))
        return samples, defs

    @staticmethod
    def _group_families(families: dict[str, list[Sample]],
                        defs: dict[str, MetricDef]) -> dict[str, tuple[str, str, list[Sample]]]:
        """Map sample names to families: counters `x_total` → family `x`, histogram/summary parts → base."""
        out: dict[str, tuple[str, str, list[Sample]]] = {}
        for name in sorted(families):
            d = defs.get(name)
            fam_name, mtype, help_text = name, "untyped", ""
            if d is not None:
                mtype, help_text = d.type, d.help
                if mtype == "counter":
                    if name.endswith("_total"):
                        fam_name = name[:-6]
                    else:
                        mtype = "untyped"  # a counter without _total cannot be expressed in both formats
                elif mtype == "info":
                    mtype = "gauge"
            else:
                for suf in _SUFFIXES:
                    base = name[: -len(suf)]
                    if name.endswith(suf) and base in defs and defs[base].type in ("histogram", "summary"):
                        fam_name, mtype, help_text = base, defs[base].type, defs[base].help
                        break
            if fam_name in out:
                out[fam_name][2].extend(families[name])
            else:
                out[fam_name] = (mtype, help_text or name.replace("_", " "), list(families[name]))
        return out

    def last_rendered(self) -> Rendered:
        """The last render, without rendering (for self-metrics about rendering)."""
        return self._rendered

    def current(self) -> Rendered:
        """The exposition of the latest snapshots: rendered at most once per change, on first demand.

        Collection never waits for this and a scrape never waits for a collector; a cycle nobody
        scrapes costs no rendering (Prometheus at 15 s over a 10 s cycle skips every third)."""
        if self._dirty:
            return self.render()
        return self._rendered

    def body_for(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for a scrape's headers; rendering is never done here."""
        r = self.current()
        om = "application/openmetrics-text" in (accept or "")
        gz = "gzip" in (accept_encoding or "")
        if om:
            return (r.openmetrics_gz if gz else r.openmetrics), OPENMETRICS_CONTENT_TYPE, gz
        return (r.text_gz if gz else r.text), TEXT_CONTENT_TYPE, gz
