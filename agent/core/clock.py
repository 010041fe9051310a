"""The agent's clock: wall-clock timestamps that advance with the monotonic clock.

Rules and incidents measure durations (`for`, `keep_firing_for`, backoff) between timestamps from
this clock, so a wall clock stepped by hours (NTP, a VM resumed) does not complete a `for` early
or resolve an alert late. Timestamps people see are wall time as of start-up plus elapsed time;
the anchor moves back to the real wall clock only when the two agree again within a second
(a slew, not a jump), so every value this clock returns is monotonic.
"""

from __future__ import annotations

import threading
import time


class AgentClock:
    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._last = self._wall0
        # scheduler jobs call now() from several threads: reading and advancing `_last` is one step,
        # else a thread could store an older value over a newer one and a later call go backwards
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            t = self._wall0 + (time.monotonic() - self._mono0)
            wall = time.time()
            if abs(wall - t) < 1.0 and wall > self._last:
                t = wall  # the wall clock agrees (slewed): follow it exactly
            t = max(t, self._last)
            self._last = t
            return t

    def wall_offset(self) -> float:
        """Wall clock minus this clock: non-zero after a wall clock jump (exported as a self-metric)."""
        return time.time() - (self._wall0 + (time.monotonic() - self._mono0))
