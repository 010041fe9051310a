"""exporters.tickets.http against real HTTP(S) servers on 127.0.0.1: the retry decision, TLS, proxies, redaction."""

from __future__ import annotations

import email.utils
import http.server
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostwarden.agent.core.incident import PermanentError, TransientError
from hostwarden.exporters.tickets.http import HttpClient, classify, parse_retry_after

from tests.support.agent import free_port
from tests.support.tls import make_pki

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class _Server:
    """A loopback HTTP server whose answer is a function of the request; remembers what it received."""

    def __init__(self, answer: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.command, self.path, dict(self.headers), self.rfile.read(n)))
                answer(self)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    servers: list[_Server] = []

    def start(answer: Handler, tls: ssl.SSLContext | None = None) -> _Server:
        servers.append(_Server(answer, tls))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return answer


def test_parse_retry_after_seconds_date_and_garbage() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_classify_statuses_match_the_backend_contract() -> None:
    assert classify(200) is None and classify(204) is None
    for s in (408, 425, 429, 500, 502, 503, 504):
        assert classify(s) is TransientError, s
    for s in (400, 401, 403, 404, 409, 410, 422):
        assert classify(s) is PermanentError, s


def test_request_2xx_returns_response_and_sends_headers_json(serve: Callable[..., _Server]) -> None:
    srv = serve(reply(201, b'{"id": 7}', {"Content-Type": "application/json"}))
    c = HttpClient(f"http://127.0.0.1:{srv.port}/base/", timeout=5, headers={"X-Key": "k3y-value"},
                   secret_headers=("X-Key",))
    assert c.json("POST", "/things.json", json_body={"a": 1}, params={"q": "x y"}) == {"id": 7}
    method, path, headers, body = srv.requests[0]
    assert (method, path) == ("POST", "/base/things.json?q=x+y")
    assert headers["X-Key"] == "k3y-value" and headers["User-Agent"] == "hostwarden"
    assert json.loads(body) == {"a": 1}


def test_request_503_retry_after_raises_transient_with_delay(serve: Callable[..., _Server]) -> None:
    srv = serve(reply(503, b"maintenance", {"Retry-After": "42"}))
    with pytest.raises(TransientError, match=r"HTTP 503 .*maintenance") as e:
        HttpClient(f"http://127.0.0.1:{srv.port}", timeout=5).request("GET", "/x")
    assert e.value.retry_after == 42.0


def test_request_429_http_date_raises_transient_with_delay(serve: Callable[..., _Server]) -> None:
    srv = serve(reply(429, b"", {"Retry-After": email.utils.formatdate(time.time() + 60, usegmt=True)}))
    with pytest.raises(TransientError) as e:
        HttpClient(f"http://127.0.0.1:{srv.port}", timeout=5).request("GET", "/x")
    assert e.value.retry_after is not None and 50 < e.value.retry_after <= 60


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_request_client_errors_raise_permanent_with_body(serve: Callable[..., _Server], status: int) -> None:
    srv = serve(reply(status, b'{"errors": ["Subject cannot be blank"]}'))
    with pytest.raises(PermanentError, match=f"GET http://127.0.0.1:{srv.port}/x: HTTP {status}.*Subject cannot"):
        HttpClient(f"http://127.0.0.1:{srv.port}", timeout=5).request("GET", "/x", params={"key": "not-in-msg"})


def test_request_redirect_raises_permanent_naming_location_and_is_not_followed(
        serve: Callable[..., _Server]) -> None:
    srv = serve(reply(301, b"", {"Location": "https://tickets.example.com/issues.json"}))
    with pytest.raises(PermanentError, match=re.escape("redirect to https://tickets.example.com/issues.json")):
        HttpClient(f"http://127.0.0.1:{srv.port}", timeout=5).request("POST", "/issues.json", json_body={})
    assert len(srv.requests) == 1


def test_json_non_json_2xx_raises_permanent(serve: Callable[..., _Server]) -> None:
    srv = serve(reply(200, b"<html>login</html>", {"Content-Type": "text/html"}))
    with pytest.raises(PermanentError, match="expected JSON, got text/html"):
        HttpClient(f"http://127.0.0.1:{srv.port}", timeout=5).json("GET", "/x")


def test_request_secret_echoed_in_error_body_is_redacted(serve: Callable[..., _Server]) -> None:
    def echo(h: http.server.BaseHTTPRequestHandler) -> None:
        reply(401, f"bad key {h.headers['X-Key']} / {h.headers['Authorization']}".encode())(h)

    srv = serve(echo)
    c = HttpClient(f"http://127.0.0.1:{srv.port}", timeout=5, headers={"X-Key": "s3cr3t-api-key"},
                   secret_headers=("X-Key",), auth=("bob", "hunter2-password"))
    with pytest.raises(PermanentError) as e:
        c.request("GET", "/x")
    assert "s3cr3t-api-key" not in str(e.value)
    assert str(e.value).endswith("bad key <redacted> / Basic <redacted>")  # base64(user:password) too


def test_request_connection_refused_raises_transient() -> None:
    with pytest.raises(TransientError, match="connection failed"):
        HttpClient(f"http://127.0.0.1:{free_port()}", timeout=5).request("GET", "/x")


def test_request_slow_server_raises_transient_timeout(serve: Callable[..., _Server]) -> None:
    release = threading.Event()

    def slow(h: http.server.BaseHTTPRequestHandler) -> None:
        release.wait(5)
        reply(200, b"{}")(h)

    srv = serve(slow)
    try:
        with pytest.raises(TransientError, match=re.escape("timed out after 0.3s")):
            HttpClient(f"http://127.0.0.1:{srv.port}", timeout=0.3).request("GET", "/x")
    finally:
        release.set()


def test_request_tls_untrusted_then_ca_file_then_verify_off(serve: Callable[..., _Server], tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    srv = serve(reply(200, b'{"ok": true}'), tls=ctx)
    url = f"https://127.0.0.1:{srv.port}"
    with pytest.raises(TransientError, match="TLS error"):
        HttpClient(url, timeout=5).request("GET", "/x")
    with pytest.raises(TransientError, match="TLS error"):
        HttpClient(url, timeout=5, ca_file=str(pki.other_ca_cert)).request("GET", "/x")
    assert HttpClient(url, timeout=5, ca_file=str(pki.ca_cert)).json("GET", "/x") == {"ok": True}
    assert HttpClient(url, timeout=5, verify=False).json("GET", "/x") == {"ok": True}


def test_request_ca_file_wins_over_requests_ca_bundle_env(serve: Callable[..., _Server], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pki = make_pki(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    srv = serve(reply(200, b"{}"), tls=ctx)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_ca_cert))
    assert HttpClient(f"https://127.0.0.1:{srv.port}", timeout=5, ca_file=str(pki.ca_cert)).json("GET", "/") == {}


def test_request_uses_http_proxy_from_environment(serve: Callable[..., _Server],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = serve(reply(200, b'{"via": "proxy"}'))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    c = HttpClient("http://tickets.invalid", timeout=5)
    assert c.json("GET", "/issues.json") == {"via": "proxy"}
    assert proxy.requests[0][1] == "http://tickets.invalid/issues.json"  # absolute URI: a proxy request
    monkeypatch.setenv("NO_PROXY", "tickets.invalid")
    with pytest.raises(TransientError, match="connection failed"):
        HttpClient("http://tickets.invalid", timeout=5).request("GET", "/issues.json")


def test_set_response_body_adapter_still_fits_requests() -> None:
    """The one place that reaches into requests' private state: this fails when an upgrade changes it."""
    import requests
    from hostwarden.exporters.tickets.http import set_response_body

    resp = requests.Response()
    resp.status_code = 200
    resp.encoding = "utf-8"
    resp.raw = None
    set_response_body(resp, b'{"id": 7, "name": "\xc3\xa9"}')
    assert resp.content == b'{"id": 7, "name": "\xc3\xa9"}'
    assert resp.text == '{"id": 7, "name": "é"}'
    assert resp.json() == {"id": 7, "name": "é"}
    assert list(resp.iter_content(4))[:1] == [b'{"id']  # consumed: iterates what was set, never the raw stream
