"""Loaded rules: what `rules.loader` builds from YAML and everything downstream reads.

A `Rule` is either a Prometheus alerting/recording rule as written, or an alerting rule with
hostwarden's threshold extensions (`warning`, `critical`, `clear`, `flap`, `group_by`, `category`,
`remediate`).
Every rule knows the file and line it came from (`source`), for check-config, tickets and logs.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from hostwarden.agent.core.remedy import Plan
from hostwarden.rules.promql import Compiled
from hostwarden.rules.templates import Template

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
NEGATED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
SEVERITIES = ("warning", "critical")


@dataclass(frozen=True, slots=True)
class Threshold:
    """`> 0.95`: a comparison of the expression's value against a constant."""

    op: str
    value: float

    def holds(self, v: float) -> bool:
        if v != v:  # NaN compares false everywhere, as in PromQL
            return False
        return _OPS[self.op](v, self.value)

    @property
    def text(self) -> str:
        return f"{self.op} {self.value:g}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Flap:
    """Nagios-style flap detection over the last `window` evaluations (ratios, not percents)."""

    window: int = 21
    high: float = 0.5
    low: float = 0.25


@dataclass(frozen=True, eq=False)
class Rule:
    kind: Literal["alert", "record"]
    name: str
    expr: str
    compiled: Compiled
    file: str
    line: int
    for_: float = 0.0
    keep_firing_for: float = 0.0
    labels: tuple[tuple[str, Template], ...] = ()
    annotations: tuple[tuple[str, Template], ...] = ()
    warning: Threshold | None = None
    critical: Threshold | None = None
    clear: Threshold | None = None
    flap: Flap | None = None
    group_by: tuple[str, ...] | None = None
    category: str = ""
    remediate: Plan | None = None  # extension: declared remediation (agent.core.remedy)
    raw: dict[str, object] = field(default_factory=dict, repr=False)  # the rule as written (for export)

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def extended(self) -> bool:
        """True when thresholds (not the expression's filtering) decide whether the alert is active."""
        return self.warning is not None or self.critical is not None

    def threshold(self, severity: str) -> Threshold | None:
        return self.critical if severity == "critical" else self.warning

    @property
    def signature(self) -> str:
        """What must stay the same on reload for the rule's alert states to survive."""
        parts = (self.kind, self.name, " ".join(self.expr.split()), str(self.warning), str(self.critical),
                 str(self.clear))
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, order=True)
class GroupKey:
    """What identifies a rule group: its file and its name (Prometheus' `file;name`).

    Prometheus requires group names to be unique only within a file, so the same name in two files
    is two groups. Scheduling, statistics, `ALERTS` bookkeeping, saved alert states and the API key
    groups by this. `str(key)` is Prometheus' form, `file;name` (its `rule_group` label and the
    `groupKey` it uses internally).
    """

    file: str
    name: str

    def __str__(self) -> str:
        return f"{self.file};{self.name}"

    @classmethod
    def parse(cls, text: str) -> GroupKey:
        """The inverse of `str()`: the file is everything before the first `;` (a group name may contain
        `;`, a rule file path containing one cannot be told apart)."""
        file, sep, name = text.partition(";")
        if not sep:
            raise ValueError(f"not a group key (file;name): {text!r}")
        return cls(file, name)


@dataclass(frozen=True, eq=False)
class RuleGroup:
    name: str
    interval: float
    rules: tuple[Rule, ...]
    file: str
    line: int
    limit: int = 0

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def key(self) -> GroupKey:
        return GroupKey(self.file, self.name)
