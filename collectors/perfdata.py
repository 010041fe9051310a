"""Nagios plugin output: text, long text and performance data (Nagios Plugin API / monitoring-plugins
guidelines).

    TEXT LINE 1 | PERFDATA 1
    LONG TEXT LINE 2
    LONG TEXT LINE 3 | PERFDATA 2
    PERFDATA 3

Perfdata items are `'label'=value[UOM];[warn];[crit];[min];[max]`, space-separated; a label with
spaces or `=` is single-quoted and a quote inside it doubled (`'it''s'`). Values are converted to
base units: s/ms/us → seconds, B/KB/MB/GB/TB/PB (1024-based, as the plugins compute them) and
KiB/MiB/... → bytes; `%` stays 0–100; `c` (counter) is kept as is. Parsing is lenient: a malformed
item is skipped and reported in `errors`, the rest are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# UOM → (canonical unit for the `uom` label, factor to the base unit)
UNITS: dict[str, tuple[str, float]] = {
    "": ("", 1.0),
    "s": ("seconds", 1.0),
    "ms": ("seconds", 1e-3),
    "us": ("seconds", 1e-6),
    "%": ("percent", 1.0),
    "B": ("bytes", 1.0),
    "KB": ("bytes", 1024.0),
    "MB": ("bytes", 1024.0**2),
    "GB": ("bytes", 1024.0**3),
    "TB": ("bytes", 1024.0**4),
    "PB": ("bytes", 1024.0**5),
    "KiB": ("bytes", 1024.0),
    "MiB": ("bytes", 1024.0**2),
    "GiB": ("bytes", 1024.0**3),
    "TiB": ("bytes", 1024.0**4),
    "c": ("counter", 1.0),
}

_NUMBER = r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?"
_VALUE_RE = re.compile(rf"^({_NUMBER})([^\d;]*)$")
_PLAIN_NUMBER_RE = re.compile(rf"^{_NUMBER}$")


@dataclass(frozen=True)
class PerfItem:
    label: str
    value: float  # in base units
    uom: str  # canonical: seconds, bytes, percent, counter, "" or the plugin's own unit
    raw_uom: str = ""
    warning: float | None = None  # only plain-number thresholds (ranges are not a single value)
    critical: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass
class PluginOutput:
    text: str = ""  # the first line before '|', for tickets and the check message
    long_text: str = ""
    perfdata: list[PerfItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_output(output: str) -> PluginOutput:
    lines = output.splitlines()
    if not lines:
        return PluginOutput()
    first, _, perf = lines[0].partition("|")
    perf_parts = [perf]
    long_lines: list[str] = []
    in_perf = False
    for line in lines[1:]:
        if in_perf:
            perf_parts.append(line)
            continue
        text, sep, rest = line.partition("|")
        long_lines.append(text.rstrip() if sep else line)
        if sep:
            perf_parts.append(rest)
            in_perf = True
    items, errors = parse_perfdata(" ".join(perf_parts))
    while long_lines and not long_lines[-1].strip():
        long_lines.pop()
    return PluginOutput(first.strip(), "\n".join(long_lines), items, errors)


def _tokens(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Split perfdata into (label, data) pairs; quoted labels may hold spaces, '=' and doubled quotes."""
    out: list[tuple[str, str]] = []
    errors: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "'":
            j = i + 1
            label_chars = []
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        label_chars.append("'")
                        j += 2
                        continue
                    break
                label_chars.append(text[j])
                j += 1
            if j + 1 >= n or text[j + 1] != "=":
                end = _next_space(text, i)  # skip only this word; the items after it still count
                errors.append(f"bad perfdata item {text[i:end]!r}: unterminated quote or missing '='")
                i = end
                continue
            label = "".join(label_chars)
            j += 2
        else:
            end = _next_space(text, i)
            word = text[i:end]
            if "=" not in word:
                errors.append(f"bad perfdata item {word!r}: missing '='")
                i = end
                continue
            label, _, _ = word.partition("=")
            j = i + len(label) + 1
        end = _next_space(text, j)
        out.append((label, text[j:end]))
        i = end
    return out, errors


def _next_space(text: str, i: int) -> int:
    while i < len(text) and not text[i].isspace():
        i += 1
    return i


def _number(s: str) -> float | None:
    s = s.strip()
    if not _PLAIN_NUMBER_RE.match(s):
        return None
    return float(s.replace(",", "."))


def parse_perfdata(text: str) -> tuple[list[PerfItem], list[str]]:
    tokens, errors = _tokens(text)
    items: list[PerfItem] = []
    for label, data in tokens:
        if not label:
            errors.append(f"bad perfdata item {'=' + data!r}: empty label")
            continue
        fields = data.split(";")
        m = _VALUE_RE.match(fields[0])
        if not m:
            if fields[0] != "U":  # 'U': the plugin could not determine the value — not an error
                errors.append(f"bad perfdata value for {label!r}: {fields[0]!r}")
            continue
        raw_uom = m.group(2)
        uom, factor = UNITS.get(raw_uom, (raw_uom, 1.0))
        value = float(m.group(1).replace(",", ".")) * factor

        extras = [_extra(fields, k, factor) for k in range(1, 5)]
        items.append(PerfItem(label, value, uom, raw_uom, *extras))
    return items, errors


def _extra(fields: list[str], k: int, factor: float) -> float | None:
    """warn/crit/min/max field k, when it is a plain number (ranges such as 10:20 or @5 are skipped)."""
    if k >= len(fields) or not fields[k].strip():
        return None
    v = _number(fields[k])
    return None if v is None else v * factor
