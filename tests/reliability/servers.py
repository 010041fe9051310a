"""Small real HTTP servers on 127.0.0.1 for the reliability tests.

`ScriptedServer` answers every request with whatever response the test set last (status, headers,
body bytes, or a streamed body of N bytes), counting requests (a subclass may override `answer` to
choose per request, or to drop the connection unanswered); `RecordingServer` answers 200 `{}` and
keeps every request (method, path, headers, body) for the tests that grep for leaked secrets.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b"{}"
    stream_bytes: int = 0  # > 0: send this many bytes of `body` repeated instead (huge bodies)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    def __init__(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type:
        raise NotImplementedError


class ScriptedServer(_Base):
    def __init__(self) -> None:
        self.response = Scripted()
        self.requests = 0
        super().__init__()

    def answer(self, method: str, path: str, body: bytes) -> Scripted | None:
        """The response to one request (called under `lock`); None: close the connection without one."""
        return self.response

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.requests += 1
                    r = server.answer(self.command, self.path, body)
                if r is None:
                    self.close_connection = True
                    return
                self.send_response(r.status)
                for k, v in r.headers.items():
                    self.send_header(k, v)
                size = r.stream_bytes or len(r.body)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    if r.stream_bytes:
                        chunk = (r.body or b"x") * max(1, 65536 // max(1, len(r.body or b"x")))
                        left = r.stream_bytes
                        while left > 0:
                            piece = chunk[:left]
                            self.wfile.write(piece)
                            left -= len(piece)
                    else:
                        self.wfile.write(r.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        return Handler


class RecordingServer(_Base):
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        super().__init__()

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
                out = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        return Handler


def post_webhook(port: int, token: str | None, body: bytes, *, content_type: str | None = "application/json",
                 path: str = "/alerts", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST and return (status, body); status 0 when the server dropped the connection without an answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        h = {"Content-Length": str(len(body))}
        if content_type is not None:
            h["Content-Type"] = content_type
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
        return 0, b""
    finally:
        conn.close()
