"""Every incident in one place: routes to several backends, each ticket's delivery state, and the CLI over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostwarden.agent.cli import main
from hostwarden.agent.core.incident import Incident, TicketRef, TransientError
from hostwarden.agent.core.schema import ConfigErrors
from hostwarden.agent.incidents.listing import find_incident, list_incidents
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.outbox import OutboxWorker
from hostwarden.agent.incidents.silence import parse_matcher
from hostwarden.agent.incidents.state import StateDB
from hostwarden.agent.incidents.suppress import add_silence

from tests.support.incidents import HOST, alert, firing, resolved, tickets_config

T0 = 1_700_000_000.0
TWO = """
backends: [{name: local, type: local}, {name: hook, type: webhook, url: "http://127.0.0.1:9/x"}]
route: [{match: {severity: critical}, backends: [local, hook]}]
"""


class Recorder:
    """A backend that opens tickets NAME-1, NAME-2, … or fails while `down` (a transient error, as a timeout)."""

    def __init__(self, name: str) -> None:
        self.name, self.down, self.calls, self.n = name, False, [], 0

    def find(self, fingerprint: str) -> TicketRef | None:
        if self.down:
            raise TransientError("connection refused")
        return None

    def open(self, incident: Incident) -> TicketRef:
        self.n += 1
        self.calls.append(("open", incident.fingerprint))
        return TicketRef(self.name, f"{self.name}-{self.n}", f"https://{self.name}.example/{self.n}")

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        if self.down:
            raise TransientError("connection refused")
        self.calls.append(("update", ref.id))

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        if self.down:
            raise TransientError("connection refused")
        self.calls.append(("resolve", ref.id))

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        self.calls.append(("reopen", ref.id))


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    state = StateDB(str(tmp_path / "state.db"))
    yield state
    state.close()


def test_incidents_route_backends_parsed_and_checked() -> None:
    cfg = tickets_config(TWO)
    assert cfg.routes_for({"severity": "critical"}) == ["local", "hook"]
    assert cfg.route_for({"severity": "critical"}) == "local"
    assert cfg.routes_for({"severity": "warning"}) == ["local"]
    with pytest.raises(ConfigErrors, match=r"unknown backend 'nope'"):
        tickets_config("backends: [{name: local, type: local}]\nroute: [{match: {a: b}, backends: [local, nope]}]")
    with pytest.raises(ConfigErrors, match=r"exactly one of `backend: NAME` or `backends"):
        tickets_config("backends: [{name: local, type: local}]\nroute: [{match: {a: b}, backend: local, "
                       "backends: [local]}]")


def test_incidents_each_backend_own_queue_ref_and_delivery_state(db: StateDB) -> None:
    m = IncidentManager(tickets_config(TWO), state=db, hostname=HOST, external_labels={"host": HOST})
    local, hook = Recorder("local"), Recorder("hook")
    hook.down = True
    clock = [0.0]
    w = OutboxWorker(db, {"local": local, "hook": hook}, clock=lambda: clock[0], wall=lambda: T0 + clock[0],
                     rng=lambda: 0.0)
    a = alert(at=T0, severity="critical")
    m.handle([firing(a)], T0)
    w.run_once(clock[0])
    (inc,) = list_incidents(db)
    tickets = {t["backend"]: t for t in inc["tickets"]}
    loc = tickets["local"]
    assert (loc["id"], loc["delivery"], loc["primary"]) == ("local-1", "delivered", True)
    assert (tickets["hook"]["id"], tickets["hook"]["delivery"], tickets["hook"]["attempts"]) == (None, "pending", 1)
    assert tickets["hook"]["last_error"] == "connection refused"
    m.handle([resolved(a, T0 + 60)], T0 + 60)
    clock[0] = 10.0
    w.run_once(clock[0])
    assert local.calls == [("open", a.fingerprint), ("resolve", "local-1")]  # local is not held up by hook
    hook.down = False
    clock[0] = 1000.0
    w.run_once(clock[0])
    assert hook.calls == [("open", a.fingerprint), ("resolve", "hook-1")]  # in order, with its own ticket's ref
    shown = find_incident(db, a.fingerprint)
    assert shown is not None and [t["delivery"] for t in shown["tickets"]] == ["delivered", "delivered"]
    assert [t["url"] for t in shown["tickets"]] == ["https://local.example/1", "https://hook.example/1"]
    assert [e["kind"] for e in shown["timeline"]] == ["opened", "ticket", "resolved", "resolution", "ticket"]
    assert list_incidents(db, backend="hook")[0]["id"] == shown["id"]
    assert list_incidents(db, statuses=("open",)) == []


def test_incidents_cli_list_show_and_silence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\n  hostname: {HOST}\n")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--config", str(cfg)])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("incidents", "list") == (0, "no incidents\n", "")
    code, sid, _ = run("silence", "add", "--match", "alertname=HighCPU", "--duration", "2h", "--comment", "patch",
                       "--by", "alice")
    assert code == 0 and len(sid.strip()) == 8
    assert run("silence", "add", "--match", "alertname")[0] == 2
    assert run("silence", "add", "--match", "a=b", "--duration", "soon")[0] == 2
    state = StateDB(str(tmp_path / "state" / "state.db"))
    add_silence(state, [parse_matcher("x=y")], starts_at=T0, ends_at=T0 + 1, created_by="", comment="", now=T0)
    m = IncidentManager(tickets_config("{}"), state=state, hostname=HOST, external_labels={"host": HOST})
    import time

    m.handle([firing(alert(at=time.time()))], time.time())
    state.close()
    code, out, _ = run("incidents", "list")
    assert code == 0 and "open silenced" in out and "local:-(silenced)" in out
    code, out, _ = run("incidents", "list", "--format", "json")
    (inc,) = json.loads(out)
    assert inc["silenced_by"] == f"silence {sid.strip()}" and inc["opened_at"].endswith("Z")
    code, out, _ = run("incidents", "show", str(inc["id"]))
    assert code == 0 and "held by silence" in out and "silenced: Silenced by silence" in out
    assert run("incidents", "show", "999")[0] == 1
    code, out, _ = run("silence", "list", "--format", "json")
    assert [s["matchers"] for s in json.loads(out)] == [['alertname="HighCPU"']]
    code, out, _ = run("silence", "list", "--expired", "--format", "json")
    assert len(json.loads(out)) == 2
    code, out, _ = run("silence", "expire", sid.strip())
    assert code == 0 and out == f"silence {sid.strip()} expired\n"
    assert run("silence", "list") == (0, "no silences in effect or pending\n", "")
