"""`hostwarden run --web.config.file`: /metrics over TLS with basic auth, scraped by a real Prometheus.

A job with the right credentials is up; one with a wrong password is down with 401; one that talks
plain HTTP to the TLS port is down. An invalid web config stops the agent at start with file:line.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.agent import ROOT, hostwarden_cmd, wait_for, write_config
from tests.support.prometheus import start_prometheus
from tests.support.tls import Pki, bcrypt_hash, make_pki

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "scrape-me-please"


@dataclass
class SecuredAgent:
    proc: subprocess.Popen
    port: int
    pki: Pki
    log: Path

    def get(self, path: str, auth: tuple[str, str] | None) -> tuple[int, dict[str, str], bytes]:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=5)
        headers = {}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def _web_config(directory: Path, pki: Pki) -> Path:
    path = directory / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
                    f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n"
                    "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredAgent]:
    d = tmp_path_factory.mktemp("secured")
    pki = make_pki(d / "pki")
    cfg = write_config(d, "rule_files: []\n")
    port = int(cfg.read_text().split("listen_address: 127.0.0.1:")[1].split()[0])
    log = d / "agent.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([*hostwarden_cmd(), "run", "--config", str(cfg), "--web.config.file",
                                 str(_web_config(d, pki))], stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=dict(os.environ))
    agent = SecuredAgent(proc, port, pki, log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if agent.get("/-/ready", (USER, PASSWORD))[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"agent not ready over TLS in 30s:\n{log.read_text()}")
        time.sleep(0.2)
    yield agent
    proc.terminate()
    assert proc.wait(30) == 0, log.read_text()


def test_tls_metrics_right_password_200_with_headers(secured: SecuredAgent) -> None:
    status, headers, body = secured.get("/metrics", (USER, PASSWORD))
    assert status == 200
    assert b"hostwarden_build_info{" in body
    assert headers.get("x-content-type-options") == "nosniff"


@pytest.mark.parametrize("auth", [None, (USER, "wrong-password"), ("admin", PASSWORD)])
def test_tls_metrics_bad_credentials_401_basic_challenge(secured: SecuredAgent, auth) -> None:  # type: ignore[no-untyped-def]
    status, headers, body = secured.get("/metrics", auth)
    assert status == 401
    assert headers.get("www-authenticate", "").startswith("Basic")
    assert b"hostwarden_" not in body


def test_tls_stalled_client_does_not_block_scrapes(secured: SecuredAgent) -> None:
    """A client that connects and never sends its TLS hello must not hold up everyone else: the
    handshake belongs in the request's thread, under its timeout, not in the accept loop."""
    with socket.create_connection(("127.0.0.1", secured.port), timeout=5):
        status, _headers, _body = secured.get("/metrics", (USER, PASSWORD))
    assert status == 200


def test_tls_prometheus_scrapes_with_credentials_wrong_password_gets_401(secured: SecuredAgent,
                                                                         tmp_path: Path) -> None:
    target = f"['127.0.0.1:{secured.port}']"
    tls = f"    tls_config:\n      ca_file: {secured.pki.ca_cert}\n"
    jobs = (f"  - job_name: secured\n    scheme: https\n{tls}"
            f"    basic_auth:\n      username: {USER}\n      password: {PASSWORD}\n"
            f"    static_configs:\n      - targets: {target}\n"
            f"  - job_name: wrong-password\n    scheme: https\n{tls}"
            f"    basic_auth:\n      username: {USER}\n      password: not-{PASSWORD}\n"
            f"    static_configs:\n      - targets: {target}\n"
            f"  - job_name: plain-http\n    scheme: http\n"
            f"    static_configs:\n      - targets: {target}\n")
    prom = start_prometheus(tmp_path / "prom", jobs)
    try:
        wait_for(lambda: prom.query('up{job="secured"} == 1'), 30, what="secured target up")
        build = wait_for(lambda: prom.query('hostwarden_build_info{job="secured"}'), 15, what="build info")
        assert build[0]["metric"]["version"]

        def health() -> dict[str, tuple[str, str]]:
            targets = prom.api("targets")["data"]["activeTargets"]
            return {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}

        states = wait_for(lambda: (h := health()) and all(v[0] != "unknown" for v in h.values()) and h, 30,
                          what="all targets scraped")
        assert states["secured"] == ("up", "")
        assert states["wrong-password"][0] == "down" and "401" in states["wrong-password"][1]
        assert states["plain-http"][0] == "down"
    finally:
        prom.stop()


def test_invalid_web_config_refuses_to_start_with_location(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "rule_files: []\n")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: /nonexistent/server.key\n")
    res = subprocess.run([*hostwarden_cmd(), "run", "--config", str(cfg), "--web.config.file", str(web)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{web}:2:14" in res.stdout + res.stderr
