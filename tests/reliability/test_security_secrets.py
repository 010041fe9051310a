"""A planted secret never leaks; the files the agent writes are private.

Secrets come only through `*_env` (agent.secrets). A real `hostwarden run` (debug logging) gets a
webhook backend whose token and HMAC secret are planted, and a rule that fires at once; the webhook
receiver on 127.0.0.1 first answers 500 with a body that *echoes the Authorization header* (as some
proxies do), so the error message the agent logs carries the token unless it is redacted. Then every
output is grepped for the planted values: the log, `/metrics`, the ticket payloads, `check-config`
output and every file in the state directory. Every file the agent created there is mode 0600.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.agentprobe import record
from tests.support.agent import run_cli, start_agent, wait_for, write_config

pytestmark = pytest.mark.integration

TOKEN = "PLANTED-token-7c1e0b9a5d3f4e21"
HMAC = "PLANTED-hmac-2b8d4f6a0c1e3a5b"
RECEIVER = "PLANTED-receiver-9e7c5a3b1d0f2e4c"
SECRETS = (TOKEN, HMAC, RECEIVER)
ENV = {"HW_PLANTED_TOKEN": TOKEN, "HW_PLANTED_HMAC": HMAC, "HW_PLANTED_RECEIVER": RECEIVER}


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes


class EchoingHook:
    """Answers the first `fail` requests 500 with the request's Authorization header in the body."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.hits: list[Hit] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.hits.append(Hit(dict(self.headers.items()), body))
                if len(hook.hits) <= hook.fail:
                    out = f"proxy error: upstream rejected {self.headers.get('Authorization')}".encode()
                    code = 500
                else:
                    out = json.dumps({"id": f"T-{len(hook.hits)}"}).encode()
                    code = 200
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if code == 500 else "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class Outputs:
    log: str
    metrics: str
    check_config: str
    hits: list[Hit]
    state_dir: Path
    exit_code: int


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outputs]:
    d = tmp_path_factory.mktemp("secrets")
    tf = d / "textfile"
    tf.mkdir()
    (tf / "leak.prom").write_text('leak_metric{mountpoint="/srv"} 1\n')
    (d / "rules.yaml").write_text(
        "groups:\n  - name: leak\n    interval: 1s\n    rules:\n"
        "      - alert: LeakTest\n        expr: leak_metric > 0\n"
        "        annotations: {summary: '{{ $labels.mountpoint }} tripped'}\n")
    hook = EchoingHook(fail=2)
    cfg = write_config(d, f"collectors:\n  textfile: {{directory: {tf}}}\nrule_files: [rules.yaml]\n"
                          "tickets:\n  backends:\n"
                          f"    - {{name: hook, type: webhook, url: '{hook.url}', token_env: HW_PLANTED_TOKEN,"
                          " hmac_secret_env: HW_PLANTED_HMAC, timeout: 5s}\n"
                          "receiver:\n  listen_address: 127.0.0.1:0\n  token_env: HW_PLANTED_RECEIVER\n")
    checked = run_cli("check-config", str(cfg), env=ENV)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    agent = start_agent(cfg, extra_args=["--log.level", "debug"], env=ENV)
    try:
        # two 500s, then the ticket: the outbox retries with backoff
        wait_for(lambda: len(hook.hits) >= 3, 60, what="the ticket delivered after two failures")
        time.sleep(1.5)
        metrics = agent.scrape()
    finally:
        code = agent.stop()
        hook.stop()
    yield Outputs(agent.log_text(), metrics, checked.stdout + checked.stderr, hook.hits, d / "state", code)


def _leaks(text: str | bytes) -> list[str]:
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return [s[:14] + "…" for s in SECRETS if s in data]


def test_secret_planted_not_in_log_but_redaction_happened(outputs: Outputs) -> None:
    assert outputs.exit_code == 0
    assert _leaks(outputs.log) == []
    # not vacuous: the echoed error reached the log, with the token replaced
    assert "proxy error: upstream rejected Bearer <redacted>" in outputs.log


def test_secret_planted_not_in_metrics(outputs: Outputs) -> None:
    assert "hostwarden_" in outputs.metrics
    assert _leaks(outputs.metrics) == []


def test_secret_planted_not_in_check_config_output(outputs: Outputs) -> None:
    assert ": OK:" in outputs.check_config
    assert _leaks(outputs.check_config) == []


def test_secret_planted_not_in_ticket_payloads_only_in_auth_header(outputs: Outputs) -> None:
    assert len(outputs.hits) >= 3
    for hit in outputs.hits:
        assert _leaks(hit.body) == []
        assert hit.headers["Authorization"] == f"Bearer {TOKEN}"  # where it belongs
        assert _leaks(json.dumps({k: v for k, v in hit.headers.items() if k != "Authorization"})) == []
    doc = json.loads(outputs.hits[-1].body)
    assert doc["operation"] == "open" and doc["incident"]["alertname"] == "LeakTest"


def test_secret_planted_not_in_state_files(outputs: Outputs) -> None:
    files = [p for p in outputs.state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files)
    for p in files:
        assert _leaks(p.read_bytes()) == [], p


def test_state_files_created_by_agent_mode_0600(outputs: Outputs) -> None:
    files = [p for p in outputs.state_dir.rglob("*") if p.is_file()]
    modes = {str(p.relative_to(outputs.state_dir)): stat.S_IMODE(os.stat(p).st_mode) for p in files}
    record("file-modes", files={k: oct(m) for k, m in modes.items()},
           state_dir=oct(stat.S_IMODE(os.stat(outputs.state_dir).st_mode)))
    assert modes and all(m & 0o077 == 0 for m in modes.values()), {k: oct(m) for k, m in modes.items()}
    assert stat.S_IMODE(os.stat(outputs.state_dir).st_mode) & 0o007 == 0  # no access for others


def test_state_files_with_local_ticket_store_mode_0600(tmp_path: Path) -> None:
    """The default `local` backend keeps its own SQLite store next to the state database: 0600 too."""
    tf = tmp_path / "textfile"
    tf.mkdir()
    (tf / "x.prom").write_text("local_metric 1\n")
    (tmp_path / "rules.yaml").write_text("groups:\n  - name: l\n    interval: 1s\n    rules:\n"
                                         "      - alert: LocalTicket\n        expr: local_metric > 0\n")
    agent = start_agent(write_config(tmp_path, f"collectors:\n  textfile: {{directory: {tf}}}\n"
                                               "rule_files: [rules.yaml]\n"))
    try:
        wait_for(lambda: "local ticket #1 opened" in agent.log_text(), 30, what="a local ticket")
    finally:
        assert agent.stop() == 0
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in files}
    record("file-modes-local", files={k: oct(m) for k, m in modes.items()})
    assert len(modes) >= 2, modes  # the state database and the local ticket store
    assert all(m & 0o077 == 0 for m in modes.values()), {k: oct(m) for k, m in modes.items()}
