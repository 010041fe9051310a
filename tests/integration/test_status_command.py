"""`hostwarden status` against a real agent, plain and behind TLS + basic auth (the pages and the API sit
behind the same web config as /metrics)."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.agent import ROOT, free_port, hostwarden_cmd, run_cli, start_agent, wait_for, write_config
from tests.support.tls import bcrypt_hash, make_pki

pytestmark = pytest.mark.integration

RULES = """
groups:
  - name: cli
    interval: 1s
    rules:
      - alert: CliValueHigh
        expr: cli_value > 10
        labels: {severity: warning}
        annotations: {summary: "value {{ $value }}"}
      - alert: CliValuePending
        expr: cli_value > 1
        for: 1h
"""


def setup(d: Path, body: str = "", port: int | None = None) -> Path:
    (d / "rules.yaml").write_text(RULES)
    textfile = d / "state" / "textfile"
    textfile.mkdir(parents=True, exist_ok=True)
    (textfile / "cli.prom").write_text('cli_value{path="/srv/\x1b[31mred"} 50\n')
    return write_config(d, f"rule_files: [rules.yaml]\n{body}", port=port)


def test_status_command_summary_of_a_running_agent(tmp_path: Path) -> None:
    agent = start_agent(setup(tmp_path))
    try:
        def ticketed() -> dict | None:
            res = run_cli("status", "--url", agent.url, "--format", "json")
            data = json.loads(res.stdout) if res.returncode == 0 else None
            return data if data and any(a["ticket"] for a in data["alerts"]) else None

        data = wait_for(ticketed, 20, what="a ticketed alert in `status --format json`")
        assert {a["name"]: a["state"] for a in data["alerts"]} == {"CliValueHigh": "firing",
                                                                   "CliValuePending": "pending"}
        res = run_cli("status", "--url", agent.url)
        assert res.returncode == 0, res.stderr
        out = res.stdout
        assert out.startswith("hostwarden ") and "on testhost" in out
        assert "Alerts: 1 firing, 1 pending" in out
        line = next(x for x in out.splitlines() if "CliValueHigh" in x)
        assert "firing" in line and "warning" in line and "> 10" in line and "50" in line
        assert f"local #1 {agent.url}/tickets/local/1" in line
        assert "\x1b" not in out and "?[31mred" in out  # the label's escape sequence is defused
        assert "Incidents, last 24h: 1 (1 open)" in out
        assert "Collectors:" in out and "0 failing" in out and "Outbox: local 0 pending" in out
    finally:
        assert agent.stop() == 0, agent.log_text()


def test_status_command_unreachable_agent_exit_1() -> None:
    res = run_cli("status", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert res.returncode == 1
    assert "cannot reach the agent" in res.stderr


def _get(url: str, ca: Path, auth: tuple[str, str] | None) -> int:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5, context=ssl.create_default_context(cafile=str(ca))) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_pages_api_and_status_command_behind_tls_and_basic_auth(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
                   f"basic_auth_users:\n  ops: {bcrypt_hash('s3cret-pass')}\n")
    port = free_port()
    cfg = setup(tmp_path, port=port)
    with open(tmp_path / "agent.log", "ab") as log:
        proc = subprocess.Popen([*hostwarden_cmd(), "run", "--config", str(cfg), "--web.config.file", str(web)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ))
    url = f"https://127.0.0.1:{port}"
    args = ("status", "--url", url, "--user", "ops", "--ca-file", str(pki.ca_cert), "--timeout", "2")
    try:
        wait_for(lambda: proc.poll() is None and run_cli(*args, env={"HOSTWARDEN_PASSWORD": "s3cret-pass"})
                 .returncode == 0, 30, what="the agent over TLS")
        for path in ("/", "/api/v1/rules", "/api/v1/alerts", "/api/v1/query?query=cli_value",
                     "/api/hostwarden/v1/status", "/runbooks/", "/tickets/local/1"):
            assert _get(url + path, pki.ca_cert, None) == 401, path
            assert _get(url + path, pki.ca_cert, ("ops", "wrong")) == 401, path
        for path in ("/", "/api/v1/rules", "/api/v1/query?query=cli_value", "/runbooks/"):
            assert _get(url + path, pki.ca_cert, ("ops", "s3cret-pass")) == 200, path
        res = run_cli(*args, env={"HOSTWARDEN_PASSWORD": "wrong"})
        assert res.returncode == 1 and "401" in res.stderr
        res = run_cli(*args, env={"HOSTWARDEN_PASSWORD": "s3cret-pass"})
        assert res.returncode == 0 and "CliValueHigh" in res.stdout
        assert "s3cret-pass" not in res.stdout + res.stderr
    finally:
        proc.terminate()
        try:
            assert proc.wait(30) == 0, (tmp_path / "agent.log").read_text()
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
