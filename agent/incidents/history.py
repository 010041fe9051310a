"""The check history: each check's up/down transitions with their timestamps (the report's availability).

`hostwarden_check_up{check=…}` from every published check snapshot is compared with the last state
recorded for that check; only changes are written (one row per transition, `check_history`), so a
check that never changes costs nothing after its first row. A failed write (disk full) is retried with
the next snapshot.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Sample, label_value
from hostwarden.agent.incidents.state import StateDB

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transition:
    check: str
    at: float
    up: bool


class CheckHistory:
    def __init__(self, state: StateDB) -> None:
        self.state = state
        self._last: dict[str, bool] | None = None

    def _known(self) -> dict[str, bool]:
        if self._last is None:
            rows = self.state.query("SELECT h.check_name, h.up FROM check_history h WHERE h.id = "
                                    "(SELECT MAX(id) FROM check_history WHERE check_name = h.check_name)")
            self._last = {r["check_name"]: bool(r["up"]) for r in rows}
        return self._last

    def record(self, samples: Iterable[Sample], now: float) -> int:
        """Write the transitions in `samples` (a check snapshot) at `now`; returns how many were written."""
        try:
            known = self._known()
        except sqlite3.Error as e:
            log.debug("check history not readable (retried with the next snapshot): %s", e)
            return 0
        changes = []
        for s in samples:
            if s.name != "hostwarden_check_up":
                continue
            name = label_value(s.labels, "check")
            up = s.value >= 1.0
            if name and known.get(name) is not up:
                changes.append((name, now, int(up)))
        if not changes:
            return 0
        try:
            with self.state.tx() as c:
                c.executemany("INSERT INTO check_history (check_name, at, up) VALUES (?, ?, ?)", changes)
        except sqlite3.Error as e:
            log.debug("check history not written (retried with the next snapshot): %s", e)
            return 0
        for name, _at, up in changes:
            known[name] = bool(up)
        return len(changes)


def transitions(state: StateDB, until: float) -> dict[str, list[Transition]]:
    """Every check's transitions up to `until`, oldest first."""
    out: dict[str, list[Transition]] = {}
    for r in state.query("SELECT check_name, at, up FROM check_history WHERE at <= ? ORDER BY check_name, at, id",
                         (until,)):
        out.setdefault(r["check_name"], []).append(Transition(r["check_name"], float(r["at"]), bool(r["up"])))
    return out


def availability(history: list[Transition], *, since: float, until: float) -> dict[str, float | int]:
    """Up and down seconds of one check over [since, until): the state before `since` carries in; time before
    the first known state is not counted (unknown). Ratio = up / (up + down)."""
    up = down = 0.0
    downs = 0
    state: bool | None = None
    at = since
    for t in history:
        if t.at <= since:
            state = t.up
            continue
        if state is not None:
            if state:
                up += t.at - at
            else:
                down += t.at - at
        if not t.up and state is not False:
            downs += 1
        state, at = t.up, t.at
    if state is not None and until > at:
        if state:
            up += until - at
        else:
            down += until - at
    known = up + down
    return {"availability_ratio": up / known if known > 0 else 1.0, "up_seconds": up, "down_seconds": down,
            "known_seconds": known, "outages": downs}
