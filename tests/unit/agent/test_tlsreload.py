"""Certificate rotation without a restart (agent.core.tlsreload) on a real MetricsServer / WebhookServer over
loopback TLS: a renewed certificate reaches new connections, a broken one keeps the last good one served and
is counted once, a half-finished renewal is not an error, and a receiver's TLS follows its reconfiguration."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.core.webconfig import WebSecurity, load_web_config
from hostwarden.exporters.prometheus import Exposition
from hostwarden.exporters.receiver import ReceiverConfig, WebhookServer, receiver_tls
from hostwarden.exporters.web import MetricsServer

from tests.support.tls import Pki, make_pki, server_leaf


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def leaves(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("leaves")
    return {name: server_leaf(d, pki, name) for name in ("first", "second", "third")}


class Live:
    """A certbot-like live/ directory: cert.pem and key.pem, replaced by rename (a new inode each time)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.cert, self.key = directory / "cert.pem", directory / "key.pem"

    def put(self, src: Path, dst: Path) -> None:
        tmp = dst.with_suffix(".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    def install(self, pair: tuple[Path, Path]) -> None:
        self.put(pair[0], self.cert)
        self.put(pair[1], self.key)


def peer_cn(port: int, ca: Path) -> str:
    """The CN of the certificate a new connection is served (a full handshake, verified against the CA)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        cert = tls.getpeercert()
    return dict(pair[0] for pair in cert["subject"])["commonName"]


@pytest.fixture
def served(tmp_path: Path, leaves: dict[str, tuple[Path, Path]]) -> Iterator[tuple[MetricsServer, Live, list[int]]]:
    live = Live(tmp_path / "live")
    live.install(leaves["first"])
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: live/cert.pem\n  key_file: live/key.pem\n")
    errors: list[int] = []
    security = load_web_config(str(web), on_tls_error=lambda: errors.append(1))
    security.tls.check_interval = 0.0  # type: ignore[union-attr]  # every connection checks (tests)
    server = MetricsServer(Exposition(), "127.0.0.1:0", security=security)
    server.start()
    yield server, live, errors
    server.stop()


def test_tls_renewed_certificate_served_to_new_connections_without_reload(
        served: tuple[MetricsServer, Live, list[int]], pki: Pki, leaves: dict[str, tuple[Path, Path]]) -> None:
    server, live, errors = served
    port = server.address[1]
    assert peer_cn(port, pki.ca_cert) == "first"
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    kept = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    kept.request("GET", "/-/healthy")
    assert kept.getresponse().read() == b"Healthy.\n"

    live.install(leaves["second"])
    assert peer_cn(port, pki.ca_cert) == "second"
    assert peer_cn(port, pki.ca_cert) == "second"
    assert server.security.tls.rotations == 1  # type: ignore[union-attr]
    kept.request("GET", "/-/healthy")  # an open connection keeps its session
    assert kept.getresponse().read() == b"Healthy.\n"
    kept.close()
    assert errors == []


def test_tls_files_checked_at_most_once_per_interval(served: tuple[MetricsServer, Live, list[int]], pki: Pki,
                                                     leaves: dict[str, tuple[Path, Path]]) -> None:
    server, live, _errors = served
    tls = server.security.tls  # type: ignore[union-attr]
    now = [1000.0]
    tls._monotonic, tls._checked_at, tls.check_interval = lambda: now[0], now[0], 1.0
    live.install(leaves["second"])
    port = server.address[1]
    assert peer_cn(port, pki.ca_cert) == "first"  # within the second since the last check: no stat
    now[0] += 0.5
    assert peer_cn(port, pki.ca_cert) == "first"
    now[0] += 0.6
    assert peer_cn(port, pki.ca_cert) == "second"


def test_tls_broken_replacement_keeps_last_good_certificate_counted_once(
        served: tuple[MetricsServer, Live, list[int]], pki: Pki, leaves: dict[str, tuple[Path, Path]],
        caplog: pytest.LogCaptureFixture) -> None:
    server, live, errors = served
    port = server.address[1]
    live.put(leaves["second"][0], live.cert)  # the second certificate with the first one's key: no pair
    assert peer_cn(port, pki.ca_cert) == "first"
    assert errors == []  # maybe a renewal half-way through: looked at again before it is reported
    for _ in range(3):
        assert peer_cn(port, pki.ca_cert) == "first"
    assert errors == [1]
    assert sum("do not load" in r.getMessage() for r in caplog.records) == 1

    live.put(leaves["second"][1], live.key)  # the renewal completes: served, and nothing more counted
    assert peer_cn(port, pki.ca_cert) == "second"
    assert errors == [1]

    live.cert.write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
    for _ in range(3):
        assert peer_cn(port, pki.ca_cert) == "second"
    assert errors == [1, 1]


def test_tls_half_finished_renewal_is_not_an_error(served: tuple[MetricsServer, Live, list[int]], pki: Pki,
                                                  leaves: dict[str, tuple[Path, Path]]) -> None:
    server, live, errors = served
    port = server.address[1]
    live.put(leaves["third"][0], live.cert)
    assert peer_cn(port, pki.ca_cert) == "first"
    live.put(leaves["third"][1], live.key)
    assert peer_cn(port, pki.ca_cert) == "third"
    assert errors == []


def test_tls_web_security_swapped_on_server_applies_to_new_connections(
        tmp_path: Path, pki: Pki, leaves: dict[str, tuple[Path, Path]]) -> None:
    """What a reload does: `server.security = new` — TLS on, another certificate, TLS off."""
    server = MetricsServer(Exposition(), "127.0.0.1:0", security=None)
    server.start()
    try:
        port = server.address[1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/-/healthy")
        assert conn.getresponse().status == 200
        for name in ("first", "second"):
            web = tmp_path / f"{name}.yml"
            web.write_text(f"tls_server_config:\n  cert_file: {leaves[name][0]}\n  key_file: {leaves[name][1]}\n")
            server.security = load_web_config(str(web))
            assert peer_cn(port, pki.ca_cert) == name
        server.security = WebSecurity(load_web_config(str(tmp_path / "first.yml")).config, None)
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        plain.request("GET", "/-/healthy")
        assert plain.getresponse().status == 200
        plain.close()
        conn.close()
    finally:
        server.stop()


def test_receiver_tls_rotates_and_follows_reconfigure(tmp_path: Path, pki: Pki,
                                                      leaves: dict[str, tuple[Path, Path]]) -> None:
    live = Live(tmp_path / "live")
    live.install(leaves["first"])
    web = tmp_path / "receiver-web.yml"
    web.write_text("tls_server_config:\n  cert_file: live/cert.pem\n  key_file: live/key.pem\n")
    plain = ReceiverConfig(listen_address="127.0.0.1:0", auth="none")
    server = WebhookServer(plain, lambda n, now: 0, token=None, clock=time.time)
    server.start()
    try:
        port = server.address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        tls_cfg = ReceiverConfig(listen_address="127.0.0.1:0", auth="none", web_config_file=str(web))
        tls = receiver_tls(tls_cfg)
        tls.check_interval = 0.0  # type: ignore[union-attr]
        server.reconfigure(tls_cfg, token=None, tls=tls)
        assert peer_cn(port, pki.ca_cert) == "first"
        live.install(leaves["second"])
        assert peer_cn(port, pki.ca_cert) == "second"
    finally:
        server.stop()


def test_receiver_stop_answers_request_in_flight_closes_idle_keepalive() -> None:
    """Stopping (a reload removing the receiver) frees the port at once, answers the request being handled
    and closes idle keep-alive connections instead of serving them on."""
    entered, release = threading.Event(), threading.Event()

    def slow(_n: object, _now: float) -> int:
        entered.set()
        release.wait(5)
        return 0

    server = WebhookServer(ReceiverConfig(listen_address="127.0.0.1:0", auth="none"), slow, token=None,
                           clock=time.time)
    server.start()
    port = server.address[1]
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.request("GET", "/-/healthy")
    assert idle.getresponse().read()
    body = json.dumps({"version": "4", "groupKey": "{}:{alertname=\"X\"}", "receiver": "hw", "status": "firing",
                       "groupLabels": {"alertname": "X"},
                       "alerts": [{"status": "firing", "labels": {"alertname": "X"},
                                   "startsAt": "2024-05-01T10:00:00Z"}]})
    answers: list[int] = []

    def post() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/alerts", body, {"Content-Type": "application/json"})
        answers.append(c.getresponse().status)
        c.close()

    poster = threading.Thread(target=post)
    poster.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=server.stop)
    started = time.monotonic()
    stopper.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the listener goes first
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except ConnectionRefusedError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the port still accepts connections while stopping")
    with pytest.raises((http.client.HTTPException, OSError)):  # the idle keep-alive connection was closed
        idle.request("GET", "/-/healthy")
        idle.getresponse()
    assert stopper.is_alive() and answers == []  # stop waits for the request in flight
    release.set()
    stopper.join(5)
    poster.join(5)
    assert answers == [200]
    assert time.monotonic() - started < 3


def test_tls_rotation_keeps_client_certificate_verification(tmp_path: Path, pki: Pki,
                                                            leaves: dict[str, tuple[Path, Path]]) -> None:
    """mTLS: after a renewed server certificate, a client without a certificate, or with one from another CA,
    is still refused; the right client is served the new certificate."""
    live = Live(tmp_path / "live")
    live.install(leaves["first"])
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: live/cert.pem\n  key_file: live/key.pem\n"
                   f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca_cert}\n")
    security = load_web_config(str(web))
    security.tls.check_interval = 0.0  # type: ignore[union-attr]
    server = MetricsServer(Exposition(), "127.0.0.1:0", security=security)
    server.start()

    def get(client: tuple[Path, Path] | None) -> tuple[int, str]:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        if client is not None:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        conn = http.client.HTTPSConnection("127.0.0.1", server.address[1], context=ctx, timeout=5)
        try:
            conn.request("GET", "/-/healthy")
            status = conn.getresponse().status
            cert: Any = conn.sock.getpeercert()  # type: ignore[union-attr]
            return status, dict(pair[0] for pair in cert["subject"])["commonName"]
        finally:
            conn.close()

    try:
        assert get((pki.client_cert, pki.client_key)) == (200, "first")
        live.install(leaves["second"])
        assert get((pki.client_cert, pki.client_key)) == (200, "second")
        for wrong in (None, (pki.other_client_cert, pki.other_client_key)):
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                get(wrong)
        assert server.security.tls.rotations == 1  # type: ignore[union-attr]
    finally:
        server.stop()
