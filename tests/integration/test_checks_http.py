"""The http check against real HTTP and HTTPS servers on 127.0.0.1 (http.server in a thread).

Certificates are made per test session with the `openssl` CLI: a self-signed certificate (verification
must fail, expiry still reported) and a leaf signed by a test CA (verification succeeds with
`ca_file`).
"""

from __future__ import annotations

import base64
import calendar
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hostwarden.agent.core.schema import Duration
from hostwarden.collectors.check_http import HttpCheck, HttpConfig, cert_not_after
from hostwarden.collectors.checks import Status

RELEASE = threading.Event()  # set at teardown so slow handlers end


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/redirect-303":
            self._send(303, headers={"Location": "/method"})
        else:
            self._send(200, b"posted:" + body)

    def do_GET(self) -> None:
        path = self.path
        if path == "/ok":
            self._send(200, b"status: healthy\n")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"as requested")
        elif path == "/redirect":
            self._send(302, headers={"Location": "/ok"})
        elif path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif path == "/method":
            self._send(200, self.command.encode())
        elif path == "/slow":
            RELEASE.wait(5)
            self._send(200, b"late")
        elif path == "/auth":
            got = self.headers.get("Authorization", "")
            self._send(200 if got == self.server.expected_auth else 401, got.encode())
        elif path == "/big":
            self._send(200, b"x" * (3 << 20) + b"NEEDLE")
        else:
            self._send(404, b"not found")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    expected_auth = ""

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop reading early (body cap, timeouts) are part of the tests


def serve(context: ssl.SSLContext | None = None) -> tuple[Server, threading.Thread]:
    server = Server(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def http_server() -> Iterator[str]:
    RELEASE.clear()
    server, thread = serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    RELEASE.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI (Debian package: openssl)")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{d}/self.key", "-out", f"{d}/self.pem", "-days", "30",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    openssl("req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "365",
            "-subj", "/CN=hostwarden test CA")
    openssl("req", *ec, "-keyout", f"{d}/leaf.key", "-out", f"{d}/leaf.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{d}/leaf.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-out", f"{d}/leaf.pem", "-days", "90", "-extfile", f"{d}/san.ext")
    return {k: str(d / k) for k in ("self.pem", "self.key", "ca.pem", "leaf.pem", "leaf.key")}


@pytest.fixture
def https_server(certs: dict[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    which = getattr(request, "param", "self")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs[f"{which}.pem"], certs[f"{which}.key"])
    RELEASE.clear()
    server, thread = serve(ctx)
    yield f"https://127.0.0.1:{server.server_address[1]}"
    RELEASE.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def run(url: str, timeout: float = 3.0, **kw: object):
    config = HttpConfig(name="h", url=url, timeout=Duration(timeout), **kw)
    assert config.validate() == []
    return HttpCheck(config).run(time.monotonic() + timeout)


def metrics(result) -> dict[str, float]:
    return {s.name: s.value for s in result.samples}


def not_after_of(pem: str) -> float:
    out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", pem], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return float(calendar.timegm(time.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")))


# -- plain HTTP -----------------------------------------------------------------------------------

def test_http_ok_status_and_body_regex(http_server: str) -> None:
    result = run(f"{http_server}/ok", body_regex=r"status: healthy")
    assert result.ok and result.status == Status.OK, result.message
    got = metrics(result)
    assert got["hostwarden_http_status_code"] == 200
    assert 0 < got["hostwarden_http_duration_seconds"] < 3
    assert "hostwarden_http_cert_expiry_days" not in got


def test_http_body_regex_mismatch_is_down(http_server: str) -> None:
    result = run(f"{http_server}/ok", body_regex="^ready$")
    assert not result.ok and result.message == f"{http_server}/ok: body does not match /^ready$/"


def test_http_unexpected_status_is_down_and_status_set_honoured(http_server: str) -> None:
    bad = run(f"{http_server}/status/503")
    assert not bad.ok and bad.message == f"{http_server}/status/503: status 503, expected 2xx"
    assert metrics(bad)["hostwarden_http_status_code"] == 503
    assert run(f"{http_server}/status/503", status=[503]).ok
    assert not run(f"{http_server}/status/204", status=[200]).ok


def test_http_redirect_followed_by_default_not_when_disabled(http_server: str) -> None:
    followed = run(f"{http_server}/redirect")
    assert followed.ok and followed.message.startswith(f"{http_server}/ok: status 200")
    kept = run(f"{http_server}/redirect", follow_redirects=False, status=[302])
    assert kept.ok and metrics(kept)["hostwarden_http_status_code"] == 302
    looping = run(f"{http_server}/loop", max_redirects=3)
    assert not looping.ok and looping.message == "more than 3 redirects"


def test_http_post_body_and_303_becomes_get(http_server: str) -> None:
    assert run(f"{http_server}/echo", method="POST", body="ping", body_regex="^posted:ping$").ok
    assert run(f"{http_server}/redirect-303", method="POST", body="x", body_regex="^GET$").ok


def test_http_head_request(http_server: str) -> None:
    assert run(f"{http_server}/method", method="HEAD").ok


def test_http_slow_server_exceeding_timeout_is_down(http_server: str) -> None:
    t0 = time.monotonic()
    result = run(f"{http_server}/slow", timeout=0.5)
    assert time.monotonic() - t0 < 3
    assert not result.ok and result.message == f"{http_server}/slow: timed out after 0.5s"
    assert metrics(result)["hostwarden_http_status_code"] == 0


def test_http_refused_port_is_down() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = run(f"http://127.0.0.1:{port}/")
    assert not result.ok and result.message == f"http://127.0.0.1:{port}/: Connection refused"


def test_http_body_read_is_capped(http_server: str) -> None:
    assert not run(f"{http_server}/big", body_regex="NEEDLE", max_body_bytes=1 << 20).ok
    assert run(f"{http_server}/big", body_regex="NEEDLE", max_body_bytes=4 << 20).ok


def test_http_basic_auth_password_from_env(http_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_HTTP_PASSWORD", "pa55word")
    Server.expected_auth = "Basic " + base64.b64encode(b"ops:pa55word").decode()
    assert run(f"{http_server}/auth", username="ops", password_env="HW_TEST_HTTP_PASSWORD").ok
    assert not run(f"{http_server}/auth").ok
    missing = run(f"{http_server}/auth", username="ops", password_env="HW_TEST_HTTP_UNSET_VAR")
    assert not missing.ok and "HW_TEST_HTTP_UNSET_VAR is not set" in missing.message


def test_http_bearer_token_from_file(http_server: str, tmp_path) -> None:
    (tmp_path / "token").write_text("t0ken-abc\n")
    Server.expected_auth = "Bearer t0ken-abc"
    assert run(f"{http_server}/auth", bearer_token_file=str(tmp_path / "token")).ok


# -- HTTPS ----------------------------------------------------------------------------------------

def test_https_self_signed_verification_fails_but_expiry_reported(https_server: str, certs: dict) -> None:
    result = run(f"{https_server}/ok")
    assert not result.ok and result.status == Status.CRITICAL
    assert result.message.startswith(f"{https_server}/ok: TLS certificate verification failed: ")
    assert "self-signed certificate" in result.message or "self signed certificate" in result.message
    got = metrics(result)
    expected_not_after = not_after_of(certs["self.pem"])
    assert got["hostwarden_http_cert_not_after_timestamp_seconds"] == expected_not_after
    assert got["hostwarden_http_cert_expiry_days"] == pytest.approx((expected_not_after - time.time()) / 86400,
                                                                    abs=0.01)
    assert 29.9 < got["hostwarden_http_cert_expiry_days"] <= 30.0


def test_https_verify_disabled_accepts_self_signed(https_server: str) -> None:
    result = run(f"{https_server}/ok", verify=False)
    assert result.ok, result.message
    assert 29.9 < metrics(result)["hostwarden_http_cert_expiry_days"] <= 30.0


@pytest.mark.parametrize("https_server", ["leaf"], indirect=True)
def test_https_custom_ca_file_verifies(https_server: str, certs: dict) -> None:
    result = run(f"{https_server}/ok", ca_file=certs["ca.pem"])
    assert result.ok, result.message
    got = metrics(result)
    assert got["hostwarden_http_cert_not_after_timestamp_seconds"] == not_after_of(certs["leaf.pem"])
    assert 89.9 < got["hostwarden_http_cert_expiry_days"] <= 90.0
    assert not run(f"{https_server}/ok").ok  # the system store does not know the test CA


@pytest.mark.parametrize("https_server", ["leaf"], indirect=True)
def test_https_min_cert_days_fails_when_expiring_soon(https_server: str, certs: dict) -> None:
    result = run(f"{https_server}/ok", ca_file=certs["ca.pem"], min_cert_days=120)
    assert not result.ok and result.message.endswith(": certificate expires in 90.0 days (min 120)")


def test_cert_not_after_matches_openssl(certs: dict) -> None:
    for name in ("self.pem", "ca.pem", "leaf.pem"):
        with open(certs[name], encoding="ascii") as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        assert cert_not_after(der) == not_after_of(certs[name])
