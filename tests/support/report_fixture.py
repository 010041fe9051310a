"""A hand-computed report fixture: incidents made by the real IncidentManager at explicit times, silences, flapping,
check history and maintenance windows over ten days. The expected figures are in tests/unit/agent/test_report.py,
each derived by hand in its comment."""

from __future__ import annotations

from hostwarden.agent.core.incident import RemoteStatus, TicketRef
from hostwarden.agent.core.samples import Sample, labels_of
from hostwarden.agent.incidents.history import CheckHistory
from hostwarden.agent.incidents.manager import IncidentManager, apply_remote_statuses
from hostwarden.agent.incidents.silence import MaintenanceWindow, TimeInterval, parse_matcher
from hostwarden.agent.incidents.state import StateDB
from hostwarden.agent.incidents.suppress import add_silence

from tests.support.incidents import HOST, alert, firing, flapping, resolved, tickets_config

T = 1_700_000_000.0  # since: 2023-11-14 22:13:20 UTC
NOW = T + 10 * 86400  # until
WINDOWS = (MaintenanceWindow("upgrade", start=T + 500_000, end=T + 507_200),
           MaintenanceWindow("nightly", intervals=(TimeInterval(times=((60, 120),)),)))  # 01:00-02:00 UTC daily


def _ack(state: StateDB, fp: str, at: float) -> None:
    """A person acknowledges the incident's ticket (what two-way sync brings)."""
    with state.tx() as c:
        c.execute("UPDATE incidents SET ticket_id = CAST(id AS TEXT) WHERE fingerprint = ?", (fp,))
    iid = state.query("SELECT id FROM incidents WHERE fingerprint = ? ORDER BY id DESC LIMIT 1", (fp,))[0]["id"]
    assert apply_remote_statuses(state, [RemoteStatus(TicketRef("local", str(iid)), "acknowledged", changed_at=at)],
                                 at) == 1


def _check(history: CheckHistory, name: str, up: bool, at: float) -> None:
    history.record([Sample("hostwarden_check_up", labels_of(check=name, type="tcp"), 1.0 if up else 0.0, at)], at)


def populate(state: StateDB) -> None:
    m = IncidentManager(tickets_config("{}"), state=state, hostname=HOST, external_labels={"host": HOST})
    # A: HighCPU (warning, performance → P3): acked after 600 s, resolved after 3600 s; fires again 600 s later
    # (within the 1 h reopen window): a second occurrence acked after 300 s, resolved after 900 s
    a = alert("HighCPU", at=T + 1000)
    m.handle([firing(a)], T + 1000)
    _ack(state, a.fingerprint, T + 1600)
    m.handle([resolved(a, T + 4600)], T + 4600)
    m.handle([firing(a, T + 5200)], T + 5200)
    _ack(state, a.fingerprint, T + 5500)
    m.handle([resolved(a, T + 6100)], T + 6100)
    # B: DiskFull / (critical, capacity → P2): acked after 5400 s (> 1 h), resolved after 90000 s (> 24 h);
    # two flapping episodes in between
    b = alert("DiskFull", severity="critical", category="capacity", at=T + 15_000, mountpoint="/")
    m.handle([firing(b)], T + 15_000)
    _ack(state, b.fingerprint, T + 20_400)
    for start, stop in ((T + 30_000, T + 31_000), (T + 40_000, T + 41_000)):
        m.handle([flapping(b, True, start)], start)
        m.handle([flapping(b, False, stop)], stop)
    m.handle([resolved(b, T + 105_000)], T + 105_000)
    # C: DiskFull /data (critical → P2): never acknowledged, still open at NOW
    c = alert("DiskFull", severity="critical", category="capacity", at=T + 200_000, mountpoint="/data")
    m.handle([firing(c)], T + 200_000)
    # D: Blip (P3) fires and clears inside a 1 h silence: a record, no ticket
    add_silence(state, [parse_matcher("alertname=Blip")], starts_at=T + 300_000, ends_at=T + 303_600,
                created_by="alice", comment="patching", now=T + 300_000)
    d = alert("Blip", at=T + 300_100)
    m.handle([firing(d)], T + 300_100)
    m.handle([resolved(d, T + 300_500)], T + 300_500)
    m.tick(T + 303_600)
    # E: Deferred (P3) fires inside a 30 min silence and still fires at its end: the ticket opens then
    # (T + 401800), acked 1200 s and resolved 2400 s after that
    add_silence(state, [parse_matcher("alertname=Deferred")], starts_at=T + 400_000, ends_at=T + 401_800,
                created_by="bob", comment="reboot", now=T + 400_000)
    e = alert("Deferred", at=T + 400_100)
    m.handle([firing(e)], T + 400_100)
    m.tick(T + 401_800)
    _ack(state, e.fingerprint, T + 403_000)
    m.handle([resolved(e, T + 404_200)], T + 404_200)
    # check history: web up since before the period, down 1 h at T+100000, down again for the last 30 min;
    # db first seen (up) half-way through
    h = CheckHistory(state)
    _check(h, "web", True, T - 1000)
    _check(h, "web", False, T + 100_000)
    _check(h, "web", False, T + 100_010)  # no change: not a transition
    _check(h, "web", True, T + 103_600)
    _check(h, "web", False, NOW - 1800)
    _check(h, "db", True, T + 432_000)
