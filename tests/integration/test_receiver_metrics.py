"""The Alertmanager receiver's metrics, from real processes on 127.0.0.1:
- `hostwarden receive`: GET /metrics on its own listener (no bearer token) after an accepted, an unauthorized
  and a malformed notification — requests by code, alerts by status, the last accepted notification's time,
  the incident manager's self-metrics for the configured backend, build info and process metrics, with the
  right TYPEs as prometheus_client's parser reads them;
- `hostwarden run` with a `receiver:` section: the same receiver series on the agent's own /metrics."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.agent import ROOT, free_port, hostwarden_cmd, start_agent, terminate, wait_for, write_config
from tests.support.tls import bcrypt_hash, make_pki

pytestmark = pytest.mark.integration

TOKEN = "receiver-metrics-token-3b7a"


def notification(group: str, *statuses: str) -> bytes:
    alerts = [{"status": st, "labels": {"alertname": group, "instance": f"db{i}:9100", "severity": "warning"},
               "annotations": {"summary": f"{group} on db{i}"}, "startsAt": "2026-01-01T00:00:00Z"}
              for i, st in enumerate(statuses)]
    return json.dumps({"version": "4", "groupKey": f'{{}}:{{alertname="{group}"}}', "receiver": "hostwarden",
                       "status": "firing" if "firing" in statuses else "resolved",
                       "groupLabels": {"alertname": group}, "commonLabels": {"alertname": group},
                       "alerts": alerts}).encode()


def post(port: int, body: bytes, *, token: str | None = TOKEN) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/alerts", body, headers)
        return conn.getresponse().status
    finally:
        conn.close()


def scrape(port: int, path: str = "/metrics", ctx: ssl.SSLContext | None = None) -> str:
    scheme = "https" if ctx is not None else "http"
    with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}{path}", timeout=5, context=ctx) as resp:
        return resp.read().decode()


def families(text: str) -> dict[str, tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]:
    """family name -> (type, {(sample name, sorted labels): value})"""
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = (fam.type, {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples})
    return out


def receiver_config(tmp_path: Path, port: int, extra: str = "") -> str:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    return (f"tickets:\n  backends: [{{name: ops, type: local}}]\n  update_interval: 0s\n"
            f"receiver:\n  listen_address: 127.0.0.1:{port}\n  token_file: {token}\n{extra}")


@pytest.fixture
def receive(tmp_path: Path) -> Iterator[int]:
    with receive_process(tmp_path) as port:
        yield port


@contextlib.contextmanager
def receive_process(tmp_path: Path, extra: str = "", ctx: ssl.SSLContext | None = None) -> Iterator[int]:
    """A real `hostwarden receive` (local backend `ops`), its port once it answers; SIGTERM → exit 0 after."""
    port = free_port()
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global:\n  state_dir: {tmp_path / 'state'}\n  hostname: receiver1\n"
                   + receiver_config(tmp_path, port, extra))
    log_path = tmp_path / "receiver.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child's lifetime
    proc = subprocess.Popen([*hostwarden_cmd(), "receive", "--config", str(cfg)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)

    def up() -> bool:
        if proc.poll() is not None:
            return True
        try:
            return bool(scrape(port, "/-/healthy", ctx))
        except OSError:
            return False

    try:
        wait_for(up, 30, what="hostwarden receive listening")
        assert proc.poll() is None, log_path.read_text()
        yield port
    finally:
        rc = terminate(proc, 20)
        log.close()
        assert rc == 0, log_path.read_text()


def test_receive_metrics_count_requests_alerts_and_show_incidents_and_outbox(receive: int) -> None:
    port = receive
    before = families(scrape(port))
    assert before["hostwarden_receiver_requests"][0] == "counter"
    assert before["hostwarden_receiver_requests"][1][("hostwarden_receiver_requests_total", (("code", "200"),))] == 0
    assert before["hostwarden_receiver_last_request_timestamp_seconds"][1] == {
        ("hostwarden_receiver_last_request_timestamp_seconds", ()): 0}

    t0 = time.time()
    assert post(port, notification("DiskFull", "firing", "firing", "resolved")) == 200
    assert post(port, notification("DiskFull", "firing"), token="wrong") == 401
    assert post(port, notification("DiskFull", "firing"), token=None) == 401
    assert post(port, b'{"version": "4", "alerts": [') == 400

    fams = families(scrape(port))
    mtype, req = fams["hostwarden_receiver_requests"]
    assert mtype == "counter"
    codes = {dict(lab)["code"]: v for (_n, lab), v in req.items()}
    assert (codes["200"], codes["401"], codes["400"], codes["413"]) == (1, 2, 1, 0)
    mtype, alerts = fams["hostwarden_receiver_alerts"]
    assert mtype == "counter"
    assert {dict(lab)["status"]: v for (_n, lab), v in alerts.items()} == {"firing": 2, "resolved": 1}
    mtype, last = fams["hostwarden_receiver_last_request_timestamp_seconds"]
    assert mtype == "gauge"
    assert t0 - 1 <= last[("hostwarden_receiver_last_request_timestamp_seconds", ())] <= time.time() + 1

    assert fams["hostwarden_incidents_open"] == ("gauge", {("hostwarden_incidents_open", ()): 1})
    mtype, pending = fams["hostwarden_outbox_pending"]
    assert mtype == "gauge" and ("hostwarden_outbox_pending", (("backend", "ops"),)) in pending
    assert fams["hostwarden_outbox_oldest_age_seconds"][0] == "gauge"
    assert fams["hostwarden_ticket_operations"][0] == "counter"
    mtype, build = fams["hostwarden_build_info"]
    assert mtype == "gauge" and list(build.values()) == [1]
    assert fams["process_resident_memory_bytes"][0] == "gauge"
    assert "hostwarden_web_tls_reload_errors" not in fams  # plain HTTP: no TLS listener to count for

    # the local ticket is filed by the outbox: the backend's operation is counted, nothing left pending
    def delivered() -> bool:
        f = families(scrape(port))
        ops = sum(f["hostwarden_ticket_operations"][1].values())
        return ops >= 1 and f["hostwarden_outbox_pending"][1][("hostwarden_outbox_pending", (("backend", "ops"),))] == 0

    wait_for(delivered, 10, what="the ticket operation counted and the outbox empty")


def test_receive_metrics_need_no_webhook_token_and_other_gets_stay_404(receive: int) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{receive}/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(receive, "/nothing")
    assert e.value.code == 404


def test_receive_metrics_over_the_receivers_tls_behind_its_basic_auth_not_the_token(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
                   f"basic_auth_users:\n  prometheus: '{bcrypt_hash('scrape-pw')}'\n")
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    with receive_process(tmp_path, f"  web_config_file: {web}\n", ctx) as port:
        def get(auth: str | None) -> tuple[int, str]:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
            try:
                conn.request("GET", "/metrics", headers={"Authorization": auth} if auth else {})
                resp = conn.getresponse()
                return resp.status, resp.read().decode()
            finally:
                conn.close()

        basic = "Basic " + base64.b64encode(b"prometheus:scrape-pw").decode()
        assert get(None)[0] == 401
        assert get(f"Bearer {TOKEN}")[0] == 401  # the webhook's token is no scrape credential
        assert get("Basic " + base64.b64encode(b"prometheus:wrong").decode())[0] == 401
        status, text = get(basic)
        assert status == 200
        fams = families(text)
        assert fams["hostwarden_web_tls_reload_errors"] == (
            "counter", {("hostwarden_web_tls_reload_errors_total", (("listener", "receiver"),)): 0})
        assert fams["hostwarden_receiver_requests"][0] == "counter"
        with pytest.raises(OSError):  # plain HTTP is not served on the TLS listener
            scrape(port)
        # the webhook keeps its bearer token, not the basic auth; GETs of /metrics are no webhook requests
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        try:
            conn.request("POST", "/alerts", notification("Tls", "firing"),
                         {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
            assert conn.getresponse().status == 200
        finally:
            conn.close()
        req = families(get(basic)[1])["hostwarden_receiver_requests"][1]
        assert {dict(lab)["code"]: v for (_n, lab), v in req.items() if v} == {"200": 1}


def test_run_with_receiver_exposes_receiver_series_on_agent_metrics(tmp_path: Path) -> None:
    rport = free_port()
    cfg = write_config(tmp_path, "rule_files: []\n" + receiver_config(tmp_path, rport))
    agent = start_agent(cfg)
    try:
        wait_for(lambda: post(rport, notification("LoadHigh", "firing")) == 200, 10, what="the embedded receiver")

        def counted() -> dict | None:
            f = families(agent.scrape())
            req = f.get("hostwarden_receiver_requests", ("", {}))[1]
            return f if req.get(("hostwarden_receiver_requests_total", (("code", "200"),))) == 1 else None

        fams = wait_for(counted, 10, what="the receiver's requests on the agent's /metrics")
        assert fams["hostwarden_receiver_requests"][0] == "counter"
        assert fams["hostwarden_receiver_alerts"][1][("hostwarden_receiver_alerts_total", (("status", "firing"),))] == 1
        last = fams["hostwarden_receiver_last_request_timestamp_seconds"]
        assert last[0] == "gauge" and last[1][("hostwarden_receiver_last_request_timestamp_seconds", ())] > 0
        with pytest.raises(urllib.error.HTTPError) as e:  # embedded: the agent's /metrics is the one
            scrape(rport)
        assert e.value.code == 404
    finally:
        assert agent.stop() == 0, agent.log_text()
