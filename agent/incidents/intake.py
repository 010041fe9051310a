"""The incident intake: alert transitions leave the rule evaluation here, and reach the incident manager on
their own thread, so evaluation never waits for diagnosis (process sampling, directory scans, journal
reads) or for the state database.

Order and crash safety are those of a synchronous call: batches are handled in the order they were
evaluated, and the rule manager's state rows submitted with a batch are saved only after that batch's
decisions are committed (a crash in between replays the transitions, which the manager recognises).
Diagnosis runs before the incident lock is taken, bounded by the diagnoser's own time budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    transitions: list[Any]  # AlertTransition
    state_rows: list[dict] | None  # the rule manager's export_state() right after the evaluation
    now: float


class Intake:
    """`manager()`: the current incident manager (a reload replaces it); `lock`: serialises its use with
    the other users (incident tick, receiver); `save_state(rows)`: persist alert states; `wake()`: the
    outbox has work."""

    def __init__(self, *, manager: Callable[[], Any], lock: Any, save_state: Callable[[list[dict]], None],
                 wake: Callable[[], None]) -> None:
        self._manager = manager
        self._lock = lock
        self._save_state = save_state
        self._wake = wake
        self._queue: deque[Batch] = deque()
        self._cv = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.handled = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="incident-intake", daemon=True)
            self._thread.start()

    def submit(self, transitions: list[Any], state_rows: list[dict] | None, now: float) -> None:
        """Never blocks on diagnosis or the database. Without a running thread (tests, start-up) the batch
        is processed on the caller's thread."""
        batch = Batch(list(transitions), state_rows, now)
        if self._thread is None:
            self._process([batch])
            return
        with self._cv:
            self._queue.append(batch)
            self._cv.notify_all()

    def pending(self) -> int:
        with self._cv:
            return len(self._queue) + int(self._busy)

    def drain(self, timeout: float) -> bool:
        """Wait until everything submitted so far is handled (True) or `timeout` passed (False)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def stop(self, timeout: float) -> bool:
        """Handle what was submitted (up to `timeout`, then what is left without diagnosis). False when the
        thread is still inside a batch after that (a stuck diagnosis): nothing more is recorded here, and
        the caller must not save newer alert states than those saved with the last handled batch (the
        transitions not yet recorded are then replayed after the restart)."""
        self.drain(timeout)
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30.0)  # a batch in progress: its diagnosis is time-bounded
            if self._thread.is_alive():
                log.warning("incident intake still busy; %d batch(es) left for the next start", len(self._queue))
                return False
            self._thread = None
        with self._cv:
            left = list(self._queue)
            self._queue.clear()
        if left:  # the thread did not get to them: record them here (without diagnosis) rather than drop them
            self._process(left, diagnose=False)
        return True

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait(60.0)  # submit() and stop() notify
                if self._stopping:
                    return
                batches = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                self._process(batches)
            except Exception:
                log.exception("incident intake: handling %d batch(es) failed", len(batches))
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _process(self, batches: list[Batch], *, diagnose: bool = True) -> None:
        manager = self._manager()
        transitions = [t for b in batches for t in b.transitions]
        diagnoses: dict[str, str] = {}
        if transitions and diagnose:  # outside the lock: the receiver and the incident tick are not held up by it
            diagnoses = manager.diagnose_batch(transitions, batches[-1].now)
        elif transitions:
            diagnoses = {t.alert.fingerprint: "(no diagnosis: the agent was stopping)" for t in transitions
                         if t.kind.value == "firing"}
        rows = None
        with self._lock:
            manager = self._manager()  # a reload may have swapped it meanwhile (it carried the backlog over)
            for b in batches:
                if b.transitions:
                    manager.handle(b.transitions, b.now, diagnoses=diagnoses)
                    self.handled += len(b.transitions)
                if b.state_rows is not None:
                    rows = b.state_rows
            if rows is not None:
                self._save_state(rows)  # after the decisions it reflects are committed
        if transitions:
            self._wake()
