"""Runbook links in tickets: the IncidentManager resolves a relative `runbook_url` against its base, in the
incident it records (what every backend renders) and in the alert its diagnosis sees; absolute ones stay."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.state import StateDB

from tests.support.incidents import HOST, alert, firing, tickets_config

T0 = 1_700_000_000.0
BASE = "http://web-01:19842/"


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    state = StateDB(str(tmp_path / "state.db"))
    yield state
    state.close()


@pytest.mark.parametrize(("written", "expected"), [
    ("docs/runbooks.md#hosthighcpuusage", BASE + "docs/runbooks.md#hosthighcpuusage"),
    ("https://wiki.example.com/cpu", "https://wiki.example.com/cpu"),
])
def test_incident_runbook_url_resolved_in_the_ticket_and_the_diagnosis(db: StateDB, written: str,
                                                                      expected: str) -> None:
    seen: list[str] = []
    m = IncidentManager(tickets_config("{}"), state=db, hostname=HOST, external_labels={"host": HOST},
                        diagnose=lambda a, now: seen.append(a.annotation("runbook_url")) or "diag")
    m.runbook_base_url = BASE  # what the agent sets from web.runbook_base_url
    a = alert(at=T0)
    a = dataclasses.replace(a, annotations=(*a.annotations, ("runbook_url", written)))
    m.handle([firing(a)], T0)
    assert seen == [expected]
    payload = json.loads(db.query("SELECT payload FROM outbox")[0]["payload"])
    assert dict(payload["incident"]["alert"]["annotations"])["runbook_url"] == expected
    _backend, preview = m.preview(a, T0)
    assert preview.alert.annotation("runbook_url") == expected


def test_incident_runbook_url_kept_without_base(db: StateDB) -> None:
    m = IncidentManager(tickets_config("{}"), state=db, hostname=HOST, external_labels={"host": HOST})
    a = alert(at=T0)
    a = dataclasses.replace(a, annotations=(("runbook_url", "docs/runbooks.md#x"),))
    m.handle([firing(a)], T0)
    payload = json.loads(db.query("SELECT payload FROM outbox")[0]["payload"])
    assert dict(payload["incident"]["alert"]["annotations"])["runbook_url"] == "docs/runbooks.md#x"
