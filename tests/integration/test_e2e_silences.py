"""End to end with a real `hostwarden run`, textfile-driven alerts and the CLI: a silence added while the agent
runs holds ticket operations back (the alerts stay in ALERTS, `hostwarden_alerts_silenced` counts them), survives a
restart and a `kill -9` inside its window, and when it ends the alert still firing opens its ticket, once; the one
that fired and cleared inside the window is an incident record without a ticket. An alert already firing keeps its
ticket, whose updates are paused with a note; `silence expire` resumes them. A `maintenance:` window in the config
works the same way. The check history the agent keeps feeds the report's availability."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, run_cli, start_agent, wait_for, write_config

pytestmark = pytest.mark.integration

RULES = """
groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: StaysHigh
        expr: e2e_a
        warning: "> 10"
        for: 1s
      - alert: Blip
        expr: e2e_b
        warning: "> 10"
        for: 1s
"""
TICK = 10.0  # the agent's incident tick (releases held operations)
FIRE = 8.0  # interval + for + a few seconds


def setup(tmp_path: Path, body: str = "") -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = write_config(tmp_path, "rule_files: [rules.yaml]\n" + body)
    (tmp_path / "state" / "textfile").mkdir(parents=True, exist_ok=True)
    set_values(tmp_path, a=0, b=0)
    return cfg


def set_values(tmp_path: Path, *, a: float, b: float) -> None:
    d = tmp_path / "state" / "textfile"
    tmp = d / ".e2e.prom.tmp"
    tmp.write_text(f"# TYPE e2e_a gauge\ne2e_a {a}\n# TYPE e2e_b gauge\ne2e_b {b}\n")
    os.replace(tmp, d / "e2e.prom")


def cli_json(*args: str) -> object:
    res = run_cli(*args, "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def tickets(cfg: Path) -> list[dict]:
    return cli_json("tickets", "list", "--config", str(cfg))  # type: ignore[return-value]


def incidents(cfg: Path) -> list[dict]:
    return cli_json("incidents", "list", "--config", str(cfg))  # type: ignore[return-value]


def by_rule(cfg: Path) -> dict[str, dict]:
    return {i["rule"]: i for i in incidents(cfg)}


def metric(agent: AgentProcess, name: str) -> float | None:
    for line in agent.scrape().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def stop(agent: AgentProcess) -> None:
    assert agent.stop() == 0, agent.log_text()


def test_e2e_silence_holds_tickets_across_restart_and_kill9_then_opens_once(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    agent = start_agent(cfg)
    window = 40.0
    try:
        res = run_cli("silence", "add", "--match", "alertname=~StaysHigh|Blip", "--match", 'host="testhost"',
                      "--duration", f"{window:g}s", "--comment", "patching", "--by", "alice", "--config", str(cfg))
        assert res.returncode == 0, res.stderr
        sid = res.stdout.strip()
        ends = time.monotonic() + window
        (listed,) = cli_json("silence", "list", "--config", str(cfg))  # type: ignore[misc]
        assert (listed["id"], listed["state"], listed["created_by"], listed["comment"]) == (sid, "active", "alice",
                                                                                          "patching")
        assert listed["matchers"] == ['alertname=~"StaysHigh|Blip"', 'host="testhost"']

        set_values(tmp_path, a=50, b=50)
        wait_for(lambda: len(by_rule(cfg)) == 2, FIRE, what="both incidents recorded")
        text = agent.scrape()
        assert 'ALERTS{alertname="StaysHigh",alertstate="firing"' in text and 'alertname="Blip"' in text
        assert wait_for(lambda: metric(agent, "hostwarden_alerts_silenced") == 2.0, 5, what="gauge 2")
        assert metric(agent, "hostwarden_silences_active") == 1.0
        set_values(tmp_path, a=50, b=0)  # Blip clears inside the window
        wait_for(lambda: by_rule(cfg)["Blip"]["status"] == "resolved", FIRE, what="Blip resolved")

        stop(agent)  # a clean restart inside the window
        agent = start_agent(cfg)
        time.sleep(3)
        agent.signal(signal.SIGKILL)  # and a crash inside the window
        agent.proc.wait(10)
        agent = start_agent(cfg)
        time.sleep(2)
        assert tickets(cfg) == [] and time.monotonic() < ends, "no ticket while the silence lasts"
        inc = by_rule(cfg)
        assert inc["StaysHigh"]["status"] == "open" and inc["StaysHigh"]["silenced_by"] == f"silence {sid}"
        assert inc["StaysHigh"]["tickets"][0]["delivery"] == "silenced"

        (t,) = wait_for(lambda: tickets(cfg), max(0.0, ends - time.monotonic()) + TICK + 10,
                        what="the ticket after the silence ended")
        assert time.monotonic() >= ends - 1.0
        assert t["status"] == "new" and t["rule"] == "StaysHigh"
        time.sleep(TICK + 1)  # another tick: still exactly one ticket
        assert len(tickets(cfg)) == 1
        inc = by_rule(cfg)
        (ticket,) = inc["StaysHigh"]["tickets"]
        assert (ticket["backend"], ticket["id"], ticket["delivery"]) == ("local", str(t["id"]), "delivered")
        assert inc["Blip"]["status"] == "resolved" and inc["Blip"]["tickets"][0]["delivery"] == "none"
        blip = cli_json("incidents", "show", str(inc["Blip"]["id"]), "--config", str(cfg))
        kinds = [e["kind"] for e in blip["timeline"]]  # type: ignore[index]
        assert kinds == ["opened", "silenced", "resolved", "resolution", "unsilenced"]
        assert metric(agent, "hostwarden_alerts_silenced") == 0.0
        assert run_cli("silence", "list", "--config", str(cfg)).stdout.strip() == "no silences in effect or pending"
    finally:
        stop(agent)


def test_e2e_silence_on_firing_alert_pauses_updates_and_expire_resumes(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    agent = start_agent(cfg)
    try:
        set_values(tmp_path, a=50, b=0)
        (t,) = wait_for(lambda: tickets(cfg), FIRE, what="a ticket")
        res = run_cli("silence", "add", "--match", "alertname=StaysHigh", "--duration", "1h", "--config", str(cfg))
        assert res.returncode == 0, res.stderr

        def events() -> list[dict]:
            shown = cli_json("tickets", "show", str(t["id"]), "--config", str(cfg))
            return shown["events"]  # type: ignore[index]

        notes = wait_for(lambda: [e for e in events() if "updates are paused" in e["text"]], TICK + 5,
                         what="the note on the ticket")
        assert len(notes) == 1
        set_values(tmp_path, a=0, b=0)  # resolves inside the silence: the ticket stays open for now
        wait_for(lambda: by_rule(cfg)["StaysHigh"]["status"] == "resolved", FIRE, what="incident resolved")
        time.sleep(2)
        assert tickets(cfg)[0]["status"] == "new"
        res = run_cli("silence", "expire", res.stdout.strip()[:6], "--config", str(cfg))
        assert res.returncode == 0 and "expired" in res.stdout, res.stderr
        wait_for(lambda: tickets(cfg)[0]["status"] == "resolved", TICK + 5, what="the held resolve delivered")
        assert len(tickets(cfg)) == 1
        again = run_cli("silence", "expire", "nosuchid", "--config", str(cfg))
        assert again.returncode == 1 and "no silence" in again.stderr
    finally:
        stop(agent)


def test_e2e_maintenance_window_from_config(tmp_path: Path) -> None:
    now = time.time()
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 25))
    cfg = setup(tmp_path, f"maintenance:\n  - name: patching\n    start: \"{start}\"\n    end: \"{end}\"\n"
                          f"    matchers: ['alertname=\"StaysHigh\"']\n")
    agent = start_agent(cfg)
    try:
        set_values(tmp_path, a=50, b=50)
        wait_for(lambda: len(tickets(cfg)) == 1, FIRE, what="the Blip ticket (not covered)")
        assert tickets(cfg)[0]["rule"] == "Blip"
        assert by_rule(cfg)["StaysHigh"]["silenced_by"] == "maintenance patching"
        wait_for(lambda: len(tickets(cfg)) == 2, max(0.0, now + 25 - time.time()) + TICK + 5,
                 what="the StaysHigh ticket after the window")
        assert time.time() >= now + 24
    finally:
        stop(agent)


def test_e2e_check_history_feeds_report_availability(tmp_path: Path) -> None:
    """The running agent records each check's up/down transitions; the report's availability comes from them."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    cfg = setup(tmp_path, f"checks:\n  - {{name: svc, type: tcp, address: \"127.0.0.1:{port}\", timeout: 1s, "
                          f"interval: 1s}}\n")
    agent = start_agent(cfg)
    try:
        def report() -> dict:
            return cli_json("report", "--since", "1h", "--config", str(cfg))  # type: ignore[return-value]

        wait_for(lambda: report()["availability"].get("svc", {}).get("source") == "history", 10, what="history")
        listener.close()  # the service goes down
        down = wait_for(lambda: (a := report()["availability"]["svc"])["outages"] == 1 and a["down_seconds"] > 0
                        and a, 15, what="an outage in the history")
        assert 0.0 < down["availability_ratio"] < 1.0
        assert down["up_seconds"] + down["down_seconds"] == pytest.approx(down["known_seconds"])
        text = run_cli("report", "--since", "1h", "--config", str(cfg)).stdout
        assert "  svc: " in text and "from history" in text
    finally:
        stop(agent)
