"""Alertmanager webhook receiver: the component behind `hostwarden receive` and the `receiver:` config section.

A fleet's Alertmanager groups alerts from many hosts; pointed at this endpoint (a `webhook_configs` URL),
each notification (payload version 4) becomes incidents through the same dedup, outbox and ticket
backends as the agent's own alerts.

One ticket per Alertmanager group, as jiralert does: a group is one incident whose fingerprint is
derived from the group's `groupKey` and the `receiver` name alone (never from the alerts' changing
labels), so membership changes update the ticket instead of opening new ones. The incident's alert
stands for the whole group: its labels are those common to the firing members (plus the group labels),
its value is how many members fire, its severity the highest among them, and an `alerts` annotation lists
the members. The group's first firing member fires the incident (FIRING), a change of the highest
severity escalates or de-escalates it, and the incident resolves when no member fires any more
(`status: resolved`, or every member resolved or gone). The alert name is the group's `alertname` group
label when it groups by alertname, else `AlertmanagerGroup`. When the incident manager offers
`note(fingerprint, text, now)`, members that start or stop firing in an open group are noted too.

The HTTP endpoint: POST only, bearer token required (compared in constant time) unless `auth: none`,
`Content-Length` bounded by `max_body_bytes` (413), `application/json` only (415), schema checked with
every problem listed (400). `GET /metrics` answers only when a metrics source is wired in (`hostwarden
receive`; embedded in `run`, the agent's own /metrics carries the receiver's series): no bearer token, as
/-/healthy, but behind the basic_auth_users of the receiver's web config if it has any.
`ReceiverStats` counts what the endpoint answered (RECEIVER_METRICS).
What was last seen of each group is kept in `<state_dir>/receiver-groups.json` so a
restart neither re-announces nor forgets the members of an open group.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from hostwarden.agent.core.alert import fingerprint
from hostwarden.agent.core.samples import MetricDef, Sample, labels_of, metric_defs
from hostwarden.agent.core.schema import MISSING, Errors, build
from hostwarden.agent.core.yamlsrc import Loc
from hostwarden.exporters.amwebhook import (
    GroupTracker,
    Notification,
    PayloadError,
    group_identity,
    load_groups,
    parse_notification,
    save_groups,
)
from hostwarden.exporters.web import HTTPService, TLSSource, TrackedHandler, set_nodelay

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9843"
DEFAULT_PATH = "/alerts"
STATE_FILE = "receiver-groups.json"
TICK_SECONDS = 5.0


RECEIVER_METRICS = metric_defs(
    MetricDef("hostwarden_receiver_requests_total", "counter",
              "Webhook POSTs the Alertmanager receiver answered, by HTTP status code.", ("code",)),
    MetricDef("hostwarden_receiver_alerts_total", "counter",
              "Alerts in the notifications the receiver accepted, by alert status (firing, resolved).", ("status",)),
    MetricDef("hostwarden_receiver_last_request_timestamp_seconds", "gauge",
              "Unix time of the last notification the receiver accepted (answered 200); 0 before the first."),
)
# every code a webhook POST can be answered with, exposed from the start (0): increase() sees the first one
RECEIVER_CODES = (200, 400, 401, 404, 411, 413, 415, 500)
ALERT_STATUSES = ("firing", "resolved")

# what a GET /metrics asks for (Accept, Accept-Encoding) -> (body, content type, gzipped)
MetricsBody = Callable[[str, str], tuple[bytes, str, bool]]


class ReceiverStats:
    """The receiver's counters; thread-safe (one lock, a dict increment per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[int, int] = dict.fromkeys(RECEIVER_CODES, 0)
        self._alerts: dict[str, int] = dict.fromkeys(ALERT_STATUSES, 0)
        self._last_accepted = 0.0

    def answered(self, code: int) -> None:
        with self._lock:
            self._codes[code] = self._codes.get(code, 0) + 1

    def accepted(self, n: Notification, now: float) -> None:
        with self._lock:
            for a in n.alerts:
                self._alerts[a.status] = self._alerts.get(a.status, 0) + 1
            self._last_accepted = max(self._last_accepted, now)

    def samples(self, now: float) -> list[Sample]:
        with self._lock:
            codes, alerts, last = dict(self._codes), dict(self._alerts), self._last_accepted
        out = [Sample("hostwarden_receiver_requests_total", labels_of(code=c), float(v), now)
               for c, v in sorted(codes.items())]
        out += [Sample("hostwarden_receiver_alerts_total", labels_of(status=st), float(v), now)
                for st, v in sorted(alerts.items())]
        out.append(Sample("hostwarden_receiver_last_request_timestamp_seconds", (), last, now))
        return out


# -- config ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceiverConfig:
    listen_address: str = DEFAULT_LISTEN
    path: str = DEFAULT_PATH
    auth: Literal["bearer", "none"] = "bearer"
    token_env: str | None = None
    token_file: str | None = None
    max_body_bytes: int = 1 << 20
    web_config_file: str | None = None  # an exporter-toolkit web config: its tls_server_config enables HTTPS
    default_severity: str = "warning"  # for alerts without a `severity` label

    def validate(self) -> list[str]:
        problems = []
        _host, sep, port = self.listen_address.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            problems.append(f"listen_address {self.listen_address!r}: expected HOST:PORT")
        if not self.path.startswith("/"):
            problems.append(f"path {self.path!r} must start with '/'")
        if self.auth == "bearer" and not (self.token_env or self.token_file):
            problems.append("auth: bearer needs token_env or token_file (or say auth: none explicitly)")
        if self.token_env and self.token_file:
            problems.append("set only one of token_env and token_file")
        if self.auth == "none" and (self.token_env or self.token_file):
            problems.append("auth: none ignores token_env/token_file; remove them or use auth: bearer")
        if not 1024 <= self.max_body_bytes <= 64 << 20:
            problems.append("max_body_bytes must be between 1024 and 67108864")
        return problems


def parse_receiver(node: Any, errors: Errors, loc: Loc, base_dir: str) -> Any:
    """The agent config's `receiver:` section (agent.config.SECTION_PARSERS)."""
    cfg = build(ReceiverConfig, node, errors, loc=loc, path="receiver")
    if cfg is MISSING:
        return MISSING
    if cfg.web_config_file and not os.path.isabs(cfg.web_config_file):
        from dataclasses import replace

        cfg = replace(cfg, web_config_file=os.path.join(base_dir, cfg.web_config_file))
    return cfg


# -- HTTP endpoint --------------------------------------------------------------------------------------------
class WebhookServer(HTTPService):
    """Accepts notifications on `path` and hands each valid one to `on_notification(notification, now)`."""

    thread_name = "receiver-http"

    def __init__(self, config: ReceiverConfig, on_notification: Callable[[Notification, float], int], *,
                 token: str | None, listen_address: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, tls: TLSSource | None = None,
                 clock: Callable[[], float], stats: ReceiverStats | None = None,
                 metrics: MetricsBody | None = None,
                 metrics_auth: Callable[[str | None], bool] | None = None) -> None:
        if config.auth == "bearer" and not token:
            raise ValueError("receiver: bearer auth needs a token")
        self.config = config
        self.stats = stats if stats is not None else ReceiverStats()
        self.metrics = metrics  # GET /metrics (hostwarden receive); None: 404
        self.metrics_auth = metrics_auth  # the web config's basic_auth_users, for GET /metrics only
        self.on_notification = on_notification
        self._token = token.encode() if token else None
        self.clock = clock
        super().__init__(listen_address or config.listen_address, ssl_context=ssl_context, tls=tls)

    def reconfigure(self, config: ReceiverConfig, *, token: str | None, tls: TLSSource | None) -> None:
        """A reload that keeps this listener (same listen_address): the path, auth, token, body limit and
        TLS of the new config apply to the next request (TLS: to the next connection)."""
        if config.auth == "bearer" and not token:
            raise ValueError("receiver: bearer auth needs a token")
        self._token = token.encode() if token else None
        self.tls = tls
        self.config = config

    def authorized(self, header: str | None) -> bool:
        if self.config.auth == "none":
            return True
        scheme, _, value = (header or "").strip().partition(" ")
        supplied = value.strip().encode() if scheme.lower() == "bearer" else b""
        assert self._token is not None
        return hmac.compare_digest(supplied, self._token) and bool(supplied)

    def _handler_class(self) -> type:
        server = self

        class Handler(TrackedHandler):
            protocol_version = "HTTP/1.1"
            server_version = "hostwarden-receiver"
            timeout = 30

            def setup(self) -> None:
                super().setup()
                set_nodelay(self.connection)  # headers and body go out in two writes

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, code: int, doc: dict[str, Any], headers: dict[str, str] | None = None,
                       close: bool = False) -> None:
                if self.command == "POST":
                    server.stats.answered(code)
                body = (json.dumps(doc) + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/-/healthy", "/-/ready"):
                    self._reply(200, {"status": "ok"})
                elif path == "/metrics" and server.metrics is not None and path != server.config.path:
                    self._metrics(server.metrics)
                elif path == server.config.path:
                    self._reply(405, {"error": "use POST"}, {"Allow": "POST"})
                else:
                    self._reply(404, {"error": "not found"})

            do_HEAD = do_GET

            def _metrics(self, source: MetricsBody) -> None:
                if server.metrics_auth is not None and not server.metrics_auth(self.headers.get("Authorization")):
                    self._reply(401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Basic realm="hostwarden"'})
                    return
                try:
                    body, ctype, gz = source(self.headers.get("Accept", ""), self.headers.get("Accept-Encoding", ""))
                except Exception:
                    log.exception("receiver: rendering /metrics failed")
                    self._reply(500, {"error": "internal error, see the log"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if gz:
                    self.send_header("Content-Encoding", "gzip")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_PUT(self) -> None:
                self._reply(405, {"error": "use POST"}, {"Allow": "POST"}, close=True)

            do_DELETE = do_PUT
            do_PATCH = do_PUT

            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != server.config.path:
                    self._reply(404, {"error": "not found"}, close=True)
                    return
                if not server.authorized(self.headers.get("Authorization")):
                    self._reply(401, {"error": "missing or wrong bearer token"},
                                {"WWW-Authenticate": 'Bearer realm="hostwarden"'}, close=True)
                    return
                if self.headers.get("Transfer-Encoding"):
                    self._reply(411, {"error": "send Content-Length; chunked bodies are not accepted"}, close=True)
                    return
                try:
                    length = int(self.headers.get("Content-Length", ""))
                    if length < 0:
                        raise ValueError
                except ValueError:
                    self._reply(411, {"error": "Content-Length required"}, close=True)
                    return
                if length > server.config.max_body_bytes:
                    self._reply(413, {"error": f"body of {length} bytes exceeds max_body_bytes "
                                               f"({server.config.max_body_bytes})"}, close=True)
                    return
                ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
                if ctype != "application/json":
                    self._reply(415, {"error": f"expected Content-Type application/json, got {ctype or 'none'!r}"},
                                close=True)
                    return
                raw = self.rfile.read(length)
                try:
                    doc = json.loads(raw)
                except RecursionError:
                    self._reply(400, {"error": "invalid JSON", "problems": ["nesting too deep"]})
                    return
                except (ValueError, UnicodeDecodeError) as e:
                    self._reply(400, {"error": "invalid JSON", "problems": [str(e)[:200]]})
                    return
                try:
                    notification = parse_notification(doc)
                except PayloadError as e:
                    log.warning("receiver: rejected a notification: %s", e)
                    self._reply(400, {"error": "not an Alertmanager webhook payload (version 4)",
                                      "problems": e.problems})
                    return
                try:
                    now = server.clock()
                    n = server.on_notification(notification, now)
                except Exception:
                    log.exception("receiver: handling group %s failed", notification.group_key)
                    self._reply(500, {"error": "internal error; Alertmanager will retry"})
                    return
                server.stats.accepted(notification, now)
                self._reply(200, {"status": "ok", "transitions": n})

        return Handler


# -- the receiver: tracker + incident manager + outbox ------------------------------------------------------------
class Receiver:
    """Turns notifications into incident transitions; `handle` is what WebhookServer calls.

    `lock` serialises the incident manager's use: pass the lock its other users hold (the agent's
    component lock in `run`); a config reload replaces `receiver.incidents`.
    """

    def __init__(self, incidents: Any, *, state_path: str | None, default_severity: str = "warning",
                 wake: Callable[[], None] | None = None, lock: Any = None) -> None:
        self.incidents = incidents
        self.state_path = state_path
        self.tracker = GroupTracker(default_severity, load_groups(state_path) if state_path else None)
        self.wake = wake or (lambda: None)
        self.lock = lock if lock is not None else threading.RLock()
        self.stats = ReceiverStats()  # its listeners count here: kept while a reload keeps or moves the receiver

    def handle(self, n: Notification, now: float) -> int:
        with self.lock:
            before = dict(self.tracker.groups)
            transitions, note = self.tracker.observe(n, now)
            try:
                if transitions:
                    self.incidents.handle(transitions, now)
                add_note = getattr(self.incidents, "note", None)
                if note and callable(add_note):  # an incident manager that takes free-text notes
                    rule, identity = group_identity(n)
                    add_note(fingerprint(rule, identity), f"Alertmanager group changed:\n{note}", now)
            except BaseException:
                self.tracker.groups = before  # not recorded: the retried notification must yield them again
                raise
            if self.state_path:
                save_groups(self.state_path, self.tracker.groups)
        if transitions:
            log.info("receiver: group %s of %s: %s", n.group_key, n.receiver,
                     ", ".join(t.kind.value for t in transitions))
            self.wake()
        return len(transitions)


def receiver_token(rc: ReceiverConfig) -> str | None:
    """The bearer token, read now (SecretError/ValueError when it cannot be read or is empty)."""
    if rc.auth != "bearer":
        return None
    from hostwarden.agent.core.secrets import resolve

    token = resolve(env=rc.token_env, file=rc.token_file, what="receiver token")
    if not token:
        raise ValueError("receiver: the bearer token is empty")
    return token


def receiver_security(rc: ReceiverConfig, *, on_tls_error: Callable[[], None] | None = None) -> Any:
    """The receiver's own web config (agent.core.webconfig.WebSecurity; None without one): its TLS serves the
    whole listener, its basic_auth_users guard GET /metrics only (the webhook has its bearer token).
    Raises ConfigErrors."""
    if not rc.web_config_file:
        return None
    from hostwarden.agent.core.webconfig import load_web_config

    return load_web_config(rc.web_config_file, name="receiver", on_tls_error=on_tls_error)


def receiver_tls(rc: ReceiverConfig, *, on_tls_error: Callable[[], None] | None = None) -> TLSSource | None:
    """The TLS of the receiver's own web config (None: plain HTTP); its certificate files are watched
    (agent.core.tlsreload). Raises ConfigErrors."""
    security = receiver_security(rc, on_tls_error=on_tls_error)
    return security.tls if security is not None else None


def start_receiver(rc: ReceiverConfig, incidents: Any, *, state_dir: str, clock: Callable[[], float],
                   wake: Callable[[], None] | None = None, lock: Any = None,
                   listen_address: str | None = None,
                   on_tls_error: Callable[[], None] | None = None,
                   metrics: MetricsBody | None = None) -> tuple[WebhookServer, Receiver]:
    """Resolve the token, build TLS, start serving `rc` into `incidents`; for `run` with a `receiver:` section
    and for `hostwarden receive`. Raises SecretError/ValueError (token), ConfigErrors (web config), OSError."""
    token = receiver_token(rc)
    security = receiver_security(rc, on_tls_error=on_tls_error)
    receiver = Receiver(incidents, state_path=os.path.join(state_dir, STATE_FILE),
                        default_severity=rc.default_severity, wake=wake, lock=lock)
    server = WebhookServer(rc, receiver.handle, token=token, listen_address=listen_address,
                           tls=security.tls if security is not None else None, clock=clock, stats=receiver.stats,
                           metrics=metrics,
                           metrics_auth=security.check_auth if security is not None and security.auth_enabled
                           else None)
    server.start()
    log_listening(server)
    return server, receiver


def log_listening(server: WebhookServer) -> None:
    host, port = server.address
    log.info("receiving Alertmanager notifications on %s:%d%s (%s)", host, port, server.config.path,
             "TLS" if server.tls is not None else "plain HTTP")
