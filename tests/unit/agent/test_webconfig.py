"""exporter-toolkit web config: validation with file:line, basic auth, and TLS on a real http.server."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hostwarden.agent.core.schema import ConfigErrors
from hostwarden.agent.core.webconfig import AUTH_CACHE_SECONDS, WebSecurity, load_web_config

from tests.support.tls import Pki, bcrypt_hash, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return {"prometheus": bcrypt_hash("scrape-me"), "ops": bcrypt_hash("other-pass")}


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _problems(excinfo: pytest.ExceptionInfo[ConfigErrors]) -> list[str]:
    return [f"{i.loc.line}: {i.message}" for i in excinfo.value.issues]


# -- loading and validation ---------------------------------------------------------------------------
def test_load_empty_file_no_tls_no_auth(tmp_path: Path) -> None:
    sec = load_web_config(_write(tmp_path, ""))
    assert sec.ssl_context() is None
    assert not sec.tls_enabled and not sec.auth_enabled
    assert sec.check_auth(None) is True
    assert sec.extra_headers == {}


def test_load_every_problem_reported_with_line(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
tls_server_config:
  cert_file: missing.crt
  key_file: missing.key
  client_auth_type: RequireAnyClientCert
  client_allowed_sans: [a]
basic_auth_user:
  x: y
basic_auth_users:
  prometheus: plaintext-password
http_server_config:
  headers:
    X-Frame-Options: allow-all
    X-Powered-By: me
rate_limit: {interval: 1s, burst: 5}
""")
    with pytest.raises(ConfigErrors) as ei:
        load_web_config(path)
    text = "\n".join(_problems(ei))
    assert "4: " in text and "RequireAnyClientCert accepts unverified client certificates" in text
    assert "5: client_allowed_sans is not supported" in text
    assert "6: unknown key 'basic_auth_user' (did you mean 'basic_auth_users'?)" in text
    assert "9: basic_auth_users.prometheus: expected a bcrypt hash" in text
    assert "13: unknown key 'http_server_config.headers.X-Powered-By'" in text
    assert "14: rate_limit is not supported" in text
    assert all(str(i.loc).startswith(path + ":") for i in ei.value.issues)


def test_load_bad_header_values_rejected_at_their_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "http_server_config:\n  headers:\n    X-Frame-Options: allow-all\n"
                            "    X-Content-Type-Options: sniff\n")
    with pytest.raises(ConfigErrors) as ei:
        load_web_config(path)
    assert _problems(ei) == [
        "3: http_server_config.headers: X-Frame-Options must be deny or sameorigin, got 'allow-all'",
        "4: http_server_config.headers: X-Content-Type-Options must be nosniff, got 'sniff'"]


def test_load_missing_cert_file_error_points_at_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
    with pytest.raises(ConfigErrors) as ei:
        load_web_config(path)
    assert _problems(ei) == [f"2: tls_server_config.cert_file: {tmp_path}/nope.crt does not exist",
                             f"3: tls_server_config.key_file: {tmp_path}/nope.key does not exist"]
    assert str(ei.value.issues[0].loc) == f"{path}:2:14"


def test_load_cert_without_key_and_ca_without_auth_type_rejected(tmp_path: Path, pki: Pki) -> None:
    path = _write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n  client_ca_file: {pki.ca_cert}\n")
    with pytest.raises(ConfigErrors) as ei:
        load_web_config(path)
    text = "\n".join(_problems(ei))
    assert "missing key_file" in text
    assert "client CAs are configured without a client_auth_type" in text


def test_load_mismatched_key_rejected_with_location(tmp_path: Path, pki: Pki) -> None:
    path = _write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.client_key}\n")
    with pytest.raises(ConfigErrors) as ei:
        load_web_config(path)
    (problem,) = _problems(ei)
    assert problem.startswith("2: tls_server_config: cannot load the certificate and key")
    assert "mismatch" in problem


def test_load_encrypted_key_fails_instead_of_prompting(tmp_path: Path, pki: Pki) -> None:
    enc = tmp_path / "enc.key"
    subprocess.run(["openssl", "pkey", "-in", str(pki.server_key), "-aes256", "-passout", "pass:secret",
                    "-out", str(enc)], check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    path = _write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {enc}\n")
    with pytest.raises(ConfigErrors, match="the private key is encrypted"):
        load_web_config(path)


def test_load_unknown_cipher_suite_suggests_name(tmp_path: Path, pki: Pki) -> None:
    path = _write(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
                            "  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"
                            "    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA265\n")
    with pytest.raises(ConfigErrors) as ei:
        load_web_config(path)
    assert _problems(ei) == ["6: tls_server_config.cipher_suites: unknown cipher suite "
                             "'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA265' (did you mean "
                             "'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'?)"]


def test_load_relative_paths_resolve_to_config_dir(tmp_path: Path, pki: Pki) -> None:
    for src in (pki.server_cert, pki.server_key):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    sec = load_web_config(_write(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"))
    assert sec.tls_enabled


def test_load_headers_become_extra_headers(tmp_path: Path) -> None:
    sec = load_web_config(_write(tmp_path, "http_server_config:\n  http2: false\n  headers:\n"
                                           "    X-Content-Type-Options: nosniff\n    X-Frame-Options: deny\n"))
    assert sec.extra_headers == {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}


def test_load_basic_auth_without_tls_warns(tmp_path: Path, hashes: dict[str, str], caplog) -> None:
    sec = load_web_config(_write(tmp_path, f"basic_auth_users:\n  prometheus: {hashes['prometheus']}\n"))
    assert sec.auth_enabled and not sec.tls_enabled
    assert "clear text" in caplog.text


# -- basic auth -----------------------------------------------------------------------------------------
@pytest.fixture
def auth(tmp_path: Path, hashes: dict[str, str]) -> WebSecurity:
    users = "".join(f"  {u}: {h}\n" for u, h in hashes.items())
    return load_web_config(_write(tmp_path, f"basic_auth_users:\n{users}"))


def test_check_auth_valid_credentials_true(auth: WebSecurity) -> None:
    assert auth.check_auth(_basic("prometheus", "scrape-me"))
    assert auth.check_auth(_basic("ops", "other-pass"))
    assert auth.check_auth("basic " + _basic("ops", "other-pass").split()[1])  # scheme is case-insensitive


@pytest.mark.parametrize("header", [
    None, "", "Bearer abc", "Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
    _basic("prometheus", "wrong"), _basic("nobody", "scrape-me"), _basic("ops", "scrape-me"),
    _basic("prometheus", "scrape-me\0"), _basic("Prometheus", "scrape-me"),
])
def test_check_auth_bad_credentials_false(auth: WebSecurity, header: str | None) -> None:
    assert auth.check_auth(header) is False


def test_check_auth_success_cached_until_expiry_failures_never(auth: WebSecurity) -> None:
    assert auth.check_auth(_basic("prometheus", "wrong"), now=0.0) is False
    assert auth.auth_cache_size == 0
    assert auth.check_auth(_basic("prometheus", "scrape-me"), now=0.0)
    assert auth.auth_cache_size == 1
    assert auth.check_auth(_basic("prometheus", "scrape-me"), now=AUTH_CACHE_SECONDS - 1)
    assert auth.auth_cache_size == 1
    # a cached success never makes another password valid
    assert auth.check_auth(_basic("prometheus", "scrape-me2"), now=1.0) is False
    assert auth.check_auth(_basic("prometheus", "scrape-me"), now=AUTH_CACHE_SECONDS + 1)
    assert auth.auth_cache_size == 1


# -- TLS on a real http.server ------------------------------------------------------------------------------
class _Server:
    def __init__(self, security: WebSecurity) -> None:
        sec = security

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if not sec.check_auth(self.headers.get("Authorization")):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="hostwarden"')
                    body = b"Unauthorized\n"
                else:
                    self.send_response(200)
                    body = b"metric 1\n"
                for k, v in sec.extra_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # failed handshakes are what several tests provoke

        self.httpd = Server(("127.0.0.1", 0), Handler)
        ctx = security.ssl_context()
        if ctx is not None:
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[_Server] = []

    def start(security: WebSecurity) -> _Server:
        servers.append(_Server(security))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _client_ctx(pki: Pki, *, cert: Path | None = None, key: Path | None = None,
                max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def _get(port: int, ctx: ssl.SSLContext | None, auth: str | None = None) -> http.client.HTTPResponse:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5) if ctx
            else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    conn.request("GET", "/metrics", headers={"Authorization": auth} if auth else {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def _tls_config(tmp_path: Path, pki: Pki, hashes: dict[str, str], extra: str = "") -> WebSecurity:
    return load_web_config(_write(tmp_path, f"""\
tls_server_config:
  cert_file: {pki.server_cert}
  key_file: {pki.server_key}
{extra}basic_auth_users:
  prometheus: {hashes['prometheus']}
http_server_config:
  headers:
    Strict-Transport-Security: max-age=63072000
"""))


def test_tls_basic_auth_server_right_password_200_wrong_401(tmp_path, pki, hashes, serve) -> None:
    srv = serve(_tls_config(tmp_path, pki, hashes))
    ctx = _client_ctx(pki)
    ok = _get(srv.port, ctx, _basic("prometheus", "scrape-me"))
    assert ok.status == 200
    assert ok.getheader("Strict-Transport-Security") == "max-age=63072000"
    wrong = _get(srv.port, ctx, _basic("prometheus", "nope"))
    assert wrong.status == 401
    assert wrong.getheader("WWW-Authenticate", "").startswith("Basic")
    assert _get(srv.port, ctx).status == 401


def test_tls_server_plain_http_client_gets_no_response(tmp_path, pki, hashes, serve) -> None:
    srv = serve(_tls_config(tmp_path, pki, hashes))
    with pytest.raises((http.client.HTTPException, OSError)):
        _get(srv.port, None, _basic("prometheus", "scrape-me"))


def test_tls_min_version_tls13_rejects_tls12_client(tmp_path, pki, hashes, serve) -> None:
    srv = serve(_tls_config(tmp_path, pki, hashes, "  min_version: TLS13\n"))
    with pytest.raises(ssl.SSLError):
        _get(srv.port, _client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2))
    assert _get(srv.port, _client_ctx(pki), _basic("prometheus", "scrape-me")).status == 200


def test_tls_cipher_suites_limit_tls12_negotiation(tmp_path, pki, hashes, serve) -> None:
    srv = serve(_tls_config(tmp_path, pki, hashes, "  max_version: TLS12\n  cipher_suites:\n"
                                                   "    - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n"))
    ctx = _client_ctx(pki)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.2"
        assert tls.cipher()[0] == "ECDHE-ECDSA-CHACHA20-POLY1305"


def test_tls_client_cert_required_verified_against_ca(tmp_path, pki, hashes, serve) -> None:
    srv = serve(_tls_config(tmp_path, pki, hashes, f"  client_auth_type: RequireAndVerifyClientCert\n"
                                                   f"  client_ca_file: {pki.ca_cert}\n"))
    good = _client_ctx(pki, cert=pki.client_cert, key=pki.client_key)
    assert _get(srv.port, good, _basic("prometheus", "scrape-me")).status == 200
    for ctx in (_client_ctx(pki), _client_ctx(pki, cert=pki.other_client_cert, key=pki.other_client_key)):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(srv.port, ctx, _basic("prometheus", "scrape-me"))


def test_tls_inline_cert_and_key_served(tmp_path, pki, hashes, serve) -> None:
    indent = "\n    ".join
    text = (f"tls_server_config:\n  cert: |\n    {indent(pki.server_cert.read_text().splitlines())}\n"
            f"  key: |\n    {indent(pki.server_key.read_text().splitlines())}\n")
    srv = serve(load_web_config(_write(tmp_path, text)))
    assert _get(srv.port, _client_ctx(pki)).status == 200


def test_tls_stalled_handshake_does_not_block_other_clients(tmp_path, pki, hashes, serve) -> None:
    srv = serve(_tls_config(tmp_path, pki, hashes))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5):  # connects, never says hello
        assert _get(srv.port, _client_ctx(pki), _basic("prometheus", "scrape-me")).status == 200
