"""The agent's HTTP endpoint: /metrics from the exposition cache, health and reload endpoints.

HTTP/1.1 with keep-alive (Prometheus reuses connections), a bounded number of requests in flight
(`web.max_requests`, as node_exporter's --web.max-requests; beyond it 503), optional TLS and basic
auth from an exporter-toolkit web config (agent.webconfig).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from hostwarden.agent.core import __version__
from hostwarden.agent.core.tlsreload import FixedTLS
from hostwarden.exporters.prometheus import Exposition

log = logging.getLogger(__name__)


class TLSSource(Protocol):
    """Hands out the SSLContext for each new connection (agent.core.tlsreload: it follows rotation)."""

    def context(self) -> ssl.SSLContext: ...


class Security(Protocol):
    extra_headers: dict[str, str]
    tls: TLSSource | None

    def check_auth(self, authorization_header: str | None) -> bool: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type, family: int,
                 tls: Callable[[], TLSSource | None]) -> None:
        self.address_family = family
        self.tls = tls
        self.connections = Connections()
        super().__init__(addr, handler)

    def get_request(self) -> tuple[Any, Any]:
        """Each connection is wrapped with the TLS context current when it is accepted (a reload or a
        renewed certificate applies to new connections; none: plain HTTP). The handshake happens later,
        in the request's thread."""
        sock, addr = self.socket.accept()
        try:
            source = self.tls()
            if source is not None:
                sock = source.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except Exception as e:
            sock.close()
            raise OSError(f"TLS set-up of a new connection failed: {e}") from e
        return sock, addr


class Connections:
    """The open connections of a server and whether each is between requests (idle), so that stopping
    closes idle keep-alive connections at once and lets a request being handled finish (as Go's
    http.Server.Shutdown does)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: dict[socket.socket, bool] = {}
        self._changed = threading.Condition(self._lock)
        self.draining = False

    def opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._busy[conn] = False

    def busy(self, conn: socket.socket) -> None:
        with self._lock:
            self._busy[conn] = True

    def idle(self, conn: socket.socket) -> bool:
        """Back between requests; True when the server is stopping (close this connection)."""
        with self._lock:
            if self.draining:
                self._busy.pop(conn, None)
            else:
                self._busy[conn] = False
            self._changed.notify_all()
            return self.draining

    def closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._busy.pop(conn, None)
            self._changed.notify_all()

    def drain(self, timeout: float) -> int:
        """Stop: close idle connections now, busy ones once their request is answered; after `timeout`,
        close what is left. Returns how many requests were still in flight at the deadline."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self.draining = True
            while True:
                for conn, busy in list(self._busy.items()):
                    if not busy:
                        _shut(conn)
                        del self._busy[conn]
                left = deadline - time.monotonic()
                if not self._busy or left <= 0:
                    break
                self._changed.wait(min(left, 0.2))
            stuck = len(self._busy)
            for conn in self._busy:
                _shut(conn)
            self._busy.clear()
        return stuck


def _shut(conn: socket.socket) -> None:
    """Wake the connection's thread with end-of-file (the plain socket's shutdown, not SSLSocket's, which
    would drop its SSL object under the thread using it)."""
    try:
        socket.socket.shutdown(conn, socket.SHUT_RDWR)
    except OSError:
        pass


class TrackedHandler(BaseHTTPRequestHandler):
    """Marks its connection busy from the first byte of a request until the response is written, so that
    a stopping server can tell idle keep-alive connections from requests in flight."""

    def setup(self) -> None:
        super().setup()
        self.server.connections.opened(self.connection)  # type: ignore[attr-defined]

    def handle_one_request(self) -> None:
        conns: Connections = self.server.connections  # type: ignore[attr-defined]
        try:
            if not self.rfile.peek(1):  # type: ignore[attr-defined]  # idle until a request starts (or EOF)
                self.close_connection = True
                return
        except (OSError, ValueError):  # timeout, reset, failed handshake, closed by drain
            self.close_connection = True
            return
        conns.busy(self.connection)
        try:
            super().handle_one_request()
        finally:
            if conns.idle(self.connection):
                self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connections.closed(self.connection)  # type: ignore[attr-defined]


def response_bytes(version: str, code: int, fields: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """One HTTP/1.x response, status line, header fields and body, as bytes to write at once (the public
    BaseHTTPRequestHandler API writes headers on their own; its buffer is private)."""
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = ""
    head = [f"{version} {code} {reason}\r\n"]
    head += [f"{k}: {v}\r\n" for k, v in fields]
    head.append("\r\n")
    return "".join(head).encode("latin-1", "strict") + body


class HTTPService:
    """A threaded HTTP(S) server's lifecycle, shared by /metrics and the Alertmanager receiver.

    Binds at construction (a taken port fails early), serves from a daemon thread without waking to
    poll a flag (stop() wakes the loop with a connection), and does the TLS handshake in the request's
    thread under its timeout, so a client that connects and never says hello blocks nobody.
    Subclasses implement `_handler_class()`.
    """

    thread_name = "http"

    drain_timeout = 5.0  # stop(): how long requests in flight may take to be answered

    def __init__(self, listen_address: str, *, ssl_context: ssl.SSLContext | None = None,
                 tls: TLSSource | None = None) -> None:
        host, _, port = listen_address.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # `tls` may be replaced while serving (a reload); new connections use the one set then
        self.tls: TLSSource | None = tls if tls is not None else (
            FixedTLS(ssl_context) if ssl_context is not None else None)
        self._httpd = _Server((host, int(port)), self._handler_class(), family, self._current_tls)
        self._thread: threading.Thread | None = None

    def _current_tls(self) -> TLSSource | None:
        return self.tls

    def _handler_class(self) -> type:
        raise NotImplementedError

    @property
    def address(self) -> tuple[str, int]:
        addr = self._httpd.server_address
        return str(addr[0]), int(addr[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 60.0},
                                        name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting (the port is free when this returns), then drain: requests in flight are answered,
        idle keep-alive connections are closed (`drain_timeout` bounds the wait). Never started: just unbind."""
        if self._thread is None:
            self._httpd.server_close()
            return
        stopper = threading.Thread(target=self._httpd.shutdown, daemon=True)
        stopper.start()
        host, port = self.address
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        deadline = time.monotonic() + 5.0
        while stopper.is_alive() and time.monotonic() < deadline:
            try:  # wake the selector so serve_forever sees the shutdown request
                with socket.create_connection((host, port), timeout=0.5):
                    pass
            except OSError:
                pass
            stopper.join(0.2)
        self._httpd.server_close()
        stuck = self._httpd.connections.drain(self.drain_timeout)
        if stuck:
            log.warning("%s: %d requests still in flight after %.0f s; their connections were closed",
                        self.thread_name, stuck, self.drain_timeout)


def set_nodelay(connection: socket.socket) -> None:
    """Headers and body leave in one segment anyway; no Nagle delay on keep-alive connections."""
    try:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class MetricsServer(HTTPService):
    def __init__(self, exposition: Exposition, listen_address: str, *, telemetry_path: str = "/metrics",
                 security: Security | None = None, max_requests: int = 40,
                 on_reload: Callable[[], bool] | None = None,
                 ready: Callable[[], bool] | None = None, app: Any | None = None) -> None:
        self.exposition = exposition
        self.app = app  # exporters.webapp.WebApp: status page, /api/v1, runbooks
        self.telemetry_path = telemetry_path
        self.security = security
        self.on_reload = on_reload
        self.ready = ready or (lambda: True)
        self._slots = threading.BoundedSemaphore(max(1, max_requests))
        super().__init__(listen_address)

    def _current_tls(self) -> TLSSource | None:
        """From the web config installed last (a reload replaces `security`)."""
        return self.security.tls if self.security is not None else None

    def stop(self) -> None:
        super().stop()
        if self.app is not None:
            self.app.close()

    def _handler_class(self) -> type:
        server = self

        class Handler(TrackedHandler):
            protocol_version = "HTTP/1.1"
            server_version = f"hostwarden/{__version__}"
            timeout = 30

            def setup(self) -> None:
                super().setup()
                set_nodelay(self.connection)

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
                      headers: dict[str, str] | None = None) -> None:
                fields = [("Server", self.version_string()), ("Date", self.date_time_string()),
                          ("Content-Type", content_type), ("Content-Length", str(len(body))),
                          *(headers or {}).items()]
                if server.security is not None:
                    fields += server.security.extra_headers.items()
                # headers and body in one write: two small segments on a keep-alive connection meet
                # Nagle's algorithm and the peer's delayed ACK (~40 ms per scrape)
                self.wfile.write(response_bytes(self.protocol_version, code, fields,
                                                b"" if self.command == "HEAD" else body))

            def _authorized(self) -> bool:
                if server.security is None or server.security.check_auth(self.headers.get("Authorization")):
                    return True
                self._send(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="hostwarden"'})
                return False

            def _dispatch(self) -> None:
                if not server._slots.acquire(blocking=False):
                    self._send(503, b"too many requests in flight\n")
                    return
                try:
                    if not self._authorized():
                        return
                    path = self.path.split("?", 1)[0]
                    if path == server.telemetry_path and self.command in ("GET", "HEAD"):
                        body, ctype, gz = server.exposition.body_for(self.headers.get("Accept", ""),
                                                                     self.headers.get("Accept-Encoding", ""))
                        self._send(200, body, ctype, {"Content-Encoding": "gzip"} if gz else None)
                    elif path == "/-/healthy":
                        self._send(200, b"Healthy.\n")
                    elif path == "/-/ready":
                        ok = server.ready()
                        self._send(200 if ok else 503, b"Ready.\n" if ok else b"Not ready.\n")
                    elif path == "/-/reload":  # answers as Prometheus does (--web.enable-lifecycle)
                        if self.command not in ("POST", "PUT"):
                            self._send(405, b"Only POST or PUT requests allowed")
                        elif server.on_reload is None:
                            self._send(403, b"Lifecycle API is not enabled.")
                        else:
                            ok = server.on_reload()
                            self._send(200 if ok else 500, b"reloaded\n" if ok else b"reload failed, see log\n")
                    elif server.app is not None and self._app():
                        pass
                    elif path == "/" and self.command in ("GET", "HEAD"):
                        page = (f"<html><head><title>hostwarden</title></head><body><h1>hostwarden {__version__}</h1>"
                                f'<p><a href="{server.telemetry_path}">Metrics</a></p></body></html>\n')
                        self._send(200, page.encode(), "text/html; charset=utf-8")
                    else:
                        self._send(404, b"Not Found\n")
                finally:
                    server._slots.release()

            def _app(self) -> bool:
                """Let the web app answer; False when the path is not one of its."""
                body = b""
                if self.command in ("POST", "PUT"):
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > 1 << 20:
                        self._send(413, b"request body too large\n")
                        return True
                    body = self.rfile.read(length) if length > 0 else b""
                try:
                    resp = server.app.handle(self.command, self.path, body, self.headers.get("Content-Type", ""))
                except Exception:
                    log.exception("%s %s failed", self.command, self.path.split("?", 1)[0])
                    self._send(500, b"internal error, see the agent's log\n")
                    return True
                if resp is None:
                    return False
                self._send(resp.code, resp.body, resp.content_type, resp.headers)
                return True

            do_GET = _dispatch
            do_HEAD = _dispatch
            do_POST = _dispatch
            do_PUT = _dispatch

        return Handler
