"""`email` backend: incidents as mail to a helpdesk mailbox, threaded by Message-ID.

RT, OTRS/Znuny, osTicket, Zammad and Freshdesk all open a ticket from an incoming mail and append
follow-ups that reference it (`In-Reply-To`/`References`). The first mail of an incident carries a
`Message-ID` derived from the fingerprint and the incident's start, so a retried send reuses it; every
later mail (update, resolution, reopening) replies to it. The subject carries `[hw:<short-fp>]` for
helpdesks that thread by subject.

Mail cannot be searched: `find()` returns None and the outbox's per-operation idempotency stands in for
dedup (a retried mail has the same Message-ID, which helpdesks drop as a duplicate). Headers are built
with the `email` package from sanitised values, so a label holding CR/LF cannot add a header.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal

from hostwarden.agent.core.incident import Incident, PermanentError, TicketRef, TransientError
from hostwarden.agent.core.secrets import resolve
from hostwarden.agent.core.units import human_duration
from hostwarden.exporters.tickets import render
from hostwarden.exporters.tickets.base import BackendConfig, idempotency_key, register

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
SESSION_TIMEOUTS = 4  # a whole SMTP session (connect to QUIT) may take this many `timeout`s
_CTRL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class EmailConfig(BackendConfig):
    host: str = "localhost"
    port: int | None = None  # default: 587 (starttls), 465 (tls), 25 (none)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    from_address: str = field(default="", metadata={"key": "from"})
    to: list[str] = field(default_factory=list)
    subject_prefix: str = ""
    message_id_domain: str | None = None  # default: the domain of `from`
    local_hostname: str | None = None  # the EHLO name; default: the FQDN

    def validate(self) -> list[str]:
        problems = []
        if not self.from_address or "@" not in self.from_address:
            problems.append("'from' must be a mail address (user@domain)")
        if not self.to:
            problems.append("'to' must list at least one mail address")
        problems += [f"'to': {a!r} is not a mail address" for a in self.to if "@" not in a]
        if self.password_env and self.password_file:
            problems.append("set only one of password_env and password_file")
        if (self.password_env or self.password_file) and not self.username:
            problems.append("a password needs a username")
        if self.port is not None and not 0 < self.port < 65536:
            problems.append(f"port {self.port} is out of range")
        return problems


def header_text(value: str, max_len: int = 200) -> str:
    """One line of header-safe text: control characters (CR, LF, TAB…) become spaces, bounded length."""
    text = " ".join(_CTRL.sub(" ", value).split())
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def short_fp(fingerprint: str) -> str:
    return fingerprint[:8]


@register("email")
class EmailBackend:
    Config = EmailConfig

    def __init__(self, config: EmailConfig, **_context: Any) -> None:
        self.config = config
        self.name = config.name
        self._password: str | None = None
        if (config.password_env or config.password_file) and not config.dry_run:
            self._password = resolve(env=config.password_env, file=config.password_file,
                                     what=f"tickets backend {config.name}: password")
        self._domain = header_text(config.message_id_domain or config.from_address.rpartition("@")[2]
                                   or "hostwarden.invalid")

    # -- the TicketBackend interface --------------------------------------------------------------------
    def find(self, fingerprint: str) -> TicketRef | None:
        return None  # a mailbox cannot be searched; the outbox's idempotency keys cover retries

    def open(self, incident: Incident) -> TicketRef:
        root = self.root_message_id(incident)
        msg = self._message(incident, subject=self.subject(incident), body=render.render_body(incident, "plain"),
                            message_id=root, reply_to_root=None)
        self._send(msg, what=f"open {incident.fingerprint}")
        ref_id = f"dry-run-{incident.fingerprint}" if self.config.dry_run else root
        return TicketRef(backend=self.name, id=ref_id, url="")

    def update(self, ref: TicketRef, incident: Incident, event: str) -> None:
        body = render.render_event(incident, event, "plain")
        self._reply(ref, incident, "update", event, body)

    def resolve(self, ref: TicketRef, incident: Incident) -> None:
        end = incident.resolved_at
        text = "Resolved" + (f" after {human_duration(end - incident.opened_at)}" if end else "") + "."
        self._reply(ref, incident, "resolve", text, render.render_event(incident, text, "plain"))

    def reopen(self, ref: TicketRef, incident: Incident) -> None:
        text = f"Firing again (reopened {incident.reopen_count} time{'s' if incident.reopen_count != 1 else ''})."
        self._reply(ref, incident, "reopen", text, render.render_event(incident, text, "plain"))

    # -- building messages ------------------------------------------------------------------------------
    def root_message_id(self, incident: Incident) -> str:
        """Deterministic: the same incident (fingerprint + start) always gets the same first Message-ID."""
        return f"<hostwarden.{incident.fingerprint}.{int(incident.opened_at)}@{self._domain}>"

    def subject(self, incident: Incident) -> str:
        title = header_text(render.render_title(incident, max_len=200))
        return header_text(f"{self.config.subject_prefix} [hw:{short_fp(incident.fingerprint)}] {title}".strip(),
                           max_len=250)

    def _reply(self, ref: TicketRef, incident: Incident, op: str, event: str, body: str) -> None:
        root = ref.id if ref.id.startswith("<") else self.root_message_id(incident)
        # the same on every retry of this operation: the outbox's idempotency key, else what the operation says
        basis = idempotency_key() or "\x00".join(
            (op, event, str(len(incident.timeline)), str(incident.reopen_count), str(incident.resolved_at)))
        digest = hashlib.sha256(basis.encode()).hexdigest()[:16]
        mid = f"<hostwarden.{incident.fingerprint}.{int(incident.opened_at)}.{op}.{digest}@{self._domain}>"
        msg = self._message(incident, subject="Re: " + self.subject(incident), body=body, message_id=mid,
                            reply_to_root=root)
        self._send(msg, what=f"{op} {incident.fingerprint}")

    def _message(self, incident: Incident, *, subject: str, body: str, message_id: str,
                 reply_to_root: str | None) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = _address(self.config.from_address, self.name)
        msg["To"] = [_address(a, self.name) for a in self.config.to]
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id
        if reply_to_root:
            msg["In-Reply-To"] = reply_to_root
            msg["References"] = reply_to_root
        msg["X-Hostwarden-Fingerprint"] = header_text(incident.fingerprint, 64)
        msg["X-Hostwarden-Priority"] = header_text(incident.priority, 8)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: helpdesks send no auto-reply to it
        msg["X-Auto-Response-Suppress"] = "All"
        msg.set_content(body, subtype="plain", charset="utf-8")
        return msg

    # -- SMTP -------------------------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self, deadline: _Deadline) -> smtplib.SMTP:
        cfg = self.config
        port = cfg.port or DEFAULT_PORTS[cfg.security]
        timeout = float(cfg.timeout)
        if cfg.security == "tls":
            smtp: smtplib.SMTP = _SMTP_SSL(cfg.host, port, local_hostname=cfg.local_hostname,
                                           timeout=timeout, context=self._tls_context(), deadline=deadline)
        else:
            smtp = _SMTP(cfg.host, port, local_hostname=cfg.local_hostname, timeout=timeout, deadline=deadline)
        try:
            smtp.ehlo()
            if cfg.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise PermanentError(f"{cfg.name}: {cfg.host}:{port} does not offer STARTTLS (security: starttls)")
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if cfg.username:
                if not smtp.has_extn("auth"):
                    raise PermanentError(f"{cfg.name}: {cfg.host}:{port} offers no AUTH; a username is configured")
                try:
                    smtp.login(cfg.username, self._password or "")
                except smtplib.SMTPResponseException:
                    raise
                except smtplib.SMTPException as e:  # "No suitable authentication method found."
                    raise PermanentError(f"{cfg.name}: {cfg.host}:{port}: {e}") from None
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _send(self, msg: EmailMessage, *, what: str) -> None:
        cfg = self.config
        if cfg.dry_run:
            log.info("dry run: %s would mail %r to %s (Message-ID %s)", cfg.name, msg["Subject"],
                     ", ".join(cfg.to), msg["Message-ID"])
            return
        deadline = _Deadline(SESSION_TIMEOUTS * float(cfg.timeout))
        try:
            smtp = self._connect(deadline)
            try:
                refused = smtp.send_message(msg, from_addr=cfg.from_address, to_addrs=list(cfg.to))
            finally:
                _close(smtp)
        except Exception as e:
            if deadline.expired:
                raise TransientError(f"{cfg.name}: SMTP session with {cfg.host} took longer than "
                                     f"{deadline.seconds:g}s ({SESSION_TIMEOUTS} x timeout); aborted") from None
            raise self._classified(e) from None
        finally:
            deadline.cancel()
        if refused:
            log.warning("%s: %s: some recipients refused: %s", cfg.name, what, ", ".join(sorted(refused)))
        log.info("%s: mailed %s (%s)", cfg.name, what, msg["Message-ID"])

    def _classified(self, e: Exception) -> Exception:
        """The outbox's view of an SMTP failure: 4xx and connection trouble retry, 5xx and TLS rejection do not."""
        cfg = self.config
        if isinstance(e, TransientError | PermanentError):
            return e
        if isinstance(e, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in e.recipients.values()]
            text = "; ".join(f"{rcpt}: {code} {_decode(m)}" for rcpt, (code, m) in e.recipients.items())
            return _by_code(min(codes), f"{cfg.name}: recipients refused: {text}")
        if isinstance(e, smtplib.SMTPResponseException):  # sender/data/helo/auth refused: 4xx retry, 5xx not
            return _by_code(e.smtp_code, f"{cfg.name}: {type(e).__name__}: {_reply_text(e)}")
        if isinstance(e, smtplib.SMTPNotSupportedError):
            return PermanentError(f"{cfg.name}: {e}")
        if isinstance(e, ssl.SSLCertVerificationError):
            return PermanentError(f"{cfg.name}: TLS certificate of {cfg.host} rejected: {e.verify_message}")
        if isinstance(e, TimeoutError | smtplib.SMTPException | OSError):
            return TransientError(f"{cfg.name}: cannot send mail via {cfg.host}: {type(e).__name__}: {e}")
        return e


def _address(text: str, backend: str) -> Address:
    clean = header_text(text, 320)
    try:
        return Address(addr_spec=clean)
    except (ValueError, IndexError) as e:
        raise PermanentError(f"{backend}: bad mail address {clean!r}: {e}") from None


class _Deadline:
    """Ends an SMTP session that runs past `seconds`: smtplib's timeout applies to each read, so a server
    sending endless `250-` continuation lines (or one byte a second) would otherwise hold the outbox worker
    forever. When the time is up the socket is shut down, which ends any blocked read."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    """Mixed into smtplib's classes: every socket they open is put under the session's deadline."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        self._deadline = deadline
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self._deadline.watch(sock)
        return sock


class _SMTP(_Watched, smtplib.SMTP):
    pass


class _SMTP_SSL(_Watched, smtplib.SMTP_SSL):
    pass


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _decode(msg: bytes | str) -> str:
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)


def _reply_text(e: smtplib.SMTPResponseException) -> str:
    return f"{e.smtp_code} {_decode(e.smtp_error)}"


def _by_code(code: int, message: str) -> Exception:
    """SMTP 4xx replies are temporary (retry), 5xx permanent."""
    return TransientError(message) if 400 <= code < 500 else PermanentError(message)
