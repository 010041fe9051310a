"""Contract tests of the `github` backend against a local server speaking GitHub's (and Gitea's) issues API."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from hostwarden.agent.core.incident import PermanentError, TicketRef, TransientError
from hostwarden.exporters.tickets.github import MAX_BODY, GitHubBackend, GitHubConfig, marker
from hostwarden.exporters.tickets.render import render_body, render_event

from tests.contract.fake_github import FakeGitHub
from tests.contract.incidents import HOSTILE, make_incident, resolved

TOKEN = "ghp_secret_token"


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    server = FakeGitHub(token=TOKEN).start()
    yield server
    server.stop()


def backend(server: FakeGitHub, **kw: object) -> GitHubBackend:
    cfg = dict(name="gh", type="github", repo="acme/ops", api_url=server.url, token_env="GH_TOKEN",
               flavor=server.flavor, timeout=5.0) | kw
    return GitHubBackend(GitHubConfig(**cfg))  # type: ignore[arg-type]


def test_github_lifecycle_open_find_update_resolve_reopen_sends_documented_requests(gh: FakeGitHub) -> None:
    b = backend(gh, priority_labels={"P2": "priority/high"}, assignees=["oncall"], fields={"milestone": 3})
    inc = make_incident()
    label = f"hostwarden:{inc.fingerprint}"
    assert b.find(inc.fingerprint) is None

    ref = b.open(inc)
    assert ref == TicketRef("gh", "1", "https://github.example/acme/ops/issues/1")
    create = gh.calls("POST", r"/repos/acme/ops/issues")[0]
    assert create.headers["authorization"] == f"Bearer {TOKEN}"
    assert create.headers["accept"] == "application/vnd.github+json"
    assert create.headers["x-github-api-version"] == "2022-11-28"
    assert create.body == {
        "title": "FilesystemAlmostFull on web1 /srv",
        "body": render_body(inc, "markdown", max_len=MAX_BODY - 100) + "\n" + marker(inc.fingerprint) + "\n",
        "labels": [label, "hostwarden", "priority/high"], "assignees": ["oncall"], "milestone": 3}

    assert b.find(inc.fingerprint) == ref
    listing = gh.calls("GET", r"/repos/acme/ops/issues")[-1]
    assert listing.q("state") == "all" and listing.q("labels") == label and listing.q("per_page") == "50"

    b.update(ref, inc, "escalated: warning -> critical")
    comment = gh.calls("POST", r"/repos/acme/ops/issues/1/comments")[0]
    assert comment.body == {"body": render_event(inc, "escalated: warning -> critical", "markdown")}

    b.resolve(ref, resolved(inc))
    patch = gh.calls("PATCH", r"/repos/acme/ops/issues/1")[0]
    assert patch.body == {"state": "closed", "state_reason": "completed"}
    assert gh.issues[1]["state"] == "closed" and gh.issues[1]["state_reason"] == "completed"
    assert len(gh.comments[1]) == 2
    assert b.find(inc.fingerprint) is None  # the closed issue belongs to an incident that ended

    b.reopen(ref, inc)
    assert gh.calls("PATCH", r"/repos/acme/ops/issues/1")[-1].body == {"state": "open"}
    assert gh.issues[1]["state"] == "open"
    assert b.find(inc.fingerprint) == ref
    assert len(gh.issues) == 1


def test_github_find_skips_pull_requests_and_follows_pages(gh: FakeGitHub) -> None:
    b = backend(gh)
    inc = make_incident()
    ref = b.open(inc)
    label = f"hostwarden:{inc.fingerprint}"
    for _ in range(55):  # newer closed issues with the same label push the open one to page 2
        n = gh.add_pull_request([label])
        gh.issues[n].pop("pull_request")
        gh.issues[n]["state"] = "closed"
    gh.add_pull_request([label])  # the newest: a pull request, which must never be taken for the ticket
    gh.clear_log()
    assert b.find(inc.fingerprint) == ref
    pages = [r.q("page") for r in gh.calls("GET", r"/repos/acme/ops/issues")]
    assert pages == ["1", "2"]


def test_github_untrusted_text_cannot_mention_or_reference(gh: FakeGitHub) -> None:
    b = backend(gh)
    inc = make_incident(labels={"team": HOSTILE}, title=f"disk full {HOSTILE}", diagnosis=HOSTILE)
    b.open(inc)
    body = gh.issues[1]["body"]
    title = gh.issues[1]["title"]
    assert "@admin" not in title and "#1" not in title  # a word joiner sits after @ and #
    assert "@\u2060admin" in title
    assert body.count("@admin") >= 2  # the label and the diagnosis are both there…
    prose = strip_code(body)
    assert "@admin" not in prose and "#1" not in prose and "<img" not in prose  # …but only as code


def strip_code(markdown: str) -> str:
    """The Markdown outside fenced blocks and code spans (what GitHub would parse for mentions/links)."""
    out, fence = [], ""
    for line in markdown.splitlines():
        m = re.match(r"^(`{3,})", line)
        if fence:
            if m and len(m.group(1)) >= len(fence) and line.strip("`") == "":
                fence = ""
            continue
        if m:
            fence = m.group(1)
            continue
        out.append(re.sub(r"(`+)(?:(?!\1).)*?\1", "", line))
    return "\n".join(out)


@pytest.mark.parametrize(("status", "headers", "error", "retry"), [
    (401, {}, PermanentError, None),
    (404, {}, PermanentError, None),
    (409, {}, PermanentError, None),
    (410, {}, PermanentError, None),
    (422, {}, PermanentError, None),
    (429, {"retry-after": "30"}, TransientError, 30.0),
    (403, {"retry-after": "45"}, TransientError, 45.0),  # secondary rate limit
    (500, {}, TransientError, None),
    (502, {}, TransientError, None),
])
def test_github_error_statuses_map_to_retry_decision(gh: FakeGitHub, status: int, headers: dict[str, str],
                                                     error: type, retry: float | None) -> None:
    b = backend(gh)
    gh.fail_next("POST", r"/repos/acme/ops/issues", status, {"message": "x", "documentation_url": "d"}, headers)
    with pytest.raises(error) as exc:
        b.open(make_incident())
    if retry is not None:
        assert exc.value.retry_after == pytest.approx(retry)
    assert TOKEN not in str(exc.value)
    assert gh.issues == {}


def test_github_bad_token_is_permanent_and_redacted(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN", "wrong-token-value")
    with pytest.raises(PermanentError, match="401") as exc:
        backend(gh).find("0123456789abcdef")
    assert "wrong-token-value" not in str(exc.value)


def test_github_exhausted_rate_limit_is_transient_until_reset_without_requests(gh: FakeGitHub) -> None:
    b = backend(gh)
    gh.rate_remaining = 0
    gh.rate_reset = int(time.time()) + 120
    with pytest.raises(TransientError) as exc:
        b.open(make_incident())
    assert 100 <= exc.value.retry_after <= 121
    before = len(gh.requests)
    with pytest.raises(TransientError):
        b.find("0123456789abcdef")
    assert len(gh.requests) == before  # failed fast: no request while the limit is exhausted


def test_github_comment_on_deleted_issue_is_permanent(gh: FakeGitHub) -> None:
    b = backend(gh)
    with pytest.raises(PermanentError, match="404"):
        b.update(TicketRef("gh", "99"), make_incident(), "x")


def test_github_poll_reports_closed_assigned_and_missing(gh: FakeGitHub) -> None:
    b = backend(gh)
    r1, r2, r3 = (b.open(make_incident()) for _ in range(3))
    gh.issues[int(r1.id)]["assignees"] = [{"login": "alice"}]
    gh.issues[int(r2.id)]["state"] = "closed"
    del gh.issues[int(r3.id)]
    states = {s.ref.id: (s.state, s.assignee) for s in b.poll([r1, r2, r3, TicketRef("other", "1")])}
    assert states == {r1.id: ("acknowledged", "alice"), r2.id: ("closed", ""), r3.id: ("missing", "")}


def test_github_dry_run_sends_nothing(gh: FakeGitHub) -> None:
    b = backend(gh, dry_run=True)
    inc = make_incident()
    ref = b.open(inc)
    assert ref.id == f"dry-run-{inc.fingerprint}"
    b.update(ref, inc, "x")
    b.resolve(ref, resolved(inc))
    assert b.find(inc.fingerprint) is None
    assert gh.requests == []


def test_gitea_flavor_creates_label_ids_and_uses_token_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    server = FakeGitHub(token=TOKEN, flavor="gitea").start()
    try:
        b = backend(server, api_url=server.url + "/api/v1")
        inc = make_incident()
        ref = b.open(inc)
        create = server.calls("POST", r"/api/v1/repos/acme/ops/issues")[0]
        assert create.headers["authorization"] == f"token {TOKEN}"
        assert create.body["labels"] == [1, 2]  # ids of the labels it created
        assert [r.body for r in server.calls("POST", r"/api/v1/repos/acme/ops/labels")] == [
            {"name": f"hostwarden:{inc.fingerprint}", "color": "#ededed"}, {"name": "hostwarden", "color": "#ededed"}]
        assert b.find(inc.fingerprint) == ref
        assert server.calls("GET", r"/api/v1/repos/acme/ops/issues")[-1].q("type") == "issues"
        b.resolve(ref, resolved(inc))
        assert server.calls("PATCH", r"/api/v1/repos/acme/ops/issues/1")[0].body == {"state": "closed"}
        b.open(make_incident())  # the shared label is reused, not created again
        assert len(server.calls("POST", r"/api/v1/repos/acme/ops/labels")) == 3
    finally:
        server.stop()


def test_github_config_validation_reports_every_problem() -> None:
    cfg = GitHubConfig(name="gh", repo="not a repo", api_url="ftp://x", priority_labels={"P9": "x"},
                       fields={"title": "x"}, labels=["x" * 60])
    problems = cfg.validate()
    assert any("owner/name" in p for p in problems)
    assert any("api_url" in p for p in problems)
    assert any("token_env" in p for p in problems)
    assert any("P9" in p for p in problems)
    assert any("fields must not set title" in p for p in problems)
    assert any("longer than 50" in p for p in problems)
