"""The remediation decision engine in simulated time: no clock, no I/O, frozen values in and out."""

from __future__ import annotations

from hostwarden.agent.core.remedy import Action, Plan
from hostwarden.agent.incidents.remediation import Candidate, Exhaust, Refuse, Run, decide, finished

RESTART = Action("restart_unit", unit="nginx.service")
ROTATE = Action("run", argv=("/usr/local/sbin/rotate-logs", "--now"))


def plan(*actions: Action, **kw: object) -> Plan:
    return Plan(actions=actions or (RESTART,), source="rules.yaml:7", file="rules.yaml", **kw)  # type: ignore[arg-type]


def cand(p: Plan, *, since: float = 0.0, severity: str = "critical", fp: str = "fp1", **kw: object) -> Candidate:
    labels = kw.pop("labels", (("alertname", "NginxDown"), ("name", "nginx.service")))
    return Candidate(fingerprint=fp, severity=severity, firing_since=since, labels=labels, plan=p,  # type: ignore[arg-type]
                     **kw)  # type: ignore[arg-type]


class Sim:
    """Steps the engine through time: `at(t, candidates)` decides; `done(t, ok)` reports the action's end."""

    def __init__(self) -> None:
        self.states: dict = {}

    def at(self, now: float, *cands: Candidate) -> list:
        d = decide(self.states, list(cands), now)
        self.states = dict(d.states)
        return list(d.decisions)

    def done(self, now: float, ok: bool = True, fp: str = "fp1") -> None:
        self.states = dict(finished(self.states, fp, ok=ok, at=now))


def test_engine_waits_after_then_runs_first_action():
    sim, p = Sim(), plan()  # after: 2m by default
    c = cand(p, since=1000.0)
    assert sim.at(1000.0, c) == []
    assert sim.at(1119.0, c) == []
    (run,) = sim.at(1120.0, c)
    assert isinstance(run, Run)
    assert (run.step.kind, run.step.unit, run.attempt, run.max_attempts) == ("restart_unit", "nginx.service", 1, 3)
    assert sim.at(1121.0, c) == []  # one action at a time: still running


def test_engine_severity_critical_skips_warnings_any_does_not():
    sim = Sim()
    assert sim.at(500.0, cand(plan(after=0.0), severity="warning")) == []
    sim2 = Sim()
    (run,) = sim2.at(500.0, cand(plan(after=0.0, severity="any"), severity="warning"))
    assert isinstance(run, Run)


def test_engine_verify_within_then_next_action_in_order():
    sim, p = Sim(), plan(RESTART, ROTATE, after=0.0, verify_within=60.0)
    c = cand(p)
    (first,) = sim.at(10.0, c)
    assert first.step.kind == "restart_unit"
    sim.done(12.0)
    assert sim.at(30.0, c) == []  # verifying until 72
    assert sim.at(71.9, c) == []
    (second,) = sim.at(72.0, c)  # still firing after verify_within: the next action
    assert second.step.argv == ("/usr/local/sbin/rotate-logs", "--now")
    assert second.attempt == 2


def test_engine_failed_action_goes_on_without_waiting_for_verify():
    sim, p = Sim(), plan(RESTART, ROTATE, after=0.0, verify_within=600.0)
    c = cand(p)
    sim.at(10.0, c)
    sim.done(11.0, ok=False)
    (second,) = sim.at(12.0, c)
    assert isinstance(second, Run) and second.action_index == 1


def test_engine_max_within_then_exhausted_and_silent():
    sim, p = Sim(), plan(after=0.0, max_attempts=3, within=1800.0, verify_within=60.0)
    c = cand(p)
    t = 0.0
    runs = []
    for _ in range(3):
        (d,) = sim.at(t, c)
        assert isinstance(d, Run)
        runs.append(d)
        sim.done(t + 1)
        t += 61
    assert [r.attempt for r in runs] == [1, 2, 3]
    (ex,) = sim.at(t, c)
    assert isinstance(ex, Exhaust)
    assert ex.attempts == 3 and "did not clear" in ex.reason
    for k in range(1, 50):  # stays exhausted for the rest of the occurrence: no loop
        assert sim.at(t + k * 60, c) == []


def test_engine_flapping_unit_is_not_restarted_in_a_loop():
    """Each restart clears the alert, the unit dies again: the attempts count across occurrences."""
    sim, p = Sim(), plan(after=120.0, max_attempts=3, within=1800.0, verify_within=60.0)
    decisions = []
    t = 0.0
    for _occurrence in range(6):  # fires, 2m later restarted, clears, dies again a minute later
        c = cand(p, since=t)
        for now in (t, t + 60, t + 120, t + 121):
            for d in sim.at(now, c):
                decisions.append(d)
                if isinstance(d, Run):
                    sim.done(now + 1)
        assert sim.at(t + 150) == []  # resolved: no candidate
        t += 210
    runs = [d for d in decisions if isinstance(d, Run)]
    assert len(runs) == 3, decisions
    exhausts = [d for d in decisions if isinstance(d, Exhaust)]
    assert len(exhausts) == 3 and all("not trying again" in e.reason for e in exhausts)
    # after the window, a new failure gets an action again
    t = runs[0].at + 1800.0 + 1
    c = cand(p, since=t - 200)
    assert any(isinstance(d, Run) for d in sim.at(t, c))


def test_engine_skips_silenced_and_other_hosts_alerts():
    sim, p = Sim(), plan(after=0.0)
    assert sim.at(10.0, cand(p, silenced=True)) == []
    assert sim.at(11.0, cand(p, local=False)) == []
    (run,) = sim.at(12.0, cand(p))  # the silence ended
    assert isinstance(run, Run)


def test_engine_untrusted_plan_refused_once_per_occurrence():
    sim, p = Sim(), plan(after=0.0)
    c = cand(p, untrusted="rules.yaml is group- or world-writable (mode 0664)")
    (ref,) = sim.at(10.0, c)
    assert isinstance(ref, Refuse) and "world-writable" in ref.reason and ref.action_index is None
    assert sim.at(11.0, c) == []


def test_engine_label_injection_refused_and_next_action_tried():
    unit_from_label = Action("restart_unit", unit="$labels.name")
    clean = Action("run", argv=("/usr/local/sbin/clean", "$labels.path"))
    for bad in ("nginx.service; rm -rf /", "--foo", "-nginx.service", "nginx.service\nx"):
        sim = Sim()
        c = cand(plan(unit_from_label, ROTATE, after=0.0), labels=(("name", bad),))
        ref, run = sim.at(10.0, c)
        assert isinstance(ref, Refuse) and ref.action_index == 0 and "is not a systemd unit name" in ref.reason
        assert isinstance(run, Run) and run.step.argv[0] == "/usr/local/sbin/rotate-logs"
    for bad in ("../../etc/passwd", "/var/log/../../etc/passwd", "--foo", "/tmp/a b", "relative/path", "/x/./y"):
        sim = Sim()
        (ref, ex) = sim.at(10.0, cand(plan(clean, after=0.0), labels=(("path", bad),)))
        assert isinstance(ref, Refuse) and "is not a unit name or an absolute path" in ref.reason, bad
        assert isinstance(ex, Exhaust) and "all refused" in ex.reason
    sim = Sim()
    (ref,) = sim.at(10.0, cand(plan(unit_from_label, after=0.0), labels=()))[:1]
    assert "has no label 'name'" in ref.reason
    sim = Sim()
    (run,) = sim.at(10.0, cand(plan(unit_from_label, clean, after=0.0),
                               labels=(("name", "nginx@site-1.service"), ("path", "/var/log/nginx"))))
    assert run.step.unit == "nginx@site-1.service"


def test_engine_new_occurrence_starts_list_over_but_keeps_budget():
    sim, p = Sim(), plan(RESTART, ROTATE, after=0.0, max_attempts=5, verify_within=10.0)
    (a,) = sim.at(0.0, cand(p, since=0.0))
    assert a.attempt == 1
    sim.done(1.0)
    assert sim.at(5.0) == []  # cleared
    (b,) = sim.at(100.0, cand(p, since=100.0))
    assert b.action_index == 0 and b.attempt == 2
