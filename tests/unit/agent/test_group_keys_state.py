"""Groups of the same name in two files and rules with the same alert name and labels, through the state
database and the incident manager: saved alert states and incidents stay apart, older rows still load."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hostwarden.agent.core.alert import AlertState, alert_from_dict, alert_to_dict
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.store import SeriesStore
from hostwarden.agent.incidents.manager import IncidentManager
from hostwarden.agent.incidents.state import StateDB
from hostwarden.rules.alerts import TransitionKind
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import RuleManager

from tests.support.incidents import HOST, alert, tickets_config

GROUP = """
groups:
  - name: EmbeddedExporter
    rules:
      - {alert: Down, expr: 'up{job="JOB"} == 0', labels: {severity: critical}}
"""
DUPLICATES = """
groups:
  - name: g
    rules:
      - {alert: HighLoad, expr: 'load > 2', labels: {severity: warning}}
      - {alert: HighLoad, expr: 'load > 1', labels: {severity: warning}}
"""


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    state = StateDB(str(tmp_path / "state.db"))
    yield state
    state.close()


def load(tmp_path: Path, **files: str) -> list:
    paths = []
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        paths.append(str(tmp_path / f"{name}.yaml"))
    errors = Errors()
    groups = load_rule_files(paths, errors, default_interval=15.0)
    assert not errors.issues, errors.issues
    return groups


def store_with(**series: float) -> SeriesStore:
    store = SeriesStore()
    store.set_retention({}, all_names=math.inf)
    for key, v in series.items():
        name, _, job = key.partition("_")
        store.load_series(name, (("job", job),) if job else (), [(1000.0, v)])
    return store


def test_state_db_saved_alert_states_of_same_named_groups_stay_apart(tmp_path: Path, db: StateDB) -> None:
    groups = load(tmp_path, a=GROUP.replace("JOB", "x"), b=GROUP.replace("JOB", "x"))  # identical rules
    m = RuleManager(groups, external_labels={"host": HOST})
    m.evaluate(groups[1], store_with(up_x=0), 1000)  # only the second file's group fired
    db.save_alert_states(m.export_state())
    rows = db.load_alert_states()
    assert [(r["file"], r["group"]) for r in rows] == [(groups[1].file, "EmbeddedExporter")]
    fresh = RuleManager(load(tmp_path, a=GROUP.replace("JOB", "x"), b=GROUP.replace("JOB", "x")),
                        external_labels={"host": HOST})
    fresh.restore_state(rows, 1010)
    # restored into b's group: a's evaluation fires its own alert, b's has nothing new to say
    assert fresh.evaluate(fresh.groups[1], store_with(up_x=0), 1020) == []
    assert [t.kind for t in fresh.evaluate(fresh.groups[0], store_with(up_x=0), 1020)] == [TransitionKind.FIRING]


def test_state_db_rows_of_older_versions_without_file_still_restore(tmp_path: Path, db: StateDB) -> None:
    groups = load(tmp_path, a=GROUP.replace("JOB", "x"))
    m = RuleManager(groups, external_labels={"host": HOST})
    m.evaluate(groups[0], store_with(up_x=0), 1000)
    old_rows = [{k: v for k, v in r.items() if k != "file"} for r in m.export_state()]
    for r in old_rows:
        del r["alert"]["discriminator"]  # nor this field
    db.save_alert_states(old_rows)
    fresh = RuleManager(load(tmp_path, a=GROUP.replace("JOB", "x")), external_labels={"host": HOST})
    fresh.restore_state(db.load_alert_states(), 1010)
    assert [a.state for a in fresh.active_alerts()] == [AlertState.FIRING]
    db.save_alert_states(fresh.export_state())  # rewritten with the file: one row, not two
    assert [r["file"] for r in db.load_alert_states()] == [groups[0].file]


def test_incidents_of_rules_with_same_alert_name_and_labels_are_separate(tmp_path: Path, db: StateDB) -> None:
    (g,) = load(tmp_path, r=DUPLICATES)
    rules = RuleManager([g], external_labels={"host": HOST})
    incidents = IncidentManager(tickets_config(), state=db, hostname=HOST, external_labels={"host": HOST})
    fired = rules.evaluate(g, store_with(load=3), 1000)
    incidents.handle(fired, 1000)
    opened = db.query("SELECT fingerprint, status FROM incidents ORDER BY id")
    assert len({r["fingerprint"] for r in opened}) == 2 and {r["status"] for r in opened} == {"open"}
    # load drops to 1.5: the first rule resolves, the second still fires; its incident stays open
    resolved = rules.evaluate(g, store_with(load=1.5), 1015)
    assert [t.kind for t in resolved] == [TransitionKind.RESOLVED]
    incidents.handle(resolved, 1015)
    status = {r["fingerprint"]: r["status"] for r in db.query("SELECT fingerprint, status FROM incidents")}
    assert sorted(status.values()) == ["open", "resolved"]
    assert status[resolved[0].alert.fingerprint] == "resolved"


def test_alert_codec_round_trips_the_discriminator() -> None:
    a = alert()
    b = dataclasses.replace(a, discriminator="/etc/r.yaml;g;1")
    assert alert_from_dict(json.loads(json.dumps(alert_to_dict(b)))) == b
    assert alert_from_dict({k: v for k, v in alert_to_dict(a).items() if k != "discriminator"}) == a
    assert b.fingerprint != a.fingerprint
