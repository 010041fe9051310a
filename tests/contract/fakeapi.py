"""A small stateful HTTP API server on 127.0.0.1 for contract tests of the SaaS ticket backends.

Each vendor module subclasses `FakeAPI`, keeps the vendor's objects in memory and answers with the
documented shapes (status codes, bodies, pagination, error documents, rate-limit headers). Every request
is recorded (method, path, query, headers, parsed JSON body) so tests assert exact request bodies.
`fail_next()` injects the documented failure responses (401, 404, 409/422, 429 + headers, 5xx).
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when not JSON, or None
    raw: bytes = b""

    def q(self, key: str, default: str = "") -> str:
        return self.query.get(key, [default])[0]


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list → JSON; str → text; None → empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Injection:
    method: str
    pattern: re.Pattern[str]
    response: Response
    times: int


Route = tuple[str, re.Pattern[str], Callable[..., Response]]


class FakeAPI:
    """Subclasses call `route(method, regex, handler)`; a handler gets (request, *groups) → Response."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._routes: list[Route] = []
        self._injections: list[_Injection] = []
        self._lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakeapi", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FakeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- configuration ------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    def fail_next(self, method: str, pattern: str, status: int, body: Any = None,
                  headers: dict[str, str] | None = None, times: int = 1) -> None:
        with self._lock:
            self._injections.append(_Injection(method, re.compile(pattern + r"\Z"),
                                               Response(status, body, dict(headers or {})), times))

    def calls(self, method: str | None = None, pattern: str | None = None) -> list[Request]:
        rx = re.compile(pattern + r"\Z") if pattern else None
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (rx is None or rx.match(r.path))]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- dispatch -----------------------------------------------------------------------------------
    def authorize(self, request: Request) -> Response | None:
        """Override: return an error Response when the credentials are wrong."""
        return None

    def dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            for inj in self._injections:
                if inj.method == request.method and inj.pattern.match(request.path) and inj.times > 0:
                    inj.times -= 1
                    return inj.response
            denied = self.authorize(request)
            if denied is not None:
                return denied
            for method, rx, handler in self._routes:
                m = rx.match(request.path)
                if m and method == request.method:
                    return handler(request, *m.groups())
            if any(rx.match(request.path) for _, rx, _ in self._routes):
                return Response(405, {"error": "method not allowed"})
            return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "not found"})

    def _handler_class(self) -> type:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle/delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: Any = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw.decode("utf-8", "replace")
                req = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              {k.lower(): v for k, v in self.headers.items()}, body, raw)
                resp = api.dispatch(req)
                if isinstance(resp.body, dict | list | bool):
                    payload = json.dumps(resp.body).encode()
                    ctype = "application/json; charset=utf-8"
                elif isinstance(resp.body, str):
                    payload = resp.body.encode()
                    ctype = "text/html; charset=utf-8"
                else:
                    payload, ctype = b"", ""
                self.send_response(resp.status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler
