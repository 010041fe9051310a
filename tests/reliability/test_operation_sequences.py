"""Operation sequences against the real thing (issue 13): a seeded random driver runs a real `hostwarden run`
process and the real CLI through what an operator does in an ordinary hour — alerts firing and clearing
(textfile values), SIGHUP with valid and invalid configs, the webhook backend added and removed from the
config, `tickets list/show/ack/comment/resolve`, `kill -9` and restart, the webhook receiver (a loopback
HTTP server) going down and up — and checks invariants after every step:

- no `(deleted)` database file among the agent's descriptors (/proc/<pid>/fd);
- each incident has at most one ticket per backend (local tickets per fingerprint ≤ incident rows routed to
  the local backend; distinct webhook opens per fingerprint ≤ incident rows routed to the webhook), and a
  local ticket an incident refers to exists (never "missing");
- every CLI action that reported success is in the ticket store (checked after each restart and at the end,
  after the agent stopped);
at the end, after healing (receiver up, a valid config with the webhook, SIGHUP): the outbox drains, the
webhook opens match the recorded tickets exactly, the report's MTTA/MTTR equal those computed from the
recorded times, and every incident acknowledgement carries the time of a person's acknowledgement.

Default: 200 operations (`HOSTWARDEN_SEQ_OPS`), seed from `HOSTWARDEN_SEQ_SEED` or random; the seed is printed
with any failure. The slow variant (HOSTWARDEN_SLOW=1) runs 5,000."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.agentprobe import record
from tests.support.agent import AgentProcess, free_port, run_cli, start_agent
from tests.support.webhook_receiver import CountingReceiver

pytestmark = pytest.mark.integration

DEFAULT_OPS = int(os.environ.get("HOSTWARDEN_SEQ_OPS", "200"))
SLOW_OPS = 5000
ALERTS = {"a0": "local", "a1": "local", "a2": "local", "h0": "hook", "h1": "hook"}
RULES = """groups:
  - name: seq
    interval: 1s
    rules:
      - alert: SeqAlert
        expr: seq_value > 0
        labels: {severity: warning}
        annotations: {summary: "seq {{ $labels.name }}"}
"""
BROKEN_RULES = RULES + """      - alert: Broken
        expr: rate(seq_value[1m]
"""


@dataclass
class Action:
    ticket: int
    kind: str  # acknowledged | comment | resolved
    author: str
    text: str = ""
    at: float | None = None  # the ticket's acknowledged_at right after a successful ack


@dataclass
class World:
    tmp: Path
    receiver: CountingReceiver
    rng: random.Random
    port: int = field(default_factory=free_port)
    agent: AgentProcess | None = None
    with_hook: bool = True
    hook_up: bool = True
    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALERTS, 0))
    actions: list[Action] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def cfg(self) -> Path:
        return self.tmp / "hostwarden.yaml"

    def write_config(self, *, with_hook: bool, bad_token: bool = False) -> None:
        token = self.tmp / ("token-dir" if bad_token else "token")
        hook = (f"    - {{name: hook, type: webhook, url: '{self.receiver.url}', token_file: {token}, timeout: 1s}}\n"
                if with_hook else "")
        route = "  route:\n    - {match: {dest: hook}, backend: hook}\n" if with_hook else ""
        self.cfg.write_text(
            f"global:\n  interval: 1s\n  state_dir: {self.state_dir}\n  hostname: seqhost\n"
            f"web:\n  listen_address: 127.0.0.1:{self.port}\n"
            f"collectors:\n  textfile: {{directory: {self.tmp / 'textfile'}}}\n"
            f"rule_files: [{self.tmp / 'rules.yaml'}]\n"
            f"tickets:\n  reopen_window: 1h\n  storm_threshold: 100\n  update_interval: 1s\n"
            f"  backends:\n    - {{name: local, type: local}}\n{hook}{route}")

    def write_values(self) -> None:
        body = "".join(f'seq_value{{name="{n}",dest="{d}"}} {self.values[n]}\n' for n, d in ALERTS.items())
        tmp = self.tmp / "textfile" / ".seq.tmp"
        tmp.write_text(body)
        os.replace(tmp, self.tmp / "textfile" / "seq.prom")

    def reload_marks(self) -> int:
        assert self.agent is not None
        text = self.agent.log_text()
        return text.count("configuration reloaded") + text.count("configuration reload failed")


def db_rows(path: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    """Read-only, from this (test) process: a separate process, as the CLI is."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def deleted_fds(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)") and ".db" in target:
            out.append(target)
    return out


def local_tickets(w: World) -> list[sqlite3.Row]:
    return db_rows(w.state_dir / "tickets.db", "SELECT * FROM tickets ORDER BY id")


def webhook_opens(w: World) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in w.receiver.distinct():
        if r.op == "open":
            out[r.fingerprint] = out.get(r.fingerprint, 0) + 1
    return out


# -- invariants ------------------------------------------------------------------------------------------------

def check_step(w: World) -> None:
    if w.agent is not None and w.agent.proc.poll() is None:
        assert deleted_fds(w.agent.proc.pid) == [], "a database file of the agent was deleted under it"
    incidents = db_rows(w.state_dir / "state.db", "SELECT id, fingerprint, backend, ticket_id FROM incidents "
                                                  "WHERE is_storm = 0")
    rows_per: dict[tuple[str, str], int] = {}
    for r in incidents:
        rows_per[(r["backend"], r["fingerprint"])] = rows_per.get((r["backend"], r["fingerprint"]), 0) + 1
    tickets = local_tickets(w)
    per_fp: dict[str, int] = {}
    for t in tickets:
        per_fp[t["fingerprint"]] = per_fp.get(t["fingerprint"], 0) + 1
    for fp, n in per_fp.items():
        assert n <= rows_per.get(("local", fp), 0), f"{n} local tickets for {fp}, incidents {rows_per}"
    for fp, n in webhook_opens(w).items():
        assert n <= rows_per.get(("hook", fp), 0), f"{n} webhook tickets for {fp}, incidents {rows_per}"
    ids = {str(t["id"]) for t in tickets}
    for r in incidents:
        if r["backend"] == "local" and r["ticket_id"] is not None:
            assert r["ticket_id"] in ids, f"incident {r['id']} refers to local ticket {r['ticket_id']}: missing"
    muted = db_rows(w.state_dir / "state.db", "SELECT text FROM incident_events WHERE kind = 'closed_by_person' "
                                              "AND text LIKE 'Ticket missing%'")
    assert muted == [], f"an incident was muted because its ticket went missing: {muted[0]['text']}"


def check_actions(w: World) -> None:
    """Every CLI action that reported success is in the ticket store."""
    events = db_rows(w.state_dir / "tickets.db", "SELECT ticket_id, kind, author, text FROM events")
    have = {(e["ticket_id"], e["kind"], e["author"], e["text"]) for e in events}
    have_kinds = {(e["ticket_id"], e["kind"], e["author"]) for e in events}
    for a in w.actions:
        if a.text:
            assert (a.ticket, a.kind, a.author, a.text) in have, f"lost: {a}"
        else:
            assert (a.ticket, a.kind, a.author) in have_kinds, f"lost: {a}"


# -- operations ------------------------------------------------------------------------------------------------

def op_fire(w: World) -> None:
    name = w.rng.choice(list(ALERTS))
    w.values[name] = 1 - w.values[name]
    w.write_values()


def op_wait(w: World) -> None:
    time.sleep(w.rng.uniform(0.1, 0.6))


def _sighup(w: World) -> None:
    assert w.agent is not None
    before = w.reload_marks()
    w.agent.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while w.reload_marks() <= before:
        assert time.monotonic() < deadline, "no reload outcome logged within 20 s"
        assert w.agent.proc.poll() is None, "the agent died on SIGHUP"
        time.sleep(0.05)


def op_sighup_valid(w: World) -> None:
    w.with_hook = w.rng.random() < 0.7  # the webhook backend added or removed
    w.write_config(with_hook=w.with_hook)
    _sighup(w)
    assert "configuration reloaded" in w.agent.log_text().rsplit("received SIGHUP", 1)[-1]  # type: ignore[union-attr]


def op_sighup_invalid(w: World) -> None:
    if w.rng.random() < 0.5:
        (w.tmp / "rules.yaml").write_text(BROKEN_RULES)
    else:
        w.write_config(with_hook=True, bad_token=True)
    _sighup(w)
    assert "configuration reload failed" in w.agent.log_text().rsplit("received SIGHUP", 1)[-1]  # type: ignore[union-attr]
    (w.tmp / "rules.yaml").write_text(RULES)  # the files as the running config has them (for a restart)
    w.write_config(with_hook=w.with_hook)


def _cli(w: World, *args: str) -> Any:
    return run_cli(*args, "--config", str(w.cfg), timeout=60)


def op_list(w: World) -> None:
    res = _cli(w, "tickets", "list", "--format", "json")
    assert res.returncode == 0, res.stderr
    listed = {t["id"] for t in json.loads(res.stdout)}
    assert {t["id"] for t in local_tickets(w)} >= listed


def _some_ticket(w: World) -> int | None:
    tickets = local_tickets(w)
    return int(w.rng.choice(tickets)["id"]) if tickets else None


def op_show(w: World) -> None:
    tid = _some_ticket(w)
    if tid is None:
        return
    res = _cli(w, "tickets", "show", str(tid), "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["id"] == tid


def op_act(w: World) -> None:
    tid = _some_ticket(w)
    if tid is None:
        return
    kind = w.rng.choice(["ack", "ack", "comment", "resolve"])
    author = w.rng.choice(["alice", "bob"])
    args = ["tickets", kind, str(tid), "--by", author]
    text = ""
    if kind == "comment":
        text = f"note {w.rng.randrange(10**9)}"
        args.insert(3, text)
    res = _cli(w, *args)
    if res.returncode != 0:
        assert res.returncode == 1 and ("only new or reopened" in res.stderr or "already" in res.stderr), res.stderr
        return
    named = {"ack": "acknowledged", "comment": "comment", "resolve": "resolved"}[kind]
    at = None
    if kind == "ack":
        (row,) = db_rows(w.state_dir / "tickets.db", "SELECT acknowledged_at FROM tickets WHERE id = ?", (tid,))
        at = float(row["acknowledged_at"])
    w.actions.append(Action(tid, named, author, text, at))


def op_kill9(w: World) -> None:
    assert w.agent is not None
    w.agent.kill()
    check_actions(w)
    w.agent = start_agent(w.cfg)
    check_actions(w)


def op_hook_toggle(w: World) -> None:
    if w.hook_up:
        w.receiver.down()
    else:
        w.receiver.up()
    w.hook_up = not w.hook_up


OPERATIONS: list[tuple[Callable[[World], None], int]] = [
    (op_fire, 30), (op_wait, 12), (op_list, 8), (op_show, 6), (op_act, 22), (op_sighup_valid, 6),
    (op_sighup_invalid, 4), (op_kill9, 2), (op_hook_toggle, 6),
]


# -- the end: heal, drain, report ---------------------------------------------------------------------------------

def occurrences(w: World) -> list[tuple[float, float | None, float | None]]:
    """(start, ack, end) of every occurrence, from the state database's recorded events."""
    events = db_rows(w.state_dir / "state.db", "SELECT e.incident_id, e.at, e.kind FROM incident_events e "
                                               "JOIN incidents i ON i.id = e.incident_id WHERE i.is_storm = 0 AND "
                                               "e.kind IN ('opened', 'reopened', 'acknowledged', 'resolved') "
                                               "ORDER BY e.incident_id, e.id")
    out: list[list[Any]] = []
    current: dict[int, list[Any]] = {}
    for e in events:
        iid, at, kind = e["incident_id"], float(e["at"]), e["kind"]
        if kind in ("opened", "reopened"):
            current[iid] = [at, None, None]
            out.append(current[iid])
        elif iid in current:
            o = current[iid]
            if kind == "acknowledged" and o[1] is None and o[2] is None:
                o[1] = at
            elif kind == "resolved" and o[2] is None:
                o[2] = at
    return [(o[0], o[1], o[2]) for o in out]


def check_end(w: World) -> None:
    w.receiver.up()
    w.hook_up = True
    w.with_hook = True
    w.write_config(with_hook=True)
    _sighup(w)  # a fresh outbox worker: no backoff left over from the outage
    deadline = time.monotonic() + 60
    while db_rows(w.state_dir / "state.db", "SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1"):
        assert time.monotonic() < deadline, "the outbox did not drain after healing"
        time.sleep(0.2)
    dead = db_rows(w.state_dir / "state.db", "SELECT op, last_error FROM outbox WHERE status = 'dead'")
    assert dead == [], f"dead-lettered operations: {[dict(r) for r in dead]}"
    time.sleep(11)  # one local poll (10 s): people's acknowledgements reach their incidents
    check_step(w)
    recorded = db_rows(w.state_dir / "state.db", "SELECT fingerprint, COUNT(*) AS n FROM incidents WHERE "
                                                 "backend = 'hook' AND ticket_id IS NOT NULL GROUP BY fingerprint")
    assert webhook_opens(w) == {r["fingerprint"]: r["n"] for r in recorded}
    # report MTTA/MTTR agree with the recorded times
    res = _cli(w, "report", "--since", "1d", "--format", "json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)["incidents"]
    occ = occurrences(w)
    tta = [a - s for s, a, _ in occ if a is not None]
    ttr = [e - s for s, _, e in occ if e is not None]
    assert rep["count"] == len(occ)
    for key, xs in (("mtta_seconds", tta), ("mttr_seconds", ttr)):
        want = sum(xs) / len(xs) if xs else None
        assert (rep[key] is None) == (want is None) and (want is None or abs(rep[key] - want) < 1e-6), (key, rep)
    # an incident's acknowledgement is a person's: the time they acknowledged its ticket
    ack_times = {a.at for a in w.actions if a.kind == "acknowledged"}
    for r in db_rows(w.state_dir / "state.db", "SELECT at FROM incident_events WHERE kind = 'acknowledged'"):
        assert float(r["at"]) in ack_times, f"an incident acknowledgement at {r['at']} no person made"
    assert w.agent is not None
    assert w.agent.stop() == 0, w.agent.log_text()[-3000:]
    check_actions(w)  # after the agent stopped


def run_sequence(tmp_path: Path, ops: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    receiver = CountingReceiver().up()
    w = World(tmp_path, receiver, rng)
    (tmp_path / "textfile").mkdir()
    (tmp_path / "token-dir").mkdir()
    (tmp_path / "token").write_text("seq-token\n")
    (tmp_path / "rules.yaml").write_text(RULES)
    w.write_values()
    w.write_config(with_hook=True)
    started = time.monotonic()
    step, name = -1, "start"
    try:
        w.agent = start_agent(w.cfg)
        funcs, weights = zip(*OPERATIONS, strict=True)
        for i in range(ops):
            step = i
            fn = rng.choices(funcs, weights)[0]
            name = fn.__name__
            w.counts[name] = w.counts.get(name, 0) + 1
            fn(w)
            check_step(w)
        step, name = ops, "end"
        check_end(w)
    except BaseException as e:
        log_tail = w.agent.log_text()[-4000:] if w.agent is not None else ""
        raise AssertionError(f"operation sequence failed: seed={seed} (HOSTWARDEN_SEQ_SEED={seed}) step={step} "
                             f"op={name}: {type(e).__name__}: {e}\n--- agent log (tail) ---\n{log_tail}") from e
    finally:
        if w.agent is not None:
            w.agent.kill()
        receiver.close()
    return {"seconds": time.monotonic() - started, "counts": w.counts, "actions": len(w.actions),
            "tickets": len(local_tickets(w)), "webhook_opens": sum(webhook_opens(w).values())}


def _seed() -> int:
    env = os.environ.get("HOSTWARDEN_SEQ_SEED")
    return int(env) if env else random.SystemRandom().randrange(2**32)


def test_operation_sequence_against_real_agent_and_cli(tmp_path: Path) -> None:
    seed = _seed()
    print(f"operation sequence seed={seed}")
    got = run_sequence(tmp_path, DEFAULT_OPS, seed)
    print(f"operation sequence seed={seed}: {json.dumps(got, sort_keys=True)}")
    record("operation sequences", seed=seed, operations=DEFAULT_OPS, **got)
    assert sum(got["counts"].values()) == DEFAULT_OPS
    assert got["counts"].get("op_act", 0) > 0 and got["counts"].get("op_sighup_valid", 0) > 0


@pytest.mark.slow
def test_operation_sequence_slow_5000(tmp_path: Path) -> None:
    seed = _seed()
    print(f"operation sequence seed={seed}")
    got = run_sequence(tmp_path, SLOW_OPS, seed)
    print(f"operation sequence seed={seed}: {json.dumps(got, sort_keys=True)}")
    record("operation sequences (slow)", seed=seed, operations=SLOW_OPS, **got)
