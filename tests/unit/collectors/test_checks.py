"""The check framework: `checks:` parsing, and CheckRunner scheduling, timeouts and isolation.

The runner tests use a real check class (`GateCheck`) whose runs block on a threading.Event the test
controls, so "hung", "slow" and "finished" are states the test sets, not sleeps it hopes for.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import pytest
from hostwarden.agent.core.samples import MetricDef, metric_defs
from hostwarden.agent.core.schema import Duration, Errors
from hostwarden.agent.core.yamlsrc import Loc, load_yaml
from hostwarden.collectors.check_file import FileConfig
from hostwarden.collectors.check_tcp import TcpConfig
from hostwarden.collectors.checks import CheckConfig, CheckResult, CheckRunner, Status, parse_checks, sample


def parse(text: str, base_dir: str = "/etc/hostwarden") -> tuple[list, Errors]:
    doc = load_yaml(text, "agent.yaml")
    errors = Errors()
    return parse_checks(doc["checks"], errors, Loc("agent.yaml", 1, 1), base_dir), errors


# -- parse_checks ---------------------------------------------------------------------------------

def test_parse_checks_issue_example_builds_typed_configs() -> None:
    got, errors = parse("""
checks:
  - {name: web, type: http, url: "https://127.0.0.1:8443/health", interval: 10s, timeout: 5s}
  - {name: root-disk, type: nagios, command: [/usr/lib/nagios/plugins/check_disk, -w, "10%", -c, "5%", -p, /]}
  - {name: sshd, type: systemd, unit: ssh.service}
  - {name: db-port, type: tcp, address: "127.0.0.1:5432", timeout: 2s}
  - {name: backup, type: file, path: /var/backups/db.dump}
""")
    assert not errors, errors.issues
    assert [(c.name, c.type) for c in got] == [("web", "http"), ("root-disk", "nagios"), ("sshd", "systemd"),
                                               ("db-port", "tcp"), ("backup", "file")]
    assert got[0].interval == 10 and got[0].timeout == 5
    assert got[3].timeout == 2 and got[3].interval is None
    assert isinstance(got[4], FileConfig) and got[4].path == "/var/backups/db.dump"


def test_parse_checks_duplicate_name_reports_the_duplicates_line() -> None:
    got, errors = parse("""
checks:
  - {name: db, type: tcp, address: "127.0.0.1:5432"}
  - name: other
    type: tcp
    address: "127.0.0.1:5433"
  - name: db
    type: tcp
    address: "127.0.0.1:5434"
""")
    assert got is not None and not isinstance(got, list)  # MISSING
    (issue,) = errors.issues
    assert issue.loc.line == 7
    assert "duplicate check name 'db'" in issue.message and "line 3" in issue.message


def test_parse_checks_unknown_type_and_key_all_reported_with_locations() -> None:
    _, errors = parse("""
checks:
  - {name: a, type: htpp, url: "http://x/"}
  - {name: b, type: tcp, adress: "127.0.0.1:1"}
  - {name: c, type: tcp, address: "nohost"}
""")
    messages = [(i.loc.line, i.message) for i in errors.issues]
    assert any(line == 3 and "unknown type 'htpp'" in m and "did you mean 'http'" in m for line, m in messages)
    assert any(line == 4 and "unknown key 'checks[1].adress'" in m for line, m in messages)
    assert any(line == 5 and "expected HOST:PORT" in m for line, m in messages)


def test_parse_checks_bad_labels_and_timeout_over_interval_are_errors() -> None:
    _, errors = parse("""
checks:
  - {name: a, type: tcp, address: "127.0.0.1:1", labels: {"bad-name": x, check: y}}
  - {name: b, type: tcp, address: "127.0.0.1:1", interval: 5s, timeout: 10s}
""")
    text = "\n".join(i.message for i in errors.issues)
    assert "'bad-name' is not a valid label name" in text
    assert "'check' is set by the check itself" in text
    assert "timeout (10s) must not exceed interval (5s)" in text


def test_parse_checks_relative_paths_resolve_against_config_dir() -> None:
    got, errors = parse("""
checks:
  - {name: f, type: file, path: data/backup.dump}
  - {name: n, type: nagios, command: [plugins/check_x, -v]}
  - {name: m, type: nagios, command: [check_dummy, "0"]}
""", base_dir="/srv/cfg")
    assert not errors
    assert got[0].path == "/srv/cfg/data/backup.dump"
    assert got[1].command == ["/srv/cfg/plugins/check_x", "-v"]
    assert got[2].command == ["check_dummy", "0"]  # bare names are looked up in the plugin PATH


def test_parse_checks_not_a_list_is_an_error() -> None:
    _, errors = parse("checks: {name: a}\n")
    assert "expected a list of checks" in errors.issues[0].message


# -- the runner -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GateConfig(CheckConfig):
    ok: bool = True


class GateCheck:
    """Each run blocks until the test opens its gate (or the gate is open already)."""

    Config = GateConfig
    metrics = metric_defs(MetricDef("test_gate_runs_total", "counter", "Runs.", ("check",)))
    gates: dict[str, threading.Event] = {}
    deadlines: dict[str, list[float]] = {}
    live = 0
    peak = 0
    lock = threading.Lock()

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.runs = 0

    def run(self, deadline: float) -> CheckResult:
        cls = GateCheck
        with cls.lock:
            cls.live += 1
            cls.peak = max(cls.peak, cls.live)
        try:
            self.runs += 1
            cls.deadlines.setdefault(self.config.name, []).append(deadline)
            gate = cls.gates.setdefault(self.config.name, threading.Event())
            gate.wait(30)  # bounded: a test that forgets to open a gate still ends
            if self.config.name.startswith("raise"):
                raise RuntimeError("boom")
            return CheckResult(ok=self.config.ok, status=Status.OK if self.config.ok else Status.CRITICAL,
                               message=f"run {self.runs}", samples=[sample("test_gate_runs_total", self.runs)])
        finally:
            with cls.lock:
                cls.live -= 1


class BrokenCheck:
    Config = GateConfig
    metrics: dict = {}

    def __init__(self, config: GateConfig) -> None:
        raise ValueError("cannot open thing")

    def run(self, deadline: float) -> CheckResult:
        raise AssertionError("never called")


TYPES = {"gate": GateCheck, "broken": BrokenCheck}


@pytest.fixture(autouse=True)
def _reset_gates() -> None:
    GateCheck.gates.clear()
    GateCheck.deadlines.clear()
    GateCheck.live = GateCheck.peak = 0
    yield
    for gate in GateCheck.gates.values():
        gate.set()  # release every thread a test left blocked
    deadline = time.monotonic() + 5
    while GateCheck.live and time.monotonic() < deadline:  # and let them leave run() before the next test
        time.sleep(0.005)


def gate(name: str, *, open_: bool = True) -> threading.Event:
    ev = GateCheck.gates.setdefault(name, threading.Event())
    if open_:
        ev.set()
    return ev


def cfg(name: str, **kw: object) -> GateConfig:
    kw.setdefault("timeout", Duration(5))
    return GateConfig(name=name, type="gate", **kw)


def values(samples: list, metric: str) -> dict[str, float]:
    return {s.label("check"): s.value for s in samples if s.name == metric}


def test_runner_collect_reports_common_and_check_samples_with_labels() -> None:
    gate("a")
    gate("b")
    runner = CheckRunner([cfg("a", labels={"team": "db"}), cfg("b", ok=False)], types=TYPES)
    out = runner.collect(1000.0)
    assert values(out, "hostwarden_check_up") == {"a": 1.0, "b": 0.0}
    assert values(out, "hostwarden_check_status") == {"a": 0.0, "b": 2.0}
    assert values(out, "hostwarden_check_last_run_timestamp_seconds") == {"a": 1000.0, "b": 1000.0}
    up_a = next(s for s in out if s.name == "hostwarden_check_up" and s.label("check") == "a")
    assert dict(up_a.labels) == {"check": "a", "type": "gate", "team": "db"}
    runs_a = next(s for s in out if s.name == "test_gate_runs_total" and s.label("check") == "a")
    assert dict(runs_a.labels) == {"check": "a", "team": "db"} and runs_a.timestamp == 1000.0
    assert set(runner.metrics) >= {"hostwarden_check_up", "hostwarden_check_duration_seconds", "test_gate_runs_total"}
    assert runner.last_results()["b"].message == "run 1"


def test_runner_each_check_runs_on_its_own_interval() -> None:
    gate("fast")
    gate("slow")
    runner = CheckRunner([cfg("fast", interval=Duration(10)), cfg("slow")], default_interval=30.0, types=TYPES)
    runs = []
    for now in (0.0, 5.0, 10.0, 20.0, 29.0, 30.0):
        out = runner.collect(now)
        runs.append((now, values(out, "test_gate_runs_total")))
    assert runs == [(0.0, {"fast": 1, "slow": 1}), (5.0, {"fast": 1, "slow": 1}), (10.0, {"fast": 2, "slow": 1}),
                    (20.0, {"fast": 3, "slow": 1}), (29.0, {"fast": 3, "slow": 1}), (30.0, {"fast": 4, "slow": 2})]


def test_runner_hung_check_times_out_without_delaying_others(caplog: pytest.LogCaptureFixture) -> None:
    hung = gate("hung", open_=False)
    gate("quick")
    runner = CheckRunner([cfg("hung", timeout=Duration(0.3)), cfg("quick")], grace=0.05, types=TYPES)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="hostwarden.collectors.checks"):
        out = runner.collect(0.0)
    waited = time.monotonic() - t0
    assert waited < 5.0  # bounded by the hung check's 0.3 s deadline, not by the hung run
    assert values(out, "hostwarden_check_up") == {"hung": 0.0, "quick": 1.0}
    assert runner.last_results()["hung"].message == "timeout after 0.3s"
    assert values(out, "hostwarden_check_timeouts_total")["hung"] == 1.0
    assert "check hung: UNKNOWN: timeout after 0.3s" in caplog.text
    # still stuck at the next due time: not started a second time, still reported as timed out
    out = runner.collect(20.0)
    assert GateCheck.gates["hung"] is hung and not hung.is_set()
    assert values(out, "hostwarden_check_up")["hung"] == 0.0
    assert values(out, "test_gate_runs_total")["quick"] == 2
    assert "test_gate_runs_total" not in {s.name for s in out if s.label("check") == "hung"}
    assert values(out, "hostwarden_check_overruns_total") == {"hung": 1.0, "quick": 0.0}
    assert values(out, "hostwarden_check_stuck_threads") == {"": 1.0}
    # the stuck thread returns: its late result is discarded, the next due run starts again
    hung.set()
    deadline = time.monotonic() + 5
    while GateCheck.live and time.monotonic() < deadline:
        time.sleep(0.01)
    out = runner.collect(21.0)  # harvests the abandoned run and starts the overdue one
    assert values(out, "hostwarden_check_up")["hung"] == 1.0
    assert values(out, "test_gate_runs_total")["hung"] == 2


def test_runner_slow_check_keeps_previous_result_when_collect_stops_waiting() -> None:
    gate("slow")
    gate("other")
    runner = CheckRunner([cfg("slow", timeout=Duration(10)), cfg("other")], max_wait=0.2, types=TYPES)
    runner.collect(0.0)
    GateCheck.gates["slow"].clear()
    out = runner.collect(10.0)  # 'slow' is running and within its timeout: previous result stays
    assert values(out, "test_gate_runs_total") == {"slow": 1, "other": 2}
    assert values(out, "hostwarden_check_up")["slow"] == 1.0
    GateCheck.gates["slow"].set()
    deadline = time.monotonic() + 5
    while GateCheck.live and time.monotonic() < deadline:
        time.sleep(0.01)
    out = runner.collect(11.0)
    assert values(out, "test_gate_runs_total")["slow"] == 2


def test_runner_bounded_pool_never_exceeds_max_workers_and_runs_all() -> None:
    for i in range(6):
        gate(f"c{i}")
    runner = CheckRunner([cfg(f"c{i}") for i in range(6)], max_workers=2, types=TYPES)
    out = runner.collect(0.0)
    assert GateCheck.peak <= 2
    assert values(out, "test_gate_runs_total") == {f"c{i}": 1 for i in range(6)}


def test_runner_run_that_raises_is_unknown_with_the_error() -> None:
    gate("raise-1")
    runner = CheckRunner([cfg("raise-1")], types=TYPES)
    out = runner.collect(0.0)
    assert values(out, "hostwarden_check_status") == {"raise-1": 3.0}
    assert runner.last_results()["raise-1"].message == "check error: RuntimeError: boom"


def test_runner_check_that_cannot_be_built_reports_why() -> None:
    runner = CheckRunner([GateConfig(name="x", type="broken")], types=TYPES)
    out = runner.collect(0.0)
    assert values(out, "hostwarden_check_up") == {"x": 0.0}
    assert runner.last_results()["x"].message == "cannot set up: cannot open thing"


def test_runner_disabled_check_is_not_run_or_reported() -> None:
    gate("on")
    runner = CheckRunner([cfg("on"), cfg("off", enabled=False)], types=TYPES)
    assert set(values(runner.collect(0.0), "hostwarden_check_up")) == {"on"}


def test_runner_logs_once_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    gate("f")
    runner = CheckRunner([cfg("f", ok=False)], types=TYPES)
    with caplog.at_level(logging.INFO, logger="hostwarden.collectors.checks"):
        for now in (0.0, 10.0, 20.0):
            runner.collect(now)
    assert caplog.text.count("check f: CRITICAL") == 1


def test_runner_real_registry_builds_real_checks() -> None:
    runner = CheckRunner([TcpConfig(name="t", type="tcp", address="127.0.0.1:9", timeout=Duration(1))])
    assert "hostwarden_tcp_connect_seconds" in runner.metrics
    out = runner.collect(0.0)
    assert values(out, "hostwarden_check_up") == {"t": 0.0}
    runner.close()


def wait_until(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def run_number(runner: CheckRunner, name: str) -> int:
    result = runner.last_results().get(name)
    return int(result.message.split()[-1]) if result is not None and result.message.startswith("run ") else 0


def harvested(runner: CheckRunner, now: float, name: str) -> int:
    runner.collect(now)
    return run_number(runner, name)


def test_runner_keeps_its_own_grid_when_collects_come_early_or_late() -> None:
    gate("g")
    runner = CheckRunner([cfg("g", interval=Duration(1), timeout=Duration(1))], types=TYPES)
    runs = []
    # a 1 s tick jittering around the check's 1 s interval: late by 20 ms, then early by 10 ms
    for now in (0.0, 1.02, 1.99, 2.0, 2.995, 3.001):
        runs.append(values(runner.collect(now), "test_gate_runs_total")["g"])
    assert runs == [1, 2, 2, 3, 3, 4]


def test_runner_after_a_pause_runs_once_and_reanchors_without_catching_up() -> None:
    gate("g")
    runner = CheckRunner([cfg("g", interval=Duration(1), timeout=Duration(1))], types=TYPES)
    runs = [values(runner.collect(now), "test_gate_runs_total")["g"] for now in (0.0, 100.3, 100.8, 101.3)]
    assert runs == [1, 2, 2, 3]


def test_runner_due_while_run_within_its_timeout_waits_for_it_no_overrun() -> None:
    slow = gate("slow", open_=False)
    runner = CheckRunner([cfg("slow", interval=Duration(1), timeout=Duration(5))], max_wait=0.0, types=TYPES)
    try:
        runner.collect(0.0)
        assert wait_until(lambda: GateCheck.live == 1)
        out = runner.collect(1.0)  # due again, still running and before its deadline: not started twice
        assert GateCheck.live == 1 and values(out, "hostwarden_check_overruns_total") == {}
        slow.set()
        # its run returns: harvested, and the run due at 1.0 starts at once
        assert wait_until(lambda: harvested(runner, 1.1, "slow") == 2)
        # still on its grid: due at 2.0 although the run due at 1.0 started late
        assert wait_until(lambda: harvested(runner, 2.0, "slow") == 3)
        assert values(runner.collect(2.1), "hostwarden_check_overruns_total") == {"slow": 0.0}
    finally:
        runner.close()


def test_runner_all_workers_busy_queues_due_runs_and_reports_it() -> None:
    gate("hung", open_=False)
    gate("a")
    gate("b")
    runner = CheckRunner([cfg("hung", timeout=Duration(0.3)), cfg("a"), cfg("b")], max_workers=1, grace=0.05,
                         types=TYPES)
    try:
        out = runner.collect(0.0)
        # a and b waited for the one worker; when the hung run was abandoned its thread left the pool and a
        # new worker ran them
        assert values(out, "hostwarden_check_up") == {"hung": 0.0, "a": 1.0, "b": 1.0}
        pool = {s.name: s.value for s in out if s.name.startswith("hostwarden_check_") and not s.labels}
        waited = pool.pop("hostwarden_check_queue_wait_seconds_total")
        assert pool == {"hostwarden_check_workers": 1.0, "hostwarden_check_workers_busy": 0.0,
                        "hostwarden_check_queued": 0.0, "hostwarden_check_stuck_threads": 1.0}
        assert waited >= 2 * 0.3  # a and b each waited for the hung run's 0.3 s timeout (+ grace)
        assert GateCheck.peak == 2  # the stuck run + the one pool worker, never more
    finally:
        runner.close()


def test_runner_runs_due_together_share_one_deadline_from_their_due_time() -> None:
    slow = gate("s0", open_=False)
    for name in ("s1", "s2"):
        gate(name)
    runner = CheckRunner([cfg(n, timeout=Duration(5)) for n in ("s0", "s1", "s2")], max_workers=1, types=TYPES)
    try:
        t0 = time.monotonic()
        threading.Timer(0.05, slow.set).start()  # s1 and s2 wait 50 ms for the one worker
        runner.collect(0.0)
        starts = {n: d[0] - 5.0 for n, d in GateCheck.deadlines.items()}
        # `deadline - timeout` is the moment the batch was due, the same for all three (the process
        # checks share one process-table read on it), and a queued run's wait counts against its timeout
        assert len(set(starts.values())) == 1 and t0 <= starts["s0"] <= t0 + 0.05
    finally:
        runner.close()


def test_runner_threads_bounded_by_pool_plus_one_per_stuck_check() -> None:
    for i in range(6):
        gate(f"h{i}", open_=False)
    names = [f"h{i}" for i in range(6)]
    before = threading.active_count()
    runner = CheckRunner([cfg(n, timeout=Duration(0.1)) for n in names], max_workers=2, grace=0.05, types=TYPES)
    try:
        out = runner.collect(0.0)
        # two ran and were abandoned; the other four found no free worker before their 0.1 s timeout
        assert values(out, "hostwarden_check_timeouts_total") == {"h0": 1.0, "h1": 1.0, "h2": 0.0, "h3": 0.0,
                                                                  "h4": 0.0, "h5": 0.0}
        assert values(out, "hostwarden_check_overruns_total") == {"h0": 0.0, "h1": 0.0, "h2": 1.0, "h3": 1.0,
                                                                  "h4": 1.0, "h5": 1.0}
        assert values(out, "hostwarden_check_status") == {n: 3.0 for n in names}
        assert runner.last_results()["h2"].message == "not started within its timeout (0.1s): every check worker busy"
        assert GateCheck.live == 2
        for now in (100.0, 200.0):  # the stuck ones are skipped; new workers try the others
            out = runner.collect(now)
        assert GateCheck.live == 6  # every check ran once and is stuck now
        grown = threading.active_count() - before
        assert grown <= 2 + 6  # the pool + one thread per stuck check
        out = runner.collect(300.0)  # all stuck: each due run skipped and counted, no new thread
        assert threading.active_count() - before <= grown
        assert GateCheck.live == 6
        assert values(out, "hostwarden_check_stuck_threads") == {"": 6.0}
        assert all(v >= 1.0 for v in values(out, "hostwarden_check_overruns_total").values())
    finally:
        runner.close()


def test_runner_started_hung_check_does_not_hold_back_a_fast_check() -> None:
    gate("hung", open_=False)
    gate("fast")
    runner = CheckRunner([cfg("hung", interval=Duration(10), timeout=Duration(5)),
                          cfg("fast", interval=Duration(0.05), timeout=Duration(0.05))], types=TYPES)
    runner.start(time.monotonic)
    try:
        # five runs of the fast check while the hung one is in flight, long before its 5 s deadline
        assert wait_until(lambda: run_number(runner, "fast") >= 5, timeout=4.0)
        assert "hung" not in runner.last_results()
        assert values(runner.snapshot(), "hostwarden_check_overruns_total") == {"fast": 0.0}
    finally:
        runner.close()


def test_runner_started_publishes_each_finished_run_through_on_change() -> None:
    slow = gate("slow", open_=False)
    gate("quick")
    seen: list[dict[str, float]] = []
    published = threading.Event()

    def on_change(r: CheckRunner) -> None:
        seen.append(values(r.snapshot(), "hostwarden_check_up"))
        if "slow" in seen[-1]:
            published.set()

    runner = CheckRunner([cfg("slow", interval=Duration(60)), cfg("quick", interval=Duration(60))], types=TYPES)
    runner.start(time.monotonic, on_change)
    try:
        assert wait_until(lambda: {"quick": 1.0} in seen)  # the quick result did not wait for the slow run
        slow.set()
        assert published.wait(5)
        assert seen[-1] == {"slow": 1.0, "quick": 1.0}
    finally:
        runner.close()


def test_runner_close_ends_its_threads() -> None:
    gate("g")
    before = set(threading.enumerate())
    runner = CheckRunner([cfg(f"g{i}", interval=Duration(0.05)) for i in range(3)], types=TYPES)
    for i in range(3):
        gate(f"g{i}")
    runner.start(time.monotonic)
    assert wait_until(lambda: all(run_number(runner, f"g{i}") >= 2 for i in range(3)))
    runner.close()

    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.name.startswith("checks-")]

    assert wait_until(lambda: not ours()), ours()
    runs = [run_number(runner, f"g{i}") for i in range(3)]
    time.sleep(0.2)
    assert [run_number(runner, f"g{i}") for i in range(3)] == runs  # nothing started after close
