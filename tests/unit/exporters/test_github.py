"""Pure parts of the `github` backend. (HTTP: tests/contract/test_github.py.)"""

from __future__ import annotations

from hostwarden.exporters.tickets.github import GitHubBackend, GitHubConfig, marker, neutralise_title

from tests.contract.incidents import make_incident
from tests.support.doc_examples import parse_tickets_example


def test_github_documented_examples_are_valid() -> None:
    cfg, problems = parse_tickets_example("github")
    assert problems == []
    gh, forge = cfg.backends
    assert (gh.flavor, gh.api_url) == ("github", "https://api.github.com")
    assert (forge.flavor, forge.api_url) == ("gitea", "https://git.example.com/api/v1")


def test_neutralise_title_breaks_mentions_and_references_only() -> None:
    assert neutralise_title("disk @ops-team #12 on a#b") == "disk @\u2060ops-team #\u206012 on a#\u2060b"
    assert neutralise_title("50% @ 3 # done") == "50% @ 3 # done"


def test_github_payload_labels_and_marker() -> None:
    b = GitHubBackend(GitHubConfig(name="g", repo="a/b", token_env="X", dry_run=True,
                                   priority_labels={"P2": "prio/high"}, category_label_prefix="area/",
                                   fields={"milestone": 1, "labels": ["ignored"]}))
    inc = make_incident(category="disk io,x")
    p = b._issue_payload(inc)
    assert p["labels"] == [f"hostwarden:{inc.fingerprint}", "hostwarden", "prio/high", "area/disk-io-x"]
    assert p["body"].rstrip().endswith(marker(inc.fingerprint)) and p["milestone"] == 1
