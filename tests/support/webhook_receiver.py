"""A counting webhook receiver on 127.0.0.1 for the incident tests: a real HTTP server in a thread.

It records every request (headers, JSON body, arrival time), deduplicates tickets by the
`Idempotency-Key` the way a careful receiver would (the first `open` with a key creates a ticket, a
repeat returns the same ticket), and can be scripted: `down()` refuses connections on its port,
`script([...])` answers the next requests with given statuses/headers before answering 200 again.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    at: float  # time.monotonic() at arrival
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered

    @property
    def key(self) -> str:
        return self.headers.get("Idempotency-Key", "")

    @property
    def op(self) -> str:
        return str(self.body.get("operation", ""))

    @property
    def fingerprint(self) -> str:
        return str((self.body.get("incident") or {}).get("fingerprint", ""))


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class CountingReceiver:
    def __init__(self, *, latency: float = 0.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.latency = latency
        self.ssl_context = ssl_context
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.tickets: dict[str, str] = {}  # open idempotency key -> ticket id
        self._script: deque[Reply] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._blocker: socket.socket | None = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        sock.close()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    # -- control ------------------------------------------------------------------------------------------
    def up(self) -> CountingReceiver:
        if self._blocker is not None:
            self._blocker.close()
            self._blocker = None
        if self._server is None:
            receiver = self

            class Handler(BaseHTTPRequestHandler):
                def do_POST(self) -> None:
                    receiver._handle(self)

                def log_message(self, *args: Any) -> None:
                    pass

            ThreadingHTTPServer.allow_reuse_address = True
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            self._server.daemon_threads = True
            if self.ssl_context is not None:
                self._server.socket = self.ssl_context.wrap_socket(self._server.socket, server_side=True)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            daemon=True)
            self._thread.start()
        return self

    def down(self) -> None:
        """Stop serving and keep the port bound without listening: connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._blocker is None:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.port))
            self._blocker = s

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._blocker is not None:
            self._blocker.close()
            self._blocker = None

    def script(self, replies: list[Reply]) -> None:
        with self.lock:
            self._script.extend(replies)

    # -- views ------------------------------------------------------------------------------------------------
    def accepted(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def distinct(self) -> list[Request]:
        """The first accepted request of every idempotency key, in arrival order (what a deduplicating
        receiver acts on)."""
        seen: set[str] = set()
        out = []
        for r in self.accepted():
            if r.key not in seen:
                seen.add(r.key)
                out.append(r)
        return out

    # -- serving ----------------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        if len(raw) != length:
            return  # the client died mid-request (kill -9): nothing was received
        with self.lock:
            reply = self._script.popleft() if self._script else Reply()
        if reply.delay or self.latency:
            time.sleep(reply.delay or self.latency)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        answer: dict[str, Any] = {}
        with self.lock:
            req = Request(time.monotonic(), h.path, dict(h.headers.items()), body, reply.status)
            self.requests.append(req)
            if 200 <= reply.status < 300 and req.op == "open":
                tid = self.tickets.setdefault(req.key, f"T-{len(self.tickets) + 1}")
                answer = {"id": tid, "url": f"http://127.0.0.1:{self.port}/tickets/{tid}"}
        data = json.dumps(answer).encode()
        try:
            h.send_response(reply.status)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was killed after sending: it will send again, with the same key
