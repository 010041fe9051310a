"""Silences and maintenance windows: which alerts get no ticket operations right now (pure; time passed in).

- Matchers as in Alertmanager (`amtool silence add`, a route's `matchers:`): `name=value`, `name!=value`,
  `name=~regex`, `name!~regex`; the value may be double-quoted; regexes are RE2 (Go syntax), fully
  anchored (`^(?:regex)$`). An absent label matches as the empty string. A silence needs at least one
  matcher that does not match the empty string (Alertmanager's rule: a silence must not match everything).
- A `Silence` holds from `starts_at` to `ends_at` (Unix seconds); `silence expire` ends it early.
- A `MaintenanceWindow` (the `maintenance:` config section) is either one-off (`start`/`end`) or recurring
  (`time_intervals`, Alertmanager's: `times`, `weekdays`, `days_of_month`, `months`, `years`, `location`),
  optionally limited by matchers (none: every alert).

`suppressed_by(labels, silences, windows, now)` names the first silence or window that covers an alert.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hostwarden.rules.promql_regex import RegexError, compile_matcher

OPS = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str  # one of OPS
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = _regex(self.value)(got)
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        value = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{value}"'


_REGEX_CACHE: dict[str, object] = {}


def _regex(pattern: str):  # type: ignore[no-untyped-def]
    fn = _REGEX_CACHE.get(pattern)
    if fn is None:
        if len(_REGEX_CACHE) > 1024:
            _REGEX_CACHE.clear()
        fn = _REGEX_CACHE[pattern] = compile_matcher(pattern, v2=True)  # ^(?:re)$, as Alertmanager anchors
    return fn


def parse_matcher(text: str) -> Matcher:
    """`alertname=HostHighCpuUsage`, `mountpoint=~"/data.*"`, `env!="prod"`; raises ValueError."""
    s = text.strip()
    m = _NAME.match(s)
    if m is None:
        raise ValueError(f"matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")
    name, rest = m.group(0), s[m.end():].lstrip()
    op = next((o for o in OPS if rest.startswith(o)), None)
    if op is None:
        raise ValueError(f"matcher {text!r}: expected one of {', '.join(OPS)} after the label name {name!r}")
    value = rest[len(op):].strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = re.sub(r'\\(.)', r"\1", value[1:-1])
    elif value.startswith('"'):
        raise ValueError(f"matcher {text!r}: unterminated quoted value")
    if op in ("=~", "!~"):
        try:
            compile_matcher(value, v2=True)
        except RegexError as e:
            raise ValueError(f"matcher {text!r}: invalid regular expression: {e}") from None
    return Matcher(name, op, value)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matches_everything(matchers: Iterable[Matcher]) -> bool:
    """True when the matchers accept an alert without labels (Alertmanager refuses such silences)."""
    return matches_all(matchers, {})


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""
    created_at: float = 0.0

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        """Alertmanager's silence states: pending, active, expired."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)


# -- recurring time intervals (Alertmanager `time_intervals`) -------------------------------------------------

@dataclass(frozen=True, slots=True)
class TimeInterval:
    """Empty fields mean "any". Ranges are inclusive, except `times` (end exclusive, minutes of the day)."""

    times: tuple[tuple[int, int], ...] = ()  # (start minute, end minute), 0 ≤ start < end ≤ 1440
    weekdays: tuple[tuple[int, int], ...] = ()  # 0 = Monday
    days_of_month: tuple[tuple[int, int], ...] = ()  # 1..31 or -31..-1 (from the end of the month)
    months: tuple[tuple[int, int], ...] = ()  # 1..12
    years: tuple[tuple[int, int], ...] = ()
    location: str = "UTC"

    def contains(self, now: float) -> bool:
        t = datetime.fromtimestamp(now, _zone(self.location))
        if self.times and not any(a <= t.hour * 60 + t.minute < b for a, b in self.times):
            return False
        if self.weekdays and not any(a <= t.weekday() <= b for a, b in self.weekdays):
            return False
        if self.days_of_month:
            last = calendar.monthrange(t.year, t.month)[1]
            if not any(_day(a, last) <= t.day <= _day(b, last) for a, b in self.days_of_month):
                return False
        if self.months and not any(a <= t.month <= b for a, b in self.months):
            return False
        return not (self.years and not any(a <= t.year <= b for a, b in self.years))


def _day(d: int, last: int) -> int:
    return last + d + 1 if d < 0 else d


def _zone(name: str) -> timezone | ZoneInfo:
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        try:
            return ZoneInfo("localtime")
        except (ZoneInfoNotFoundError, ValueError):
            return UTC
    return ZoneInfo(name)


def check_location(name: str) -> str | None:
    """A problem with a `location:` (IANA time zone name, `UTC` or `Local`), or None."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"location: unknown time zone {name!r} (an IANA name such as Europe/Berlin, UTC or Local)"
    return None


def parse_times(start: str, end: str) -> tuple[int, int]:
    a, b = _minute_of_day(start), _minute_of_day(end)
    if a >= b:
        raise ValueError(f"times: start_time {start!r} must be before end_time {end!r}")
    return a, b


def _minute_of_day(text: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if m is None or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and int(m.group(2))):
        raise ValueError(f"times: {text!r} is not a time of day HH:MM (00:00 to 24:00)")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_ranges(items: Iterable[str | int], what: str) -> tuple[tuple[int, int], ...]:
    """`weekdays: ['monday:friday', 'sunday']`, `months: ['january:march', '12']`, `days_of_month: ['1:5',
    '-1']`, `years: ['2026:2027']`: the Alertmanager forms; raises ValueError naming the bad item."""
    out = []
    for item in items:
        m = re.fullmatch(r"\s*(-?\w+)\s*(?::\s*(-?\w+)\s*)?", str(item).lower())
        if m is None:
            raise ValueError(f"{what}: {item!r}: expected a value or a range START:END")
        a = _value(m.group(1), what)
        b = _value(m.group(2), what) if m.group(2) else a
        if what == "days_of_month" and (a < 0) != (b < 0):
            if a < 0:
                raise ValueError(f"days_of_month: {item!r}: a range from a negative to a positive day")
        elif a > b:
            raise ValueError(f"{what}: {item!r}: start after end")
        out.append((a, b))
    return tuple(out)


def _value(text: str, what: str) -> int:
    if what == "weekdays":
        if text not in WEEKDAYS:
            raise ValueError(f"weekdays: {text!r} is not a day name ({', '.join(WEEKDAYS)})")
        return WEEKDAYS.index(text)
    if what == "months" and text in MONTHS:
        return MONTHS.index(text) + 1
    lo, hi = {"months": (1, 12), "days_of_month": (-31, 31), "years": (1, 9999)}[what]
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number" + (" or a month name" if what == "months" else "")) \
            from None
    if not lo <= n <= hi or n == 0:
        raise ValueError(f"{what}: {text!r} is out of range ({lo} to {hi})")
    return n


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    name: str
    matchers: tuple[Matcher, ...] = ()
    start: float | None = None  # one-off window
    end: float | None = None
    intervals: tuple[TimeInterval, ...] = ()  # recurring: any of them
    comment: str = ""

    def active(self, now: float) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= now < self.end
        return any(i.contains(now) for i in self.intervals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)


@dataclass(frozen=True, slots=True)
class Suppression:
    """What holds an alert's ticket operations back: a silence or a maintenance window."""

    kind: str  # "silence" | "maintenance"
    id: str  # the silence id or the window's name
    until: float | None  # the silence's end (None for a recurring window)
    comment: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"


def suppressed_by(labels: Mapping[str, str], silences: Iterable[Silence], windows: Iterable[MaintenanceWindow],
                  now: float) -> Suppression | None:
    for s in silences:
        if s.active(now) and s.matches(labels):
            return Suppression("silence", s.id, s.ends_at, s.comment)
    for w in windows:
        if w.active(now) and w.matches(labels):
            return Suppression("maintenance", w.name, w.end, w.comment)
    return None


def active_seconds(window: MaintenanceWindow, since: float, until: float, *, step: float = 60.0) -> float:
    """Seconds of [since, until) during which `window` is active (recurring ones sampled per minute: their
    boundaries are whole minutes)."""
    if until <= since:
        return 0.0
    if window.start is not None and window.end is not None:
        return max(0.0, min(until, window.end) - max(since, window.start))
    total = 0.0
    t = since - (since % step)
    while t < until:
        nxt = t + step
        if window.active(t):
            total += min(nxt, until) - max(t, since)
        t = nxt
    return total


def union_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """Length of the union of [start, end) spans (overlaps counted once)."""
    total, last = 0.0, float("-inf")
    for a, b in sorted(spans):
        a = max(a, last)
        if b > a:
            total += b - a
            last = b
    return total


def parse_timestamp(text: str) -> float:
    """RFC 3339 / ISO 8601 (`2026-12-05T22:00:00Z`, `2026-12-05 22:00+01:00`); no zone means UTC."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        d = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a timestamp such as 2026-12-05T22:00:00Z") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


__all__ = ["MaintenanceWindow", "Matcher", "Silence", "Suppression", "TimeInterval", "active_seconds",
           "matches_all", "matches_everything", "parse_matcher", "parse_ranges", "parse_times", "parse_timestamp",
           "suppressed_by", "union_seconds"]
