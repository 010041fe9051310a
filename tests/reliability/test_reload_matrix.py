"""Reload failure matrix (issue 13): a started, real Agent (HTTP server, scheduler, outbox worker, check
runner) delivering to a real loopback webhook receiver. Each broken reload must leave the running agent
exactly as it was — same scheduler jobs, same long-lived threads (alive), same outbox worker, backends,
collectors, rule groups, web security — report `hostwarden_config_last_reload_successful 0`, and still
deliver a ticket opened after the failed reload. A good reload afterwards swaps everything, keeps a
pending outbox operation and the results of unchanged checks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.core.sdnotify import Notifier
from hostwarden.agent.daemon import Agent, load_all

from tests.reliability.agentprobe import parse_exposition, value
from tests.support.agent import free_port
from tests.support.webhook_receiver import CountingReceiver

pytestmark = pytest.mark.integration

RULES = """groups:
  - name: matrix
    interval: 1s
    rules:
      - alert: MatrixCase
        expr: hw_matrix > 0
        labels: {severity: warning}
"""
BROKEN_RULES = RULES + """      - alert: Broken
        expr: rate(node_cpu_seconds_total[5m]
"""


class Setup:
    def __init__(self, tmp: Path, receiver: CountingReceiver, listener_port: int) -> None:
        self.tmp = tmp
        self.receiver = receiver
        self.port = free_port()
        self.listener_port = listener_port
        self.textfile = tmp / "textfile"
        self.textfile.mkdir()
        self.token = tmp / "token"
        self.token.write_text("s3cret\n")
        self.rules = tmp / "rules.yaml"
        self.rules.write_text(RULES)
        self.cfg = tmp / "hostwarden.yaml"
        self.values: dict[str, float] = {}

    def write(self, *, token_file: str | None = None, url: str | None = None, check: str = "",
              web_config: str | None = None) -> None:
        token = token_file or str(self.token)
        hook = url or self.receiver.url
        web = f"  config_file: {web_config}\n" if web_config else ""
        checks = (f"checks:\n  - {{name: port, type: tcp, address: '127.0.0.1:{self.listener_port}', "
                  f"interval: 1s, timeout: 1s}}\n{check}")
        self.cfg.write_text(
            f"global:\n  interval: 1s\n  state_dir: {self.tmp / 'state'}\n  hostname: testhost\n"
            f"web:\n  listen_address: 127.0.0.1:{self.port}\n{web}"
            f"collectors:\n  textfile: {{directory: {self.textfile}}}\n"
            f"rule_files: [{self.rules}]\n{checks}"
            f"tickets:\n  backends:\n    - {{name: hook, type: webhook, url: '{hook}', token_file: {token}, "
            f"timeout: 2s}}\n")

    def fire(self, case: str) -> None:
        self.values[case] = 1
        body = "".join(f'hw_matrix{{case="{c}"}} {v}\n' for c, v in sorted(self.values.items()))
        tmp = self.textfile / ".m.tmp"
        tmp.write_text(body)
        os.replace(tmp, self.textfile / "m.prom")


def opened_cases(receiver: CountingReceiver) -> set[str]:
    out = set()
    for r in receiver.distinct():
        if r.op == "open":
            labels = dict((r.body.get("incident") or {}).get("labels") or {})
            out.add(labels.get("case", ""))
    return out


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def snapshot(agent: Agent) -> dict[str, Any]:
    long_lived = [t for t in threading.enumerate() if t.name.startswith(("outbox-", "checks-", "reload"))]
    return {
        "jobs": sorted((j.id, str(j.trigger)) for j in agent.scheduler.get_jobs()),
        "threads": sorted((t.name, t.ident) for t in long_lived if t.is_alive()),
        "outbox": agent.outbox, "outbox_threads": list(agent.outbox._threads),
        "backends": agent.backends, "collectors": agent.collectors, "checks": agent.checks,
        "incidents": agent.incidents, "config": agent.config, "groups": list(agent.rules.groups),
        "security": agent.server.security if agent.server else None,
    }


def exposed(agent: Agent) -> dict:
    agent.render()
    return parse_exposition(agent.exposition.current().text.decode())


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Agent, Setup]]:
    receiver = CountingReceiver().up()
    listener = __import__("socket").socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    s = Setup(tmp_path, receiver, listener.getsockname()[1])
    s.write()
    config, groups = load_all(str(s.cfg))
    agent = Agent(config, groups, notifier=Notifier(""))
    agent.start()
    try:
        yield agent, s
    finally:
        agent.stop()
        receiver.close()
        listener.close()


def _unreadable_token(s: Setup) -> None:
    d = s.tmp / "token-dir"
    d.mkdir(exist_ok=True)  # a directory cannot be read as a file, even by root
    s.write(token_file=str(d))


def _bad_url(s: Setup) -> None:
    s.write(url="ftp://127.0.0.1/hook")


def _check_fails_to_build(s: Setup) -> None:
    bad_ca = s.tmp / "not-a-ca.pem"
    bad_ca.write_text("this is not a certificate\n")
    s.write(check=f"  - {{name: web, type: http, url: 'https://127.0.0.1:1/', ca_file: {bad_ca}, interval: 1s, "
                  f"timeout: 1s}}\n")


def _rule_parse_error(s: Setup) -> None:
    s.rules.write_text(BROKEN_RULES)
    s.write()


def _web_config_error(s: Setup) -> None:
    web = s.tmp / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: /nonexistent/cert.pem\n  key_file: /nonexistent/key.pem\n"
                   "unknown_key: 1\n")
    s.write(web_config=str(web))


CASES: dict[str, tuple[Callable[[Setup], None], str]] = {  # case -> (how it breaks, what the log says)
    "token": (_unreadable_token, "token: cannot read"),
    "url": (_bad_url, "url must start with http:// or https://"),
    "check": (_check_fails_to_build, "check web: cannot set up"),
    "rules": (_rule_parse_error, "rules.yaml:9:19: expr: parse error"),
    "webconfig": (_web_config_error, "web.yml:4:1: unknown key"),
}


def test_reload_failure_matrix_each_leaves_the_agent_as_it_was(running: tuple[Agent, Setup],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    agent, s = running
    s.fire("before")
    wait(lambda: "before" in opened_cases(s.receiver), 20, "the first ticket")
    for case, (breaks, why) in CASES.items():
        before = snapshot(agent)
        breaks(s)
        caplog.clear()
        assert agent.reload() is False, case
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any(why in m for m in errors), (case, errors)
        assert any("keeping the running configuration" in m for m in errors), case
        after = snapshot(agent)
        for key, was in before.items():
            assert after[key] == was if key in ("jobs", "threads") else after[key] is was or after[key] == was, \
                (case, key)
        assert all(t.is_alive() for t in agent.outbox._threads), case
        assert value(exposed(agent), "hostwarden_config_last_reload_successful") == 0, case
        s.fire(case)  # a delivery made after the failed reload
        wait(lambda case=case: case in opened_cases(s.receiver), 20, f"a ticket after the failed {case} reload")
        s.rules.write_text(RULES)
    # and a good reload after all of them swaps everything in
    s.write()
    old = snapshot(agent)
    assert agent.reload() is True
    assert value(exposed(agent), "hostwarden_config_last_reload_successful") == 1
    assert agent.outbox is not old["outbox"] and all(not t.is_alive() for t in old["outbox_threads"])
    assert all(t.is_alive() for t in agent.outbox._threads)
    s.fire("after")
    wait(lambda: "after" in opened_cases(s.receiver), 20, "a ticket after the good reload")
    opens = [r for r in s.receiver.distinct() if r.op == "open"]
    assert len(opens) == len(CASES) + 2  # one ticket per incident, none twice


def test_reload_success_keeps_pending_outbox_operation_and_check_history(running: tuple[Agent, Setup]) -> None:
    agent, s = running
    wait(lambda: value(exposed(agent), "hostwarden_check_up", check="port", type="tcp") == 1, 10, "check result")
    s.receiver.down()
    s.fire("queued")
    wait(lambda: agent.state.query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"] >= 1, 20,
         "a queued open")
    before_check = agent.checks
    assert agent.reload() is True
    assert agent.checks is not before_check
    # the unchanged check's result is there at once (no gap in its series after a reload)
    assert value(parse_exposition(agent.exposition.current().text.decode()), "hostwarden_check_up",
                 check="port", type="tcp") == 1 or agent.checks.last_results().get("port") is not None
    assert agent.checks.last_results()["port"].ok
    s.receiver.up()
    wait(lambda: "queued" in opened_cases(s.receiver), 30, "the queued open delivered after the reload")
    assert agent.state.query("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'")[0]["n"] == 0


def test_reload_with_a_check_that_could_not_be_set_up_since_start_still_succeeds(tmp_path: Path) -> None:
    """Only a *new* check that cannot be set up fails a reload: one that has failed the same way since the
    start (reported UNKNOWN) must not block every later reload."""
    bad_ca = tmp_path / "not-a-ca.pem"
    bad_ca.write_text("this is not a certificate\n")
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: 10s\n  state_dir: {tmp_path / 'state'}\n  hostname: h\n"
                   f"web:\n  listen_address: 127.0.0.1:0\nrule_files: []\n"
                   f"checks:\n  - {{name: web, type: http, url: 'https://127.0.0.1:1/', ca_file: {bad_ca}}}\n")
    config, groups = load_all(str(cfg))
    agent = Agent(config, groups, notifier=Notifier(""))
    try:
        assert agent.checks is not None and "web" in agent.checks.setup_errors()
        assert agent.reload() is True  # unchanged: still UNKNOWN, not a reload failure
        cfg.write_text(cfg.read_text() + f"  - {{name: web2, type: http, url: 'https://127.0.0.1:1/', "
                                         f"ca_file: {bad_ca}}}\n")
        assert agent.reload() is False  # a new one that cannot be set up is
    finally:
        if agent.checks is not None:
            agent.checks.close()
        agent.outbox.stop(drain_timeout=0.0)
        agent.state.close()
