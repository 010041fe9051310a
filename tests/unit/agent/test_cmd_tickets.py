"""`hostwarden tickets …` and `hostwarden report` on real state and ticket databases made by the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostwarden.agent.cli import main
from hostwarden.agent.core.incident import RemoteStatus, TicketRef
from hostwarden.agent.incidents.manager import IncidentManager, apply_remote_statuses
from hostwarden.agent.incidents.outbox import OutboxWorker, build_backends
from hostwarden.agent.incidents.state import StateDB

from tests.support.incidents import HOST, alert, firing, resolved, tickets_config

T0 = 1_700_000_000.0
RULES = """
groups:
  - name: host
    rules:
      - alert: HighMemory
        expr: hostwarden_memory_used_ratio
        warning: "> 0.85"
        critical: "> 0.95"
        category: capacity
        labels: {team: ops}
        annotations: {summary: "memory {{ $value | humanizePercentage }} used on {{ $externalLabels.host }}"}
"""


def write_config(tmp_path: Path, tickets: str = "") -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\n  hostname: {HOST}\nrule_files: [rules.yaml]\n"
                   + tickets)
    return cfg


def populate(tmp_path: Path, now: float) -> None:
    """Two incidents through the real manager and worker: one resolved after 10 min, one still open."""
    state = StateDB(str(tmp_path / "state" / "state.db"))
    cfg = tickets_config("{}")
    m = IncidentManager(cfg, state=state, hostname=HOST, external_labels={"host": HOST})
    w = OutboxWorker(state, build_backends(cfg, state_dir=str(tmp_path / "state")), clock=lambda: 0.0)
    a, b = alert("HighCPU", at=now - 3600), alert("DiskFull", at=now - 1800, check="backup")
    m.handle([firing(a)], now - 3600)
    w.run_once(0.0)
    apply_remote_statuses(state, [RemoteStatus(TicketRef("local", "1"), "acknowledged", changed_at=now - 3300)],
                          now - 3290)  # what polling brings when a person acknowledges ticket 1
    m.handle([resolved(a, now - 3000)], now - 3000)
    m.handle([firing(b)], now - 1800)
    w.run_once(1.0)
    state.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cmd_tickets_list_json_fields_and_status_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    cfg = write_config(tmp_path)
    code, out, _ = run(capsys, "tickets", "list", "--format", "json", "--config", str(cfg))
    assert (code, json.loads(out)) == (0, [])  # no store yet: empty, and nothing created
    assert not (tmp_path / "state" / "tickets.db").exists()
    populate(tmp_path, time.time())
    code, out, _ = run(capsys, "tickets", "list", "--format", "json", "--config", str(cfg))
    tickets = json.loads(out)
    assert code == 0 and [t["status"] for t in tickets] == ["resolved", "new"]
    for key in ("id", "status", "fingerprint", "title", "priority", "opened_at", "resolved_at", "reopen_count"):
        assert key in tickets[0]
    code, out, _ = run(capsys, "tickets", "list", "--status", "open", "--config", str(cfg))
    assert code == 0 and "DiskFull" in out and "HighCPU" not in out
    code, _, err = run(capsys, "tickets", "list", "--status", "bogus", "--config", str(cfg))
    assert code == 2 and "unknown status 'bogus'" in err


def test_cmd_tickets_people_actions_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    cfg = write_config(tmp_path)
    populate(tmp_path, time.time())
    assert run(capsys, "tickets", "ack", "2", "--by", "alice", "--config", str(cfg))[:2] == (
        0, "ticket #2 acknowledged (status: acknowledged)\n")
    code, _, err = run(capsys, "tickets", "ack", "2", "--config", str(cfg))
    assert code == 1 and "only new or reopened" in err
    assert run(capsys, "tickets", "comment", "2", "disk", "replaced", "--by", "bob", "--config", str(cfg))[0] == 0
    assert run(capsys, "tickets", "close", "2", "--config", str(cfg))[0] == 0
    code, _, err = run(capsys, "tickets", "resolve", "2", "--config", str(cfg))
    assert code == 1 and "already closed" in err
    code, out, _ = run(capsys, "tickets", "show", "2", "--config", str(cfg))
    closer = json.loads(run(capsys, "tickets", "show", "2", "--format", "json", "--config", str(cfg))[1])["events"][-1]
    # the status names who closed it; alice only acknowledged (issue 13)
    assert code == 0 and f"status:      closed (by {closer['author']})" in out and closer["kind"] == "closed"
    assert "acknowledged: " in out and " by alice" in out
    assert "comment [bob]: disk replaced" in out and "opened: DiskFull warning on testhost" in out
    code, _, err = run(capsys, "tickets", "show", "99", "--config", str(cfg))
    assert code == 1 and "no ticket 99" in err


def test_cmd_tickets_without_local_backend_says_where_tickets_are(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "tickets:\n  backends: [{name: hook, type: webhook, url: 'https://h.example/x'}]\n")
    code, _, err = run(capsys, "tickets", "list", "--config", str(cfg))
    assert code == 2 and "no local ticket backend is configured (backends: hook (webhook))" in err


def test_cmd_tickets_outbox_lists_dead_and_retry_requeues(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    state = StateDB(str(tmp_path / "state" / "state.db"))
    m = IncidentManager(tickets_config("{}"), state=state, hostname=HOST, external_labels={"host": HOST})
    m.handle([firing(alert(at=T0))], T0)
    with state.tx() as c:
        c.execute("UPDATE outbox SET status = 'dead', attempts = 1, last_error = 'answered 401 Unauthorized'")
    state.close()
    code, out, _ = run(capsys, "tickets", "outbox", "--config", str(cfg))
    assert code == 0 and "dead" in out and "answered 401 Unauthorized" in out and "tickets retry ID" in out
    code, out, _ = run(capsys, "tickets", "outbox", "--format", "json", "--config", str(cfg))
    (row,) = json.loads(out)
    assert (row["op"], row["status"], row["backend"]) == ("open", "dead", "local")
    assert run(capsys, "tickets", "retry", str(row["id"]), "--config", str(cfg))[0] == 0
    code, _, err = run(capsys, "tickets", "retry", str(row["id"]), "--config", str(cfg))
    assert code == 1 and "no dead-lettered outbox operation" in err
    code, out, _ = run(capsys, "tickets", "outbox", "--format", "json", "--config", str(cfg))
    assert json.loads(out)[0]["status"] == "pending"


def test_cmd_report_counts_mtta_mttr_and_availability(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    now = time.time()
    cfg = write_config(tmp_path)
    populate(tmp_path, now)
    code, out, _ = run(capsys, "report", "--since", "2h", "--format", "json", "--config", str(cfg))
    rep = json.loads(out)
    assert code == 0 and rep["incidents"]["count"] == 2 and rep["incidents"]["open"] == 1
    assert rep["incidents"]["mtta_seconds"] == pytest.approx(300)
    assert rep["incidents"]["mttr_seconds"] == pytest.approx(600)
    assert set(rep["by_rule"]) == {"HighCPU", "DiskFull"} and rep["by_priority"]["P3"]["count"] == 2
    backup = rep["availability"]["backup"]
    assert backup["incidents"] == 1 and backup["down_seconds"] == pytest.approx(1800, abs=5)
    assert backup["availability_ratio"] == pytest.approx(0.75, abs=0.01)
    code, out, _ = run(capsys, "report", "--since", "2h", "--config", str(cfg))
    assert code == 0 and "Incidents: 2 (1 open)" in out and "MTTA: 5m" in out and "MTTR: 10m" in out
    assert run(capsys, "report", "--since", "soon", "--config", str(cfg))[0] == 2


def test_cmd_tickets_preview_renders_rule_ticket_without_sending(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    code, out, _ = run(capsys, "tickets", "preview", "HighMemory", "--no-diagnosis", "--config", str(cfg))
    assert code == 0
    assert "Title:       memory 96% used on testhost" in out  # the default value: just past the threshold
    assert "Priority:    P2  (severity critical, category capacity)" in out
    assert "Labels:      alertname=HighMemory host=testhost team=ops" in out
    assert "== Alert ==" in out and "threshold > 0.95" in out
    assert not (tmp_path / "state").exists()  # nothing created, nothing sent
    code, out, _ = run(capsys, "tickets", "preview", "HighMemory", "--severity", "warning", "--value", "0.9",
                       "--label", "instance=db-1", "--no-diagnosis", "--format", "json", "--config", str(cfg))
    doc = json.loads(out)
    assert code == 0 and doc["backend"] == "local" and doc["incident"]["priority"] == "P3"
    assert doc["rendered"]["title"] == "memory 90% used on testhost"
    assert ["instance", "db-1"] in doc["incident"]["labels"]
    code, _, err = run(capsys, "tickets", "preview", "HighMemroy", "--config", str(cfg))
    assert code == 2 and "did you mean 'HighMemory'" in err


def test_cmd_tickets_bad_config_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("tickets:\n  reopen_windw: 1h\n")
    code, _, err = run(capsys, "tickets", "list", "--config", str(cfg))
    assert code == 2 and "bad.yaml:2:3: unknown key 'tickets.reopen_windw'" in err


def test_cmd_tickets_show_strips_terminal_escapes_from_untrusted_text(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    cfg = write_config(tmp_path)
    state = StateDB(str(tmp_path / "state" / "state.db"))
    tc = tickets_config("{}")
    m = IncidentManager(tc, state=state, hostname=HOST, external_labels={"host": HOST})
    evil = dataclasses.replace(alert("Evil", at=T0, disk="\x1b[2J\x1b]0;owned\x07sda"),
                               annotations=(("summary", "disk \x1b[31mred\x1b[0m\nnext line"),))
    m.handle([firing(evil)], T0)
    OutboxWorker(state, build_backends(tc, state_dir=str(tmp_path / "state")), clock=lambda: 0.0).run_once(0.0)
    state.close()
    for argv in (("tickets", "show", "1"), ("tickets", "list")):
        code, out, _ = run(capsys, *argv, "--config", str(cfg))
        assert code == 0 and "\x1b" not in out and "\x07" not in out
    code, out, _ = run(capsys, "tickets", "list", "--format", "json", "--config", str(cfg))
    assert json.loads(out)[0]["title"] == "disk [31mred [0m next line"
