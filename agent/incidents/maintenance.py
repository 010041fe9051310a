"""The `maintenance:` config section: scheduled windows in which alerts open no tickets.

```yaml
maintenance:
  - name: db-migration                 # one-off
    start: "2026-12-05T22:00:00Z"
    end: "2026-12-06T02:00:00Z"
    matchers: ['alertname=~"Host.*"', 'mountpoint="/data"']   # optional; none: every alert
    comment: "CHG-1234"
  - name: nightly-backup               # recurring, as Alertmanager's time_intervals
    time_intervals:
      - weekdays: ["monday:friday"]
        times: [{start_time: "01:00", end_time: "03:00"}]
        location: Europe/Berlin
    matchers: ['alertname="HostDiskIoSaturated"']
```
Every problem is reported with its `file:line:col`, like the rest of the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hostwarden.agent.core.schema import MISSING, Errors, build
from hostwarden.agent.core.yamlsrc import Loc, LocList
from hostwarden.agent.incidents.silence import (
    MaintenanceWindow,
    TimeInterval,
    check_location,
    parse_matcher,
    parse_ranges,
    parse_times,
    parse_timestamp,
)


@dataclass(frozen=True)
class TimeRangeConfig:
    start_time: str
    end_time: str


@dataclass(frozen=True)
class TimeIntervalConfig:
    times: list[TimeRangeConfig] = field(default_factory=list)
    weekdays: list[str] = field(default_factory=list)
    days_of_month: list[str] = field(default_factory=list)
    months: list[str] = field(default_factory=list)
    years: list[str] = field(default_factory=list)
    location: str = "UTC"

    def to_interval(self) -> TimeInterval:
        """Raises ValueError with the first problem."""
        problem = check_location(self.location)
        if problem:
            raise ValueError(problem)
        return TimeInterval(times=tuple(parse_times(t.start_time, t.end_time) for t in self.times),
                            weekdays=parse_ranges(self.weekdays, "weekdays"),
                            days_of_month=parse_ranges(self.days_of_month, "days_of_month"),
                            months=parse_ranges(self.months, "months"), years=parse_ranges(self.years, "years"),
                            location=self.location)

    def validate(self) -> list[str]:
        try:
            self.to_interval()
        except ValueError as e:
            return [str(e)]
        return []


@dataclass(frozen=True)
class MaintenanceConfig:
    name: str
    start: str | None = None
    end: str | None = None
    time_intervals: list[TimeIntervalConfig] = field(default_factory=list)
    matchers: list[str] = field(default_factory=list)
    comment: str = ""

    def validate(self) -> list[str]:
        problems = []
        if not self.name.strip():
            problems.append("name must not be empty")
        one_off = self.start is not None or self.end is not None
        if one_off and self.time_intervals:
            problems.append("either start/end (a one-off window) or time_intervals (a recurring one), not both")
        elif not one_off and not self.time_intervals:
            problems.append("needs start and end (a one-off window) or time_intervals (a recurring one)")
        if one_off:
            if self.start is None or self.end is None:
                problems.append("a one-off window needs both start and end")
            else:
                try:
                    if parse_timestamp(self.start) >= parse_timestamp(self.end):
                        problems.append(f"start {self.start!r} must be before end {self.end!r}")
                except ValueError as e:
                    problems.append(f"start/end: {e}")
        for m in self.matchers:
            try:
                parse_matcher(m)
            except ValueError as e:
                problems.append(str(e))
        return problems

    def to_window(self) -> MaintenanceWindow:
        return MaintenanceWindow(
            name=self.name, matchers=tuple(parse_matcher(m) for m in self.matchers),
            start=parse_timestamp(self.start) if self.start is not None else None,
            end=parse_timestamp(self.end) if self.end is not None else None,
            intervals=tuple(t.to_interval() for t in self.time_intervals), comment=self.comment)


def parse_maintenance(node: Any, errors: Errors, loc: Loc, base_dir: str) -> tuple[MaintenanceWindow, ...] | Any:
    """Parse `maintenance:` (a list of windows); None gives no windows."""
    del base_dir
    if node is None:
        return ()
    if not isinstance(node, list):
        errors.add(loc, f"maintenance: expected a list of windows, got {node!r}"[:200])
        return MISSING
    out: list[MaintenanceWindow] = []
    seen: dict[str, Loc] = {}
    ok = True
    for i, item in enumerate(node):
        iloc = node.item_loc(i) if isinstance(node, LocList) else loc
        cfg = build(MaintenanceConfig, item, errors, loc=iloc, path=f"maintenance[{i}]")
        if cfg is MISSING:
            ok = False
            continue
        if cfg.name in seen:
            errors.add(iloc, f"maintenance[{i}]: window name {cfg.name!r} is already used at {seen[cfg.name]}")
            ok = False
            continue
        seen[cfg.name] = iloc
        out.append(cfg.to_window())
    return tuple(out) if ok else MISSING


def windows_of(config: Any) -> tuple[MaintenanceWindow, ...]:
    """The parsed `maintenance:` windows of an AgentConfig (none when the section is absent)."""
    sections = getattr(config, "sections", None) or {}
    return tuple(sections.get("maintenance") or ())
