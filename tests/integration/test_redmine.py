"""The `redmine` backend against a real Redmine 5 (Debian's package, SQLite) on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.tickets.redmine import RedmineBackend, RedmineConfig

from tests.integration.servers.redmine import RedmineServer
from tests.support.agent import free_port
from tests.support.kill9 import Kill9Target, Ticket, only_when_slow, run_kill9
from tests.support.ticket_incidents import make_incident

pytestmark = pytest.mark.integration

# A worker is READY 0.3 s after it starts, spends ~0.3 s discovering Redmine (statuses, field, project) on its first
# call, then delivers ~6 operations/s: kills land uniformly in the first KILL9_WINDOW seconds, so most of them hit
# a delivery (find, create, note, status change, or between Redmine's answer and the commit).
KILL9_WINDOW = 1.2


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


def redmine_kill9_target(server: RedmineServer) -> Kill9Target:
    """Issues per fingerprint found by the custom field (any status); notes from the journals."""
    def tickets(fp: str) -> list[str]:
        r = server.api("GET", "/issues.json", params={"project_id": server.project, "status_id": "*",
                                                       f"cf_{server.cf_id}": fp, "limit": 100})
        assert r.status_code == 200, r.text
        found = r.json()
        assert found["total_count"] == len(found["issues"]), found["total_count"]
        return [str(i["id"]) for i in found["issues"]]

    def read(ticket_id: str) -> Ticket:
        got = issue(server, TicketRef("ops", ticket_id))
        return Ticket([j["notes"] for j in got["journals"] if j["notes"]], got["status"]["name"])

    return Kill9Target(label="Redmine", kind="redmine", settings={
        "url": server.url, "project": server.project, "api_key_env": "HW_TEST_KEY",
        "fingerprint_field": server.cf_name}, env={"HW_TEST_KEY": server.user_key}, open_status="New",
        resolved_status="Resolved", tickets=tickets, read=read)


def test_redmine_outbox_worker_killed_9_times_one_issue_per_fingerprint_all_notes(
        redmine_server: RedmineServer, tmp_path: Path) -> None:
    """20 kills; the slow variant below does 200."""
    run_kill9(redmine_kill9_target(redmine_server), tmp_path, iterations=20, window=KILL9_WINDOW)


@pytest.mark.slow
@only_when_slow
def test_redmine_outbox_worker_killed_9_200_times_one_issue_per_fingerprint_all_notes(
        redmine_server: RedmineServer, tmp_path: Path) -> None:
    run_kill9(redmine_kill9_target(redmine_server), tmp_path, iterations=200, window=KILL9_WINDOW)
