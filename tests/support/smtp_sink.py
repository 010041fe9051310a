"""A real SMTP server process for tests (aiosmtpd), storing every accepted message in a directory.

    python -m tests.support.smtp_sink --listen 127.0.0.1:2525 --maildir DIR
        [--starttls CERT KEY | --smtps CERT KEY] [--auth-user NAME (password in $SMTP_SINK_PASSWORD)]
        [--refuse-rcpt ADDRESS=CODE ...]

Each message is written as `<n>.eml` (the DATA as received) plus `<n>.json` (envelope: mail_from,
rcpt_tos, the authenticated login, whether the session was TLS). `READY <port>` on stdout when listening.
SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, maildir: Path, refuse: dict[str, int]) -> None:
        self.maildir = maildir
        self.refuse = refuse
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list) -> str:
        code = self.refuse.get(address.lower())
        if code is not None:
            return f"{code} {'try again later' if code < 500 else 'no such mailbox'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            n = self.count
        auth = getattr(session, "auth_data", None)
        login = auth.decode() if isinstance(auth, bytes) else auth
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "login": login,
                "tls": server.transport.get_extra_info("ssl_object") is not None}
        tmp = self.maildir / f".{n}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        (self.maildir / f"{n}.json").write_text(json.dumps(meta))
        tmp.rename(self.maildir / f"{n}.eml")
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--maildir", required=True, type=Path)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth-user")
    p.add_argument("--refuse-rcpt", action="append", default=[], metavar="ADDRESS=CODE")
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    args.maildir.mkdir(parents=True, exist_ok=True)
    refuse = {a.split("=")[0].lower(): int(a.split("=")[1]) for a in args.refuse_rcpt}
    handler = Sink(args.maildir, refuse)
    server_kwargs: dict[str, Any] = {}
    ssl_context = None
    if args.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*args.starttls)
        server_kwargs.update(tls_context=ctx, require_starttls=True)
    if args.smtps:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(*args.smtps)
    if args.auth_user:
        password = os.environ["SMTP_SINK_PASSWORD"].encode()
        user = args.auth_user.encode()

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

        server_kwargs.update(authenticator=authenticator, auth_required=True,
                             auth_require_tls=bool(args.starttls or args.smtps))
    controller = Controller(handler, hostname=host, port=int(port), ssl_context=ssl_context,
                            server_kwargs=server_kwargs, ready_timeout=10)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    print(f"READY {port}", flush=True)
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
