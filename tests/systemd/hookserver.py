"""A webhook receiver run *inside* a systemd namespace (stdlib only): `python3 hookserver.py PORT DIR`.

Every POST is logged to DIR/requests.jsonl twice — `{"event": "arrived", ...}` when it came in and
`{"event": "answered", ...}` after the reply was sent — with the path, the headers, the JSON body and
time.time(). Before answering it sleeps for the number of seconds in DIR/delay (0 when missing), so a
test can hold a delivery in flight. Answers 200 with `{"id": "<n>"}`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT, DIR = int(sys.argv[1]), Path(sys.argv[2])
LOG = DIR / "requests.jsonl"
LOCK = threading.Lock()
COUNT = [0]


def record(event: str, handler: BaseHTTPRequestHandler, body: object) -> None:
    line = json.dumps({"event": event, "t": time.time(), "path": handler.path, "headers": dict(handler.headers),
                       "body": body})
    with LOCK, LOG.open("a") as f:
        f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record("arrived", self, body)
        try:
            delay = float((DIR / "delay").read_text().strip() or 0)
        except (OSError, ValueError):
            delay = 0.0
        time.sleep(delay)
        with LOCK:
            COUNT[0] += 1
            reply = json.dumps({"id": str(COUNT[0])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        self.wfile.flush()
        record("answered", self, body)

    def log_message(self, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
(DIR / "ready").write_text(str(PORT))
server.serve_forever()
