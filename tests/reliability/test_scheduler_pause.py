"""The machine paused: SIGSTOP / SIGCONT of a real `hostwarden run`.

The agent runs with `--log.level debug`, so APScheduler logs every job it runs ("Running job ...
(scheduled at ...)"): counting those lines per job after SIGCONT counts cycles exactly (a catch-up
burst would show every missed run). A Nagios check appends the time of each of its runs to a file,
counting the check runner's own scheduling exactly too.

`for` across the pause: a rule with `for: FOR` whose condition became true (pending) just before the
pause; the pause is longer than FOR. Evaluations before the pause covered ~1 s of the window, so the
alert must not complete `for` at the first evaluation after SIGCONT.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from hostwarden.agent.daemon import HEARTBEAT_SECONDS

from tests.reliability.agentprobe import Scraper, parse_exposition, record, value
from tests.support.agent import start_agent, wait_for, write_config

pytestmark = pytest.mark.integration

RULE_INTERVAL = 2.0  # distinct from the 1 s jobs, so its runs can be told apart in the log
WINDOW = 3.0  # seconds after SIGCONT in which runs are counted


@dataclass
class PauseRun:
    pause: float
    for_seconds: float
    runs_after: Counter[str]  # job trigger interval -> runs in the WINDOW after SIGCONT
    runs_during: int  # job runs logged while stopped (must be 0)
    check_runs_after: int
    check_runs_total: int
    lag_after: float | None
    fired_after: float | None  # seconds from SIGCONT to the first scrape showing the alert firing
    evaluations_before_firing: int  # rule group evaluations from pending until firing
    log: str


def _log_runs(log: str) -> list[tuple[float, str]]:
    """(wall time, job trigger interval) for every 'Running job' line."""
    out = []
    for m in re.finditer(r'ts=(\S+)Z [^\n]*Running job \\"[^\n]*?\(trigger: interval\[([0-9:]+)\]', log):
        at = datetime.strptime(m.group(1) + "+0000", "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        out.append((at, m.group(2)))
    return out


def _pause_scenario(d: Path, *, pause: float, for_seconds: float) -> PauseRun:
    tf = d / "textfile"
    tf.mkdir()
    (tf / "flag.prom").write_text("pause_flag 0\n")
    ticks = d / "ticks"
    tick = d / "tick"
    tick.write_text(f"#!{sys.executable}\nimport time\nopen({str(ticks)!r}, 'a').write(f'{{time.time()}}\\n')\n"
                    "print('OK - tick')\n")
    tick.chmod(0o755)
    (d / "rules.yaml").write_text(
        f"groups:\n  - name: pause\n    interval: {RULE_INTERVAL:g}s\n    rules:\n"
        f"      - alert: PausedFor\n        expr: pause_flag > 0\n        for: {for_seconds:g}s\n")
    cfg = write_config(d, f"collectors:\n  textfile: {{directory: {tf}}}\n"
                          f"checks:\n  - {{name: tick, type: nagios, command: [{tick}], interval: 1s, timeout: 1s}}\n"
                          "rule_files: [rules.yaml]\n")
    agent = start_agent(cfg, extra_args=["--log.level", "debug"])
    try:
        time.sleep(3)
        (tf / "flag.tmp").write_text("pause_flag 1\n")
        (tf / "flag.tmp").rename(tf / "flag.prom")

        def pending() -> bool:
            s = parse_exposition(agent.scrape())
            return value(s, "ALERTS", alertname="PausedFor", alertstate="pending") == 1

        wait_for(pending, 10, interval=0.05, what="the alert pending")
        t_stop = time.time()
        agent.signal(signal.SIGSTOP)
        time.sleep(pause)
        agent.signal(signal.SIGCONT)
        t_cont = time.time()
        scraper = Scraper(agent.url + "/metrics", interval=0.05).start()
        time.sleep(WINDOW + 2)
        scrapes = scraper.stop()
    finally:
        agent.signal(signal.SIGCONT)
        exit_code = agent.stop()
    log = agent.log_text()
    assert exit_code == 0, log[-2000:]
    runs = _log_runs(log)
    fired = [s.at for s in scrapes
             if value(s.series, "ALERTS", alertname="PausedFor", alertstate="firing") == 1]
    mono_cont = scrapes[0].at if scrapes else time.monotonic()
    lags = [value(s.series, "hostwarden_scheduler_lag_seconds") for s in scrapes]
    rule_runs = [at for at, trig in runs if trig == f"0:00:{RULE_INTERVAL:02.0f}"]
    pending_at = t_stop - 1.5  # pending was observed just before the pause
    first_fire_wall = t_cont + (fired[0] - mono_cont) if fired else None
    evals = [at for at in rule_runs if pending_at <= at <= (first_fire_wall or t_cont + WINDOW)]
    tick_times = [float(x) for x in ticks.read_text().split()] if ticks.exists() else []
    return PauseRun(
        pause=pause, for_seconds=for_seconds,
        runs_after=Counter(trig for at, trig in runs if t_cont <= at <= t_cont + WINDOW),
        runs_during=sum(1 for at, _ in runs if t_stop + 0.5 < at < t_cont - 0.5),
        check_runs_after=sum(1 for t in tick_times if t_cont <= t <= t_cont + WINDOW),
        check_runs_total=len(tick_times),
        lag_after=max((v for v in lags if v is not None), default=None),
        fired_after=(fired[0] - mono_cont) if fired else None,
        evaluations_before_firing=len(evals), log=log)


def _assert_no_burst(r: PauseRun) -> None:
    assert r.runs_during == 0
    # per job: at most the one coalesced run at SIGCONT plus its regular runs in the window
    # 1 s jobs: the collect cycle (checks run on the check runner's own thread); bound kept for two jobs
    assert r.runs_after["0:00:01"] <= 2 * (1 + WINDOW + 1)
    assert r.runs_after[f"0:00:{RULE_INTERVAL:02.0f}"] <= 1 + WINDOW / RULE_INTERVAL + 1
    assert r.runs_after["0:00:05"] <= 2
    assert r.check_runs_after <= 1 + WINDOW + 1


def _record(r: PauseRun, row: str) -> None:
    record(row, pause_s=r.pause, for_s=r.for_seconds, runs_after_sigcont=dict(r.runs_after),
           runs_during_pause=r.runs_during, check_runs_after=r.check_runs_after, lag_after_s=r.lag_after,
           fired_after_sigcont_s=r.fired_after, evaluations_pending_to_firing=r.evaluations_before_firing)


@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory) -> PauseRun:
    r = _pause_scenario(tmp_path_factory.mktemp("pause"), pause=25.0, for_seconds=20.0)
    _record(r, "sigstop-25s")
    return r


def test_scheduler_sigstop_25s_resume_no_catchup_burst(paused: PauseRun) -> None:
    _assert_no_burst(paused)


def test_scheduler_lag_metric_shows_the_pause_after_resume(paused: PauseRun) -> None:  # F14 (fixed)
    # the gauge's resolution is the heartbeat period: a pause of P shows as a lag in (P - period, P]
    assert paused.lag_after is not None and paused.lag_after > paused.pause - HEARTBEAT_SECONDS


def test_rules_for_not_completed_by_pause_longer_than_for(paused: PauseRun) -> None:
    # pending for ~1-2 s of evaluations before the pause: `for: 20s` needs ~18 s more after SIGCONT
    assert paused.fired_after is None or paused.fired_after >= paused.for_seconds - 4


@pytest.mark.slow
def test_scheduler_sigstop_3min_resume_no_catchup_burst(tmp_path: Path) -> None:
    r = _pause_scenario(tmp_path, pause=180.0, for_seconds=120.0)
    _record(r, "sigstop-180s")
    _assert_no_burst(r)
