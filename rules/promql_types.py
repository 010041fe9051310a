"""Values and errors of the PromQL engine (re-exported by `rules.promql`).

Inside the engine an instant-vector element is a plain tuple `(name, labels, value)`: `name` is the
metric name or None once dropped, `labels` the sorted label tuple *without* `__name__` (the same
object the store keys the series by, so matching on "all labels but the name" costs nothing).
`Element` — labels including `__name__` — is built only for the final result.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, label_value

NAME_LABEL = "__name__"

# (metric name or None, labels without __name__, value)
Sample = tuple[str | None, Labels, float]


class PromQLError(Exception):
    """A PromQL expression that cannot be loaded (parse error, unsupported feature) or evaluated.

    `position` is the 0-based character offset into the expression when known; `feature` names
    the unsupported construct (e.g. "function 'sort_by_label'", "@ modifier") when that is the cause.
    """

    def __init__(self, message: str, *, position: int | None = None, feature: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.feature = feature

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Selector:
    """A series selector of a compiled expression: what the store must keep, and for how long.

    `name` is None when the selector does not fix one metric name (`{__name__=~"..."}`).
    """

    name: str | None
    max_lookback_seconds: float  # range + offset + lookback (+ enclosing subquery ranges)


@dataclass(frozen=True, slots=True)
class Element:
    """One element of an instant-vector result. `labels` include ('__name__', x) when the name is kept."""

    labels: Labels
    value: float

    @property
    def metric_name(self) -> str | None:
        return label_value(self.labels, NAME_LABEL) or None

    def label(self, key: str, default: str = "") -> str:
        return label_value(self.labels, key, default)


@dataclass(frozen=True, slots=True)
class SeriesRange:
    """One series of a range-vector result (only when the whole expression is a range vector)."""

    labels: Labels
    points: tuple[tuple[float, float], ...]


Vector = list[Element]
Matrix = list[SeriesRange]


def with_name(name: str | None, labels: Labels) -> Labels:
    """`labels` with ('__name__', name) inserted in sorted position (unchanged when name is None)."""
    if name is None:
        return labels
    item = (NAME_LABEL, name)
    i = bisect_left(labels, item)
    return (*labels[:i], item, *labels[i:])


def format_labels(name: str | None, labels: Labels) -> str:
    """Prometheus' `labels.String()` form: {__name__="x", a="b"}."""
    parts = [f"{k}={_quote(v)}" for k, v in with_name(name, labels)]
    return "{" + ", ".join(parts) + "}"


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def line_column(text: str, position: int) -> tuple[int, int]:
    """1-based (line, column) of a 0-based offset in a possibly multi-line expression."""
    before = text[:position]
    line = before.count("\n") + 1
    col = position - (before.rfind("\n") + 1) + 1
    return line, col
