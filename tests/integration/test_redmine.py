"""The `redmine` backend against a real Redmine 5 (Debian's package, SQLite) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import secrets
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.incidents import IncidentManager
from agent.schema import Duration
from agent.state import StateDB
from exporters.tickets.base import PermanentError, TicketRef, TransientError
from exporters.tickets.config import TicketsConfig
from exporters.tickets.redmine import RedmineBackend, RedmineConfig
from rules.alerts import Alert, AlertState, AlertTransition, TransitionKind
from tests.conftest import ROOT
from tests.integration.servers.redmine import RedmineServer
from tests.support.agent import free_port
from tests.support.ticket_incidents import make_incident

pytestmark = pytest.mark.integration

# A worker is READY 0.3 s after it starts, spends ~0.3 s discovering Redmine (statuses, field, project) on its first
# call, then delivers ~6 operations/s: kills land uniformly in the first KILL9_WINDOW seconds, so most of them hit
# a delivery (find, create, note, status change, or between Redmine's answer and the commit).
KILL9_WINDOW = 1.2
KILL9_INCIDENTS = 12  # 42 operations: enough to outlast the default 20 kills
KILL9_SLOW_INCIDENTS = 150  # 525 operations: the 200 kills all land while some are pending (317-420 got through)


def backend(server: RedmineServer, monkeypatch: pytest.MonkeyPatch, *, key: str | None = None,
            **overrides: Any) -> RedmineBackend:
    monkeypatch.setenv("HW_TEST_REDMINE_KEY", key or server.user_key)
    cfg = RedmineConfig(name="ops", type="redmine", url=server.url, project=server.project,
                        api_key_env="HW_TEST_REDMINE_KEY", fingerprint_field=server.cf_name, timeout=30)
    return RedmineBackend(dataclasses.replace(cfg, **overrides))


def issue(server: RedmineServer, ref: TicketRef, include: str = "journals") -> dict[str, Any]:
    r = server.api("GET", f"/issues/{ref.id}.json", params={"include": include})
    assert r.status_code == 200, r.text
    return r.json()["issue"]


def set_status(server: RedmineServer, ref: TicketRef, name: str, *, key: str) -> None:
    statuses = server.api("GET", "/issue_statuses.json").json()["issue_statuses"]
    sid = next(s["id"] for s in statuses if s["name"] == name)
    r = server.api("PUT", f"/issues/{ref.id}.json", key=key, json={"issue": {"status_id": sid}})
    assert r.status_code == 204, r.text


def test_redmine_open_non_admin_user_stores_fingerprint_and_fields(redmine_server: RedmineServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch, category_map={"disk": "Storage"}, tracker="Support")
    inc = make_incident(priority="P1")
    ref = b.open(inc)
    assert ref.backend == "ops" and ref.url == f"{redmine_server.url}/issues/{ref.id}"
    got = issue(redmine_server, ref)
    assert got["project"]["id"] == redmine_server.project_id
    assert got["subject"] == inc.title
    assert got["tracker"]["name"] == "Support"
    assert got["priority"]["name"] == "Immediate"
    assert got["category"]["name"] == "Storage"
    assert got["author"]["name"] == "Hostwarden Agent"
    assert {"id": redmine_server.cf_id, "name": "alert_fingerprint", "value": inc.fingerprint} in got["custom_fields"]
    assert inc.fingerprint in got["description"] and "filesystem /srv is 97% full" in got["description"]


def test_redmine_priority_map_default_and_configured_ids_applied(redmine_server: RedmineServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    default = backend(redmine_server, monkeypatch)
    names = {p: issue(redmine_server, default.open(make_incident(priority=p)))["priority"]["name"]
             for p in ("P1", "P2", "P3", "P4")}
    assert names == {"P1": "Immediate", "P2": "Urgent", "P3": "High", "P4": "Normal"}
    custom = backend(redmine_server, monkeypatch, priority_map={"P1": "5", "P3": "low"})  # an id, a name in any case
    assert issue(redmine_server, custom.open(make_incident(priority="P1")))["priority"]["name"] == "Immediate"
    assert issue(redmine_server, custom.open(make_incident(priority="P3")))["priority"]["name"] == "Low"
    # a priority the map does not name: Redmine's default priority
    assert issue(redmine_server, custom.open(make_incident(priority="P2")))["priority"]["name"] == "Normal"


def test_redmine_find_by_fingerprint_open_closed_and_unknown(redmine_server: RedmineServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch)
    inc, other = make_incident(), make_incident()
    ref = b.open(inc)
    b.open(other)
    assert b.find(inc.fingerprint) == ref
    set_status(redmine_server, ref, "Closed", key=redmine_server.person_key)
    assert b.find(inc.fingerprint) == ref  # closed issues are found too (status_id=*)
    assert b.find("0123456789abcdef") is None


def test_redmine_find_admin_resolves_field_by_name_and_by_id(redmine_server: RedmineServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    inc = make_incident()
    ref = backend(redmine_server, monkeypatch).open(inc)
    by_name = backend(redmine_server, monkeypatch, key=redmine_server.admin_key)
    by_id = backend(redmine_server, monkeypatch, fingerprint_field=str(redmine_server.cf_id))
    assert by_name.find(inc.fingerprint) == ref
    assert by_id.find(inc.fingerprint) == ref


def test_redmine_update_adds_note_and_syncs_priority(redmine_server: RedmineServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch)
    inc = make_incident(priority="P3")
    ref = b.open(inc)
    b.update(ref, dataclasses.replace(inc, priority="P1"), "escalated to critical: 0.99 > 0.95")
    got = issue(redmine_server, ref)
    notes = [j["notes"] for j in got["journals"] if j["notes"]]
    assert len(notes) == 1 and "escalated to critical: 0.99 > 0.95" in notes[0]
    assert got["priority"]["name"] == "Immediate"


def test_redmine_resolve_then_reopen_changes_status_with_notes(redmine_server: RedmineServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch)
    inc = make_incident()
    ref = b.open(inc)
    b.resolve(ref, dataclasses.replace(inc, resolved_at=inc.opened_at + 600))
    got = issue(redmine_server, ref)
    assert got["status"]["name"] == "Resolved"
    assert "resolved" in got["journals"][-1]["notes"].lower()
    b.reopen(ref, dataclasses.replace(inc, reopen_count=1))
    got = issue(redmine_server, ref)
    assert got["status"]["name"] == "New"
    assert "reopened" in got["journals"][-1]["notes"].lower()
    assert b.find(inc.fingerprint) == ref


def test_redmine_resolve_of_issue_closed_by_person_keeps_closed(redmine_server: RedmineServer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch)
    inc = make_incident()
    ref = b.open(inc)
    set_status(redmine_server, ref, "Rejected", key=redmine_server.person_key)
    b.resolve(ref, inc)
    got = issue(redmine_server, ref)
    assert got["status"]["name"] == "Rejected"
    assert "resolved" in got["journals"][-1]["notes"].lower()


def test_redmine_resolve_on_resolve_comment_leaves_status(redmine_server: RedmineServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch, on_resolve="comment")
    inc = make_incident()
    ref = b.open(inc)
    b.resolve(ref, inc)
    got = issue(redmine_server, ref)
    assert got["status"]["name"] == "New" and "resolved" in got["journals"][-1]["notes"].lower()


def test_redmine_poll_one_batch_reports_person_actions(redmine_server: RedmineServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch)
    untouched, assigned, in_progress, closed, resolved = (b.open(make_incident()) for _ in range(5))
    r = redmine_server.api("PUT", f"/issues/{assigned.id}.json", key=redmine_server.person_key,
                           json={"issue": {"assigned_to_id": redmine_server.person_id}})
    assert r.status_code == 204, r.text
    set_status(redmine_server, in_progress, "In Progress", key=redmine_server.person_key)
    set_status(redmine_server, closed, "Closed", key=redmine_server.person_key)
    b.resolve(resolved, make_incident())
    gone = b.open(make_incident())
    assert redmine_server.api("DELETE", f"/issues/{gone.id}.json").status_code in (200, 204)
    refs = [untouched, assigned, in_progress, closed, resolved, gone]
    got = {s.ref.id: s for s in b.poll(refs)}
    assert {k: v.state for k, v in got.items()} == {
        untouched.id: "open", assigned.id: "acknowledged", in_progress.id: "acknowledged", closed.id: "closed",
        resolved.id: "resolved", gone.id: "missing"}
    assert got[assigned.id].assignee == redmine_server.person_name
    assert got[closed.id].changed_at is not None and got[closed.id].changed_at > 1_600_000_000


def test_redmine_configured_assignee_by_name_is_not_an_acknowledgement(redmine_server: RedmineServer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch, assignee=redmine_server.person_name)
    ref = b.open(make_incident())
    assert issue(redmine_server, ref)["assigned_to"]["id"] == redmine_server.person_id
    [status] = b.poll([ref])
    assert status.state == "open"


def test_redmine_bad_api_key_raises_permanent(redmine_server: RedmineServer, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch, key="0" * 40)
    with pytest.raises(PermanentError, match="HTTP 401") as e:
        b.find("0123456789abcdef")
    assert "0" * 40 not in str(e.value)


def test_redmine_unknown_status_name_raises_permanent_listing_choices(redmine_server: RedmineServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch, resolved_status="Done")
    with pytest.raises(PermanentError, match=r"resolved_status 'Done' not found; known: New \(1\)"):
        b.open(make_incident())


def test_redmine_unknown_project_raises_permanent(redmine_server: RedmineServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PermanentError, match="HTTP 404"):
        backend(redmine_server, monkeypatch, project="nope").open(make_incident())


def test_redmine_server_not_listening_raises_transient(redmine_server: RedmineServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend(redmine_server, monkeypatch, url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError, match="connection failed"):
        b.find("0123456789abcdef")


def test_redmine_untrusted_labels_render_inert_in_issue_page(redmine_server: RedmineServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Redmine's own HTML rendering (textile) of what we send: no mention, no link, no markup from labels."""
    b = backend(redmine_server, monkeypatch)
    evil = "@ann <script>alert(1)</script> \"quoted\" [[Wiki]] #1 http://evil.example/x *bold* {{hello_world}}"
    inc = make_incident(labels={"mountpoint": evil}, diagnosis="</pre><b>escaped</b> @ann http://evil.example/d")
    ref = b.open(inc)
    b.update(ref, inc, f"note with {evil}")
    # a person's note with the same words, to show the page *does* turn them into a mention and a link
    r = redmine_server.api("PUT", f"/issues/{ref.id}.json", key=redmine_server.person_key,
                           json={"issue": {"notes": "control: @ann http://control.example/ {{hello_world}}"}})
    assert r.status_code == 204
    page = redmine_server.api("GET", f"/issues/{ref.id}", headers={"Accept": "text/html"}).text
    assert 'href="http://control.example/"' in page and re.search(r'class="[^"]*user-mention[^"]*"', page)
    assert page.count("Hello world!") == 1  # the control's macro ran, ours did not
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "evil.example" in page and 'href="http://evil.example' not in page
    assert page.count("user-mention") == 1  # only the control note
    assert "<b>escaped</b>" not in page and "&lt;\u200b/pre&gt;&lt;b&gt;escaped&lt;/b&gt;" in page
    assert "&amp;lt;" not in page  # escaped once, not twice


def test_redmine_common_mark_untrusted_labels_render_inert_in_issue_page(redmine_server: RedmineServer,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with Redmine's CommonMark formatter: code spans and fences keep labels from becoming markup."""
    evil = "@ann <img src=x onerror=alert(1)> ``` [link](http://evil.example/y) **bold** #1 {{hello_world}}"
    redmine_server.rails("Setting.text_formatting = 'common_mark'")
    try:
        b = backend(redmine_server, monkeypatch, text_formatting="common_mark")
        inc = make_incident(labels={"mountpoint": evil}, diagnosis="```\n@ann http://evil.example/d\n```")
        ref = b.open(inc)
        b.update(ref, inc, f"note with {evil}")
        r = redmine_server.api("PUT", f"/issues/{ref.id}.json", key=redmine_server.person_key,
                               json={"issue": {"notes": "control: @ann [c](http://control.example/) {{hello_world}}"}})
        assert r.status_code == 204
        page = redmine_server.api("GET", f"/issues/{ref.id}", headers={"Accept": "text/html"}).text
    finally:
        redmine_server.rails("Setting.text_formatting = 'textile'")
    assert 'href="http://control.example/"' in page and page.count("user-mention") == 1
    assert page.count("Hello world!") == 1
    assert "<img src=x" not in page and "<strong>bold</strong>" not in page
    assert "evil.example" in page and 'href="http://evil.example' not in page


def _kill9_transitions(n: int, t0: float) -> list[tuple[float, list[AlertTransition]]]:
    """Per incident: fire (warning), escalate, de-escalate; every other one resolves. Grouped by time."""
    steps: dict[float, list[AlertTransition]] = {}
    tag = secrets.token_hex(4)
    for i in range(n):
        labels = (("host", "web1"), ("instance", f"kill9-{tag}-{i}"))
        base = Alert(rule="Kill9Disk", group="disk", labels=labels, identity=labels, state=AlertState.FIRING,
                     severity="warning", value=0.91, active_since=t0, fired_at=t0, threshold="> 0.9")
        crit = dataclasses.replace(base, severity="critical", value=0.97)
        steps.setdefault(t0, []).append(AlertTransition(base, TransitionKind.FIRING, t0))
        steps.setdefault(t0 + 30, []).append(AlertTransition(crit, TransitionKind.ESCALATED, t0 + 30))
        steps.setdefault(t0 + 60, []).append(AlertTransition(base, TransitionKind.DEESCALATED, t0 + 60))
        if i % 2 == 0:
            gone = dataclasses.replace(base, state=AlertState.INACTIVE, resolved_at=t0 + 90)
            steps.setdefault(t0 + 90, []).append(AlertTransition(gone, TransitionKind.RESOLVED, t0 + 90))
    return sorted(steps.items())


# like tests/reliability and test_incidents_kill9: the long variant runs only when asked for
only_when_slow = pytest.mark.skipif(os.environ.get("HOSTWARDEN_SLOW", "") != "1",
                                    reason="slow kill -9 variant: set HOSTWARDEN_SLOW=1 to run it")


def _kill9_against_redmine(server: RedmineServer, tmp_path: Path, *, iterations: int, incidents: int) -> None:
    """SIGKILL the delivering process at random points `iterations` times (restarting it each time), then let it
    finish; Redmine must end with exactly one issue per fingerprint, every note and every resolve delivered
    (notes at least once: a note is not idempotent, so a kill between Redmine's answer and the commit
    repeats it). Prints the figures (kills, operations, issues per fingerprint, repeated notes, lost)."""
    seed = int(os.environ.get("HW_KILL9_SEED") or int.from_bytes(os.urandom(4), "big"))
    rnd = random.Random(seed)
    started = time.monotonic()
    state_path = str(tmp_path / "state.db")
    cfg = RedmineConfig(name="ops", type="redmine", url=server.url, project=server.project,
                        api_key_env="HW_TEST_KEY", fingerprint_field=server.cf_name)
    state = StateDB(state_path)
    manager = IncidentManager(TicketsConfig(backends=(cfg,), update_interval=Duration(0), storm_threshold=100_000),
                              state=state, hostname="web1", external_labels={})
    for at, batch in _kill9_transitions(incidents, time.time() - 600):
        manager.handle(batch, at)
    updates = [(r["fingerprint"], json.loads(r["payload"])["event"])
               for r in state.query("SELECT fingerprint, payload FROM outbox WHERE op = 'update' ORDER BY id")]
    fingerprints = sorted({r["fingerprint"] for r in state.query("SELECT fingerprint FROM incidents")})
    resolved = {r["fingerprint"] for r in state.query("SELECT fingerprint FROM incidents WHERE status = 'resolved'")}
    operations = state.query("SELECT COUNT(*) AS n FROM outbox")[0]["n"]
    n_resolved = (incidents + 1) // 2
    assert len(fingerprints) == incidents and len(updates) == 2 * incidents and len(resolved) == n_resolved
    assert operations == incidents + 2 * incidents + n_resolved
    state.close()

    cmd = [sys.executable, "-m", "tests.integration.servers.outbox_worker_main", state_path, server.url,
           server.project, server.cf_name]
    env = {**os.environ, "HW_TEST_KEY": server.user_key, "PYTHONPATH": ROOT}
    kills = progressed = 0
    pending = operations
    for i in range(iterations):
        log_path = tmp_path / f"worker-{i}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline().strip() == "READY", log_path.read_text()
        time.sleep(rnd.uniform(0.0, KILL9_WINDOW))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        proc.stdout.close()
        left = _pending(state_path)
        progressed += left < pending
        pending = left
        if left == 0:
            break
    final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert final.returncode == 0 and "DONE" in final.stdout, (seed, final.stderr[-3000:])
    assert kills >= 1, "the worker finished before the first kill: the test proved nothing"
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log")) + final.stderr
    adopted = logs.count("recording it instead of opening another")

    state = StateDB(state_path)
    try:
        rows = state.query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        assert {r["status"]: r["n"] for r in rows} == {"done": operations}, (seed, [dict(r) for r in rows])
        rows = state.query("SELECT fingerprint, ticket_id FROM incidents")
        tickets = {r["fingerprint"]: r["ticket_id"] for r in rows}
    finally:
        state.close()
    issues_per_fp: dict[str, int] = {}
    lost: list[tuple[str, str]] = []
    repeated_notes = 0
    wrong_status: list[str] = []
    for fp in fingerprints:
        found = server.api("GET", "/issues.json", params={
            "project_id": server.project, "status_id": "*", f"cf_{server.cf_id}": fp}).json()
        issues_per_fp[fp] = int(found["total_count"])
        if found["total_count"] != 1:
            continue
        issue_id = found["issues"][0]["id"]
        assert tickets[fp] == str(issue_id), (seed, fp)
        got = issue(server, TicketRef("ops", str(issue_id)))
        notes = [j["notes"] for j in got["journals"] if j["notes"]]
        for ufp, text in updates:
            if ufp == fp:
                hits = sum(1 for n in notes if text in n)
                lost += [(fp, text)] if hits == 0 else []
                repeated_notes += max(0, hits - 1)
        if got["status"]["name"] != ("Resolved" if fp in resolved else "New"):
            wrong_status.append(fp)
    duplicates = sum(n - 1 for n in issues_per_fp.values() if n > 1)
    figures = {"seed": seed, "iterations": iterations, "kills": kills, "incidents": incidents,
               "operations": operations, "iterations_with_progress": progressed,
               "pending_after_kills": left, "issues": sum(issues_per_fp.values()),
               "issues_per_fingerprint": sorted(set(issues_per_fp.values())), "duplicate_issues": duplicates,
               "adopted_after_kill": adopted, "repeated_notes": repeated_notes, "lost_notes": len(lost),
               "wrong_status": len(wrong_status), "run_seconds": round(time.monotonic() - started, 1)}
    print(f"kill -9 against Redmine: {json.dumps(figures)}")
    assert set(issues_per_fp.values()) == {1}, (seed, kills, {fp: n for fp, n in issues_per_fp.items() if n != 1})
    assert not lost, (seed, kills, lost[:5])
    assert not wrong_status, (seed, wrong_status[:5])
    assert kills >= iterations * 0.9, figures  # the work lasted across (nearly) every kill


def test_redmine_outbox_worker_killed_9_times_one_issue_per_fingerprint_all_notes(
        redmine_server: RedmineServer, tmp_path: Path) -> None:
    """20 kills over 12 incidents (42 operations); the slow variant below does 200."""
    _kill9_against_redmine(redmine_server, tmp_path, iterations=20, incidents=KILL9_INCIDENTS)


@pytest.mark.slow
@only_when_slow
def test_redmine_outbox_worker_killed_9_200_times_one_issue_per_fingerprint_all_notes(
        redmine_server: RedmineServer, tmp_path: Path) -> None:
    _kill9_against_redmine(redmine_server, tmp_path, iterations=200, incidents=KILL9_SLOW_INCIDENTS)


def _pending(state_path: str) -> int:
    with sqlite3.connect(state_path, timeout=10) as c:
        return int(c.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0])
