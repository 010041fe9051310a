"""node_exporter's textfile collector: metrics that cron jobs (backups, updates) leave in `*.prom` files.

Each `*.prom` file in `directory` (not recursive, name order) is read whole in one go and parsed
as the Prometheus text format. As in node_exporter:
- a file that does not parse, has a sample with a timestamp, or whose last line has no newline
  (the format requires one; it is what a torn read looks like) is skipped entirely and sets
  `node_textfile_scrape_error` to 1; the other files are still exposed;
- a metric family that another file already defined with a different TYPE or HELP is dropped from
  the later file (error too), a series defined twice keeps its first definition (error too);
- `node_textfile_mtime_seconds{file}` (full path, whole seconds) is exposed for every file that
  was read, so a stale file is visible (`time() - node_textfile_mtime_seconds > 86400`);
- families without HELP get "Metric read from <files>".
Each problem is logged once when it appears and once when it goes away, not every cycle.

A file is re-read only when its inode, size, mtime or ctime changed. A file modified less than a
second before it was read, or changed while being read (a writer that does not write to a
temporary file and rename it), is read again on the next cycle (git's "racy" rule), so a torn read
never sticks. Unchanged directories cost one scandir and one stat per file.

The directory defaults to `<state_dir>/textfile` (filled in by the config loader); it is created
when missing if the agent may.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from hostwarden.agent.core.paths import default_state_dir
from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

RACY_SECONDS = 1.0
_TYPES = ("counter", "gauge", "untyped", "summary", "histogram")
_COUNTER_WITHOUT_TOTAL = re.compile(r"^[ \t]*#[ \t]*TYPE[ \t]+(\S+)[ \t]+counter[ \t]*$", re.MULTILINE)

BASE_METRICS = metric_defs(
    MetricDef("node_textfile_mtime_seconds", "gauge", "Unixtime mtime of textfiles successfully read.", ("file",)),
    MetricDef("node_textfile_scrape_error", "gauge", "1 if there was an error opening or reading a file, 0 otherwise"),
)


@dataclass(frozen=True)
class TextfileConfig(CollectorConfig):
    directory: str | None = None  # None: <state_dir>/textfile


class TextfileError(ValueError):
    pass


@dataclass(slots=True)
class Family:
    """One metric family as a file declares it. `name` is the MetricDef key: a counter's sample name
    (with or without `_total`, as written), a histogram's or summary's base name, else the sample name."""

    name: str
    type: str
    help: str | None
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)


def _labels(d: dict[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in d.items() if v != ""))


def parse_textfile(text: str) -> list[Family]:
    """Parse one file; raise TextfileError (a ValueError) on anything node_exporter would reject."""
    if text and not text.endswith("\n"):
        # the format requires it, and it is how a torn read of a file still being written shows
        raise TextfileError("the last line does not end with a newline (a file still being written?)")
    declared_plain_counters = {n for n in _COUNTER_WITHOUT_TOTAL.findall(text) if not n.endswith("_total")}
    out: dict[str, Family] = {}
    try:
        parsed = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises bare ValueErrors, IndexErrors, …
        raise TextfileError(f"parse error: {e or type(e).__name__}") from None
    for mf in parsed:
        typ = "untyped" if mf.type == "unknown" else mf.type
        if typ not in _TYPES:
            raise TextfileError(f"metric {mf.name}: type {mf.type} is not supported in the text format")
        # prometheus_client appends _total to a counter declared without it; undo that, names are interface
        strip_total = typ == "counter" and mf.name in declared_plain_counters
        samples = []
        for s in mf.samples:
            if s.timestamp is not None:
                raise TextfileError(f"metric {s.name} has a timestamp; timestamps are not supported")
            name = s.name[:-6] if strip_total and s.name.endswith("_total") else s.name
            samples.append((name, _labels(s.labels), float(s.value)))
        if not samples:
            continue
        key = mf.name if typ in ("histogram", "summary") else samples[0][0]
        help_text = mf.documentation or None
        prev = out.get(key)
        if prev is None:
            out[key] = Family(key, typ, help_text, samples)
        elif prev.type != typ or (help_text and prev.help and help_text != prev.help):
            raise TextfileError(f"metric {key} is declared twice with different TYPE or HELP")
        else:  # the same family in two places of one file (untyped samples not adjacent)
            prev.samples.extend(samples)
            prev.help = prev.help or help_text
    return list(out.values())


@dataclass(slots=True)
class _FileState:
    key: tuple[int, int, int, int] | None  # (inode, size, mtime_ns, ctime_ns) when cacheable
    mtime: float
    families: list[Family]
    error: str | None


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@register("textfile")
class TextfileCollector:
    Config = TextfileConfig

    def __init__(self, config: TextfileConfig | None = None) -> None:
        self.config = config or TextfileConfig()
        self.directory = self.config.directory or os.path.join(default_state_dir(), "textfile")
        self.metrics: dict[str, MetricDef] = dict(BASE_METRICS)
        self._files: dict[str, _FileState] = {}
        self._merged_sig: tuple | None = None
        self._merged: tuple[list[tuple[str, Labels, float]], list[tuple[Labels, float]], bool] = ([], [], False)
        self._logged: dict[str, str] = {}  # path (or the directory) -> problem last logged
        try:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
        except OSError as e:
            log.warning("textfile directory %s cannot be created: %s", self.directory, e)

    # -- reading ------------------------------------------------------------------------------------
    def _load(self, path: str, now: float) -> _FileState:
        try:
            with open(path, "rb") as f:
                before = _stat_key(os.fstat(f.fileno()))
                data = f.read()
                st = os.fstat(f.fileno())
        except OSError as e:
            return _FileState(None, 0.0, [], f"cannot read: {e.strerror or e}")
        key = _stat_key(st)
        cacheable = key == before and now - st.st_mtime >= RACY_SECONDS
        try:
            families = parse_textfile(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            return _FileState(key if cacheable else None, 0.0, [], f"not UTF-8: {e}")
        except TextfileError as e:
            return _FileState(key if cacheable else None, 0.0, [], str(e))
        return _FileState(key if cacheable else None, float(st.st_mtime_ns // 1_000_000_000), families, None)

    def _scan(self, now: float) -> tuple[list[str], bool, str | None]:
        """The .prom files in name order; whether any was (re)read; a directory error."""
        try:
            with os.scandir(self.directory) as it:
                names = sorted(e.name for e in it if e.name.endswith(".prom"))
        except OSError as e:
            self._files.clear()
            return [], True, f"cannot read directory: {e.strerror or e}"
        changed = False
        paths = []
        files: dict[str, _FileState] = {}
        for name in names:
            path = os.path.join(self.directory, name)
            state = self._files.get(path)
            try:
                current = _stat_key(os.stat(path))
            except OSError:
                current = None  # vanished between scandir and stat, or a dangling symlink: _load says why
            if state is None or state.key is None or state.key != current:
                state = self._load(path, now)
                changed = True
            files[path] = state
            paths.append(path)
        if set(files) != set(self._files):
            changed = True
        self._files = files
        return paths, changed, None

    # -- merging ------------------------------------------------------------------------------------
    def _merge(self, paths: list[str]) -> tuple[dict[str, str], dict[str, MetricDef]]:
        """Combine the files' families as node_exporter does; return per-file problems and the defs."""
        problems: dict[str, str] = {}
        series: list[tuple[str, Labels, float]] = []
        mtimes: list[tuple[Labels, float]] = []
        defs: dict[str, tuple[str, str | None, list[str]]] = {}  # name -> (type, help, files)
        seen: set[tuple[str, Labels]] = set()
        for path in paths:
            state = self._files[path]
            if state.error is not None:
                problems[path] = state.error
                continue
            mtimes.append(((("file", path),), state.mtime))
            for fam in state.families:
                known = defs.get(fam.name)
                if fam.name in BASE_METRICS:
                    problems[path] = f"metric {fam.name} belongs to the textfile collector itself"
                    continue
                if known is not None and (known[0] != fam.type or (fam.help and known[1] and fam.help != known[1])):
                    problems[path] = f"metric {fam.name}: TYPE or HELP differs from {known[2][0]}"
                    continue
                if known is None:
                    defs[fam.name] = (fam.type, fam.help, [path])
                else:
                    known[2].append(path)
                    if known[1] is None and fam.help:
                        defs[fam.name] = (known[0], fam.help, known[2])
                for sample in fam.samples:
                    sid = (sample[0], sample[1])
                    if sid in seen:
                        problems[path] = f"series {sample[0]}{dict(sample[1])} is already defined by another file"
                        continue
                    seen.add(sid)
                    series.append(sample)
        metric_defs_out = dict(BASE_METRICS)
        for name, (typ, help_text, files) in defs.items():
            metric_defs_out[name] = MetricDef(name, typ, help_text or f"Metric read from {', '.join(files)}")
        self._merged = (series, mtimes, bool(problems))
        return problems, metric_defs_out

    def _log_problems(self, problems: dict[str, str]) -> None:
        for path, msg in problems.items():
            if self._logged.get(path) != msg:
                log.warning("textfile %s: %s", path, msg)
        for path in set(self._logged) - set(problems):
            if path in self._files or path == self.directory:
                log.info("textfile %s: ok again", path)
        self._logged = dict(problems)

    def collect(self, now: float) -> Iterable[Sample]:
        paths, changed, dir_error = self._scan(now)
        if dir_error is not None:
            self._log_problems({self.directory: dir_error})
            self._merged_sig = None
            self._merged = ([], [], True)
            self.metrics = dict(BASE_METRICS)
        elif changed or self._merged_sig != tuple(paths):
            problems, defs = self._merge(paths)
            self._log_problems(problems)
            self._merged_sig = tuple(paths)
            self.metrics = defs
        series, mtimes, errored = self._merged
        out = [Sample(name, labels, value, now) for name, labels, value in series]
        out.extend(Sample("node_textfile_mtime_seconds", lab, mtime, now) for lab, mtime in mtimes)
        out.append(Sample("node_textfile_scrape_error", (), 1.0 if errored else 0.0, now))
        return out
