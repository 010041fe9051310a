"""A real `hostwarden run` reloaded (POST /-/reload, --web.enable-lifecycle) without a restart:
- the Alertmanager receiver is started, moved, re-pathed and stopped by reloads; a reload whose new receiver
  port is taken fails cleanly and the running receiver keeps answering; webhooks become local tickets;
- /metrics' TLS: a renewed certificate file reaches new connections without any reload, a broken one keeps
  the last good certificate and counts hostwarden_web_tls_reload_errors_total, a reload with another web
  config serves the new certificate, and one without TLS serves plain HTTP on the same port."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.agentprobe import parse_exposition, value
from tests.support.agent import (
    ROOT,
    AgentProcess,
    free_port,
    hostwarden_cmd,
    run_cli,
    start_agent,
    wait_for,
    write_config,
)
from tests.support.amwebhook import notification, post_notification, refused
from tests.support.tls import Pki, make_pki, server_leaf

pytestmark = pytest.mark.integration

TOKEN = "reload-receiver-token-81f3"


# -- receiver ---------------------------------------------------------------------------------------------------
def receiver_section(token: Path, port: int, path: str = "/alerts") -> str:
    return f"receiver:\n  listen_address: 127.0.0.1:{port}\n  path: {path}\n  token_file: {token}\n"


def write(d: Path, web_port: int, receiver: str = "") -> None:
    write_config(d, "rule_files: []\ntickets:\n  backends: [{name: ops, type: local}]\n  update_interval: 0s\n"
                    + receiver, port=web_port)


def reload(agent: AgentProcess) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=30)
    try:
        conn.request("POST", "/-/reload")
        return conn.getresponse().status
    finally:
        conn.close()


def notify(port: int, group: str, path: str = "/alerts") -> int:
    """POST an Alertmanager webhook with one firing alert of alertname `group`."""
    return post_notification(port, notification(group, instance="db1:9100", severity="warning"), path=path,
                             token=TOKEN)


def ticket_rules(cfg: Path) -> set[str]:
    res = run_cli("tickets", "list", "--config", str(cfg), "--format", "json")
    assert res.returncode == 0, res.stderr
    return {t["rule"] for t in json.loads(res.stdout)}


def test_receiver_started_moved_repathed_refused_and_stopped_by_reloads(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    web_port, a, b = free_port(), free_port(), free_port()
    write(tmp_path, web_port)
    agent = start_agent(tmp_path / "hostwarden.yaml", extra_args=["--web.enable-lifecycle"])
    try:
        assert refused(a)
        # added: started by the reload; a notification becomes a ticket in the local store
        write(tmp_path, web_port, receiver_section(token, a))
        assert reload(agent) == 200, agent.log_text()
        assert notify(a, "AddedByReload") == 200
        wait_for(lambda: "AddedByReload" in ticket_rules(agent.config), 20, what="the ticket of the first group")

        # moved: the new port answers, the old one refuses
        write(tmp_path, web_port, receiver_section(token, b))
        assert reload(agent) == 200, agent.log_text()
        assert refused(a)
        assert notify(b, "AfterMove") == 200
        wait_for(lambda: "AfterMove" in ticket_rules(agent.config), 20, what="the ticket sent to the moved receiver")

        # another path on the same port: applied in place
        write(tmp_path, web_port, receiver_section(token, b, "/am"))
        assert reload(agent) == 200, agent.log_text()
        assert notify(b, "OldPath") == 404
        assert notify(b, "NewPath", "/am") == 200

        # a taken port: the reload fails before anything is touched; the running receiver still answers
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            taken_port = taken.getsockname()[1]
            write(tmp_path, web_port, receiver_section(token, taken_port))
            assert reload(agent) == 500
        assert f"cannot listen on 127.0.0.1:{taken_port}" in agent.log_text()
        assert "keeping the running configuration" in agent.log_text()
        assert value(parse_exposition(agent.scrape()), "hostwarden_config_last_reload_successful") == 0
        assert notify(b, "AfterFailedReload", "/am") == 200
        wait_for(lambda: {"NewPath", "AfterFailedReload"} <= ticket_rules(agent.config), 20,
                 what="the tickets sent after the failed reload")

        # removed: stopped
        write(tmp_path, web_port)
        assert reload(agent) == 200, agent.log_text()
        assert refused(b)
        assert "at the next restart" not in agent.log_text()
    finally:
        rc = agent.stop()
    assert rc == 0, agent.log_text()
    assert ticket_rules(agent.config) == {"AddedByReload", "AfterMove", "NewPath", "AfterFailedReload"}


# -- TLS of /metrics --------------------------------------------------------------------------------------------
class TLSAgent:
    def __init__(self, proc: subprocess.Popen, port: int, ca: Path, log: Path) -> None:
        self.proc, self.port, self.ca, self.log = proc, port, ca, log

    def request(self, method: str, path: str, *, tls: bool = True) -> tuple[int, bytes, str]:
        """(status, body, CN of the certificate served to this new connection)."""
        if tls:
            ctx = ssl.create_default_context(cafile=str(self.ca))
            conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx,
                                                                            timeout=10)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            cn = ""
            if tls:
                cert: Any = conn.sock.getpeercert()  # type: ignore[union-attr]
                cn = dict(pair[0] for pair in cert["subject"])["commonName"]
            return resp.status, resp.read(), cn
        finally:
            conn.close()

    def cn(self) -> str:
        return self.request("GET", "/-/healthy")[2]

    def tls_errors(self) -> float | None:
        return value(parse_exposition(self.request("GET", "/metrics")[1].decode()),
                     "hostwarden_web_tls_reload_errors_total", listener="web")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def tls_agent(tmp_path: Path) -> Iterator[tuple[TLSAgent, Pki, Path, Path]]:
    pki = make_pki(tmp_path / "pki")
    live = tmp_path / "live"
    live.mkdir()
    for name in ("first", "second", "third"):
        server_leaf(tmp_path / "leaves", pki, name)
    shutil.copyfile(tmp_path / "leaves" / "first.crt", live / "cert.pem")
    shutil.copyfile(tmp_path / "leaves" / "first.key", live / "key.pem")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: live/cert.pem\n  key_file: live/key.pem\n")
    cfg = write_config(tmp_path, "rule_files: []\n")
    text = cfg.read_text().replace("web:\n", f"web:\n  config_file: {web}\n", 1)
    cfg.write_text(text)
    port = int(text.split("listen_address: 127.0.0.1:")[1].split()[0])
    log = tmp_path / "agent.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([*hostwarden_cmd(), "run", "--config", str(cfg), "--web.enable-lifecycle"],
                                stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ))
    agent = TLSAgent(proc, port, pki.ca_cert, log)
    try:
        wait_for(lambda: proc.poll() is not None or _ready(agent), 30, what="the TLS agent ready")
        assert proc.poll() is None, agent.log_text()
        yield agent, pki, live, web
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _ready(agent: TLSAgent) -> bool:
    try:
        return agent.request("GET", "/-/ready")[0] == 200
    except OSError:
        return False


def _replace(src: Path, dst: Path) -> None:
    tmp = dst.with_suffix(".new")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def test_tls_certificate_rotation_broken_renewal_and_reload_without_restart(
        tls_agent: tuple[TLSAgent, Pki, Path, Path]) -> None:
    agent, _pki, live, web = tls_agent
    leaves = live.parent / "leaves"
    pid = agent.proc.pid
    assert agent.cn() == "first"
    assert agent.tls_errors() == 0

    # renewed on disk (certbot renew): new connections get it, no reload involved
    _replace(leaves / "second.crt", live / "cert.pem")
    _replace(leaves / "second.key", live / "key.pem")
    wait_for(lambda: agent.cn() == "second", 10, what="the renewed certificate served", interval=0.3)
    assert "configuration reloaded" not in agent.log_text()

    # a broken renewal (a certificate without its key): the last good one stays, counted once
    _replace(leaves / "third.crt", live / "cert.pem")
    wait_for(lambda: agent.tls_errors() == 1, 10, what="hostwarden_web_tls_reload_errors_total 1", interval=0.3)
    for _ in range(3):
        assert agent.cn() == "second"
    assert agent.tls_errors() == 1
    assert agent.log_text().count("do not load") == 1

    # a reload with another web config: its certificate (and headers) for new connections
    web.write_text(f"tls_server_config:\n  cert_file: {leaves / 'third.crt'}\n  key_file: {leaves / 'third.key'}\n"
                   "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    status, _body, cn = agent.request("POST", "/-/reload")
    assert (status, cn) == (200, "second")
    assert agent.cn() == "third"
    assert agent.tls_errors() == 1  # the counter survives the reload

    # TLS turned off by a reload: plain HTTP on the same port, same process
    web.write_text("")
    assert agent.request("POST", "/-/reload")[0] == 200
    status, body, _ = agent.request("GET", "/-/healthy", tls=False)
    assert (status, body) == (200, b"Healthy.\n")
    assert agent.proc.pid == pid and agent.proc.poll() is None
    assert "TLS turned off for new connections" in agent.log_text()
