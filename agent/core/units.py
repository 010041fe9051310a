"""Durations and sizes as people write them in config ("10s", "1h30m", "5m") and as Prometheus does."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_DURATION_RE = re.compile(r"^((\d+(\.\d+)?)(ms|s|m|h|d|w|y))+$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: object) -> float:
    """Parse a Prometheus-style duration into seconds. Plain numbers are seconds.

    Raises ValueError with a message that says what was wrong.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration such as 10s, 5m or 1h, got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text!r}")
        return float(text)
    s = str(text).strip()
    if s == "0":
        return 0.0
    if not _DURATION_RE.match(s):
        raise ValueError(f"bad duration {s!r}: expected a number with a unit (ms, s, m, h, d, w, y), e.g. 5m, 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in _PART_RE.findall(s))


def format_duration(seconds: float) -> str:
    """Render seconds the way Prometheus prints durations: 1h30m, 5m, 10s, 250ms."""
    if seconds <= 0:
        return "0s"
    ms = round(seconds * 1000)
    if ms % 1000 and ms < 1000:
        return f"{ms}ms"
    out = []
    rem = ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rem >= size:
            out.append(f"{rem // size}{unit}")
            rem %= size
    if ms % 1000 and ms >= 1000:
        out.append(f"{ms % 1000}ms")
    return "".join(out) or "0s"


def human_duration(seconds: float) -> str:
    """A short human form for tickets: '3m 20s', '2h 5m', '1d 4h'."""
    seconds = max(0, round(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d"] if d else []
    if h:
        parts.append(f"{h}h")
    if m and not d:
        parts.append(f"{m}m")
    if s and not d and not h:
        parts.append(f"{s}s")
    return " ".join(parts) or "0s"
