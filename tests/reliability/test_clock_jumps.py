"""Wall clock jumps of hours during `for` and `keep_firing_for`.

The system clock cannot be stepped safely here, so AgentClock runs on injected time functions (the
`time` module it reads is replaced by a fake whose wall and monotonic clocks the test moves), and the
real RuleManager evaluates a real rule file at the timestamps that clock produces, exactly as the
daemon's jobs do (`now = agent.clock.now()`). Each scenario also runs once on the raw wall clock to
show the jump would have mattered (the counterfactual), so the assertions are not vacuous.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import hostwarden.agent.core.clock
import pytest
from hostwarden.agent.core.clock import AgentClock
from hostwarden.agent.core.samples import Sample
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.alerts import AlertTransition, TransitionKind
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import RuleManager

from tests.reliability.agentprobe import record

HOURS = 3600.0
STEP = 10.0  # seconds between evaluations (the rule group's interval)
FOR = 300.0
KEEP = 600.0
T0_WALL = 1_700_000_000.0
T0_MONO = 5_000.0

RULES = f"""groups:
  - name: clock
    interval: {STEP:g}s
    rules:
      - alert: Hot
        expr: temperature_celsius > 50
        for: {FOR:g}s
      - alert: Sticky
        expr: sticky_value > 0
        keep_firing_for: {KEEP:g}s
"""


class FakeTime:
    """Stands in for the `time` module inside agent.clock: a wall clock that can jump, a monotonic one that can't."""

    def __init__(self, wall: float = T0_WALL, mono: float = T0_MONO) -> None:
        self.wall = wall
        self.mono = mono

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def elapse(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def jump_wall(self, seconds: float) -> None:
        self.wall += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(hostwarden.agent.core.clock, "time", fake)
    return fake


class Harness:
    """Store + RuleManager over the rule file, sampling and evaluating at `now_fn()` like the daemon."""

    def __init__(self, rules_path: Path, now_fn: Callable[[], float]) -> None:
        errors = Errors()
        self.groups = load_rule_files([str(rules_path)], errors, default_interval=STEP)
        errors.raise_if_any()
        self.manager = RuleManager(self.groups, external_labels={"host": "clockhost"})
        self.store = SeriesStore()
        by_name, all_names = self.manager.retention()
        self.store.set_retention(by_name, all_names=all_names)
        self.now_fn = now_fn
        self.log: list[AlertTransition] = []

    def cycle(self, *, temperature: float, sticky: float | None) -> list[AlertTransition]:
        now = self.now_fn()
        samples = [Sample("temperature_celsius", (), temperature, now)]
        if sticky is not None:
            samples.append(Sample("sticky_value", (), sticky, now))
        self.store.append("collector", samples, now)
        out = self.manager.evaluate(self.groups[0], self.store, now)
        self.log.extend(out)
        return out

    def kinds(self, rule: str) -> list[TransitionKind]:
        return [t.kind for t in self.log if t.alert.rule == rule]


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    p = tmp_path / "clock.rules.yaml"
    p.write_text(RULES)
    return p


def _run_for_scenario(fake: FakeTime, harness: Harness, jump: float) -> tuple[float | None, float]:
    """Condition true from the first cycle on; the wall clock jumps by `jump` 60 s into the `for` window.
    Returns (monotonic seconds from the first true evaluation to FIRING or None, monotonic seconds run)."""
    start_mono = fake.mono
    fired_after = None
    for i in range(int(2 * FOR / STEP)):  # bounded: twice the `for` window
        if i == int(60 / STEP):
            fake.jump_wall(jump)
        out = harness.cycle(temperature=80.0, sticky=None)
        if any(t.kind is TransitionKind.FIRING and t.alert.rule == "Hot" for t in out):
            fired_after = fake.mono - start_mono
            break
        fake.elapse(STEP)
    return fired_after, fake.mono - start_mono


@pytest.mark.parametrize("jump", [3 * HOURS, -3 * HOURS], ids=["forward-3h", "back-3h"])
def test_rules_for_window_wall_jump_fires_after_exactly_for_monotonic(fake_time: FakeTime, rules_path: Path,
                                                                       jump: float) -> None:
    clock = AgentClock()
    harness = Harness(rules_path, clock.now)
    fired_after, _ = _run_for_scenario(fake_time, harness, jump)
    assert fired_after == FOR  # neither early (forward jump) nor hours late (backward jump)
    assert harness.kinds("Hot") == [TransitionKind.PENDING, TransitionKind.FIRING]
    firing = harness.log[-1].alert
    # timestamps people see: start-up wall time plus elapsed time, in step with the evaluations
    assert firing.fired_at is not None and firing.fired_at - firing.active_since == FOR
    assert clock.wall_offset() == pytest.approx(jump)


@pytest.mark.parametrize("jump", [3 * HOURS, -3 * HOURS], ids=["forward-3h", "back-3h"])
def test_rules_for_window_raw_wall_clock_counterfactual(fake_time: FakeTime, rules_path: Path,
                                                                 jump: float) -> None:
    """Without AgentClock a backward jump stalls `for` past the run. A forward jump looks to the rule manager
    like evaluations missed during a pause, which it does not count toward `for` (F13): it fires on time
    even on the raw wall clock (the jump counts as one evaluation interval)."""
    harness = Harness(rules_path, fake_time.time)
    fired_after, ran = _run_for_scenario(fake_time, harness, jump)
    if jump > 0:
        assert fired_after is not None and FOR - 2 * STEP <= fired_after <= FOR + 2 * STEP
    else:
        assert fired_after is None and ran >= 2 * FOR - STEP


def _run_keep_scenario(fake: FakeTime, harness: Harness, jump: float) -> float | None:
    """Sticky fires, then its condition stops; the wall clock jumps 60 s into keep_firing_for.
    Returns monotonic seconds from the first false evaluation to RESOLVED, or None."""
    harness.cycle(temperature=0.0, sticky=1.0)
    assert harness.kinds("Sticky") == [TransitionKind.FIRING]
    fake.elapse(STEP)
    stop_mono = fake.mono
    for i in range(int(2 * KEEP / STEP)):
        if i == int(60 / STEP):
            fake.jump_wall(jump)
        out = harness.cycle(temperature=0.0, sticky=0.0)
        if any(t.kind is TransitionKind.RESOLVED and t.alert.rule == "Sticky" for t in out):
            return fake.mono - stop_mono
        fake.elapse(STEP)
    return None


@pytest.mark.parametrize("jump", [2 * HOURS, -2 * HOURS], ids=["forward-2h", "back-2h"])
def test_rules_keep_firing_for_wall_jump_resolves_after_exactly_keep_monotonic(fake_time: FakeTime,
                                                                               rules_path: Path,
                                                                               jump: float) -> None:
    clock = AgentClock()
    harness = Harness(rules_path, clock.now)
    resolved_after = _run_keep_scenario(fake_time, harness, jump)
    assert resolved_after == KEEP
    assert harness.kinds("Sticky") == [TransitionKind.FIRING, TransitionKind.RESOLVED]


@pytest.mark.parametrize("jump", [2 * HOURS, -2 * HOURS], ids=["forward-2h", "back-2h"])
def test_rules_keep_firing_for_raw_wall_clock_counterfactual_misresolves(fake_time: FakeTime, rules_path: Path,
                                                                        jump: float) -> None:
    harness = Harness(rules_path, fake_time.time)
    resolved_after = _run_keep_scenario(fake_time, harness, jump)
    if jump > 0:
        assert resolved_after is not None and resolved_after < KEEP
    else:
        assert resolved_after is None


def test_clock_jumps_back_and_forth_never_goes_backwards_and_follows_wall_once_agreeing(
        fake_time: FakeTime) -> None:
    clock = AgentClock()
    seen = [clock.now()]
    for jump in (3 * HOURS, -3 * HOURS - 0.5, 0.2, -2 * HOURS, 2 * HOURS):
        for _ in range(5):
            fake_time.elapse(1.0)
            seen.append(clock.now())
        fake_time.jump_wall(jump)
        seen.append(clock.now())
    assert all(b >= a for a, b in itertools.pairwise(seen))
    # every value advanced with the monotonic clock: 25 s of elapsed time in total, jumps excluded
    assert seen[-1] - seen[0] == pytest.approx(25.0, abs=1.0)
    # the wall clock is back within a second of the agent's clock: it is followed exactly again
    fake_time.elapse(1.0)
    assert clock.now() == fake_time.wall
    assert abs(clock.wall_offset()) < 1.0


def test_clock_wall_offset_reports_forward_jump_for_self_metric(fake_time: FakeTime) -> None:
    clock = AgentClock()
    before = clock.now()
    fake_time.jump_wall(5 * HOURS)
    fake_time.elapse(2.0)
    assert clock.now() == pytest.approx(before + 2.0)
    assert clock.wall_offset() == pytest.approx(5 * HOURS)


def test_clock_concurrent_callers_each_see_non_decreasing_values(fake_time: FakeTime) -> None:
    """The daemon's jobs call now() from several threads while the wall clock steps back and forth."""
    clock = AgentClock()
    stop = threading.Event()
    per_thread: list[list[float]] = [[] for _ in range(4)]

    def caller(out: list[float]) -> None:
        for _ in range(20_000):  # bounded
            if stop.is_set():
                break
            out.append(clock.now())

    threads = [threading.Thread(target=caller, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for i in range(2_000):
        fake_time.elapse(0.01)
        fake_time.jump_wall(0.4 if i % 2 == 0 else -0.4)
    stop.set()
    for t in threads:
        t.join(30)
    assert all(len(v) > 0 for v in per_thread)
    record("clock-threads", threads=len(per_thread), calls=sum(map(len, per_thread)), wall_steps=2_000)
    for values in per_thread:
        assert all(b >= a for a, b in itertools.pairwise(values))
