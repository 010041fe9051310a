"""Prometheus exporter-toolkit web config (`--web.config.file`): TLS, basic auth, response headers.

The file format every exporter's users already write (exporter-toolkit docs/web-configuration.md):

    tls_server_config:
      cert_file: server.crt          # relative paths: to this file's directory
      key_file: server.key
      # client_auth_type: RequireAndVerifyClientCert
      # client_ca_file: clients-ca.crt
      # min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash: htpasswd -nBC 10 "" | tr -d ':\\n'
    http_server_config:
      headers:
        Strict-Transport-Security: max-age=31536000

Supported: cert_file/key_file or inline cert/key, client_ca_file/client_ca, client_auth_type
NoClientCert | VerifyClientCertIfGiven | RequireAndVerifyClientCert, min_version/max_version,
cipher_suites (Go names, mapped to OpenSSL's; TLS 1.3 suites are not configurable, as in Go),
prefer_server_cipher_suites, http_server_config.headers (the five headers exporter-toolkit allows)
and http2 (accepted; this server speaks HTTP/1.1). Rejected with file:line: unknown keys, the
client auth types that accept unverified certificates, client_allowed_sans, curve_preferences,
rate_limit — a security setting that would be silently ignored is worse than an error.

bcrypt costs ~100 ms per check by design, and Prometheus scrapes every few seconds, so a
successful check is cached for a few minutes keyed by (user, sha256(password), hash); failures are
never cached and checks run one at a time, so a password-guessing flood costs one core at most.
The file is read at start-up and on every reload (the caller re-creates WebSecurity); the certificate,
key and client CA files it names are also watched between reloads (agent.core.tlsreload): new
connections get a renewed certificate without a reload, as with exporter-toolkit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import bcrypt
from hostwarden.agent.core.schema import MISSING, ConfigErrors, Errors, Issue, build, did_you_mean
from hostwarden.agent.core.tlsreload import FixedTLS, ReloadingTLS, TLSBuildError
from hostwarden.agent.core.yamlsrc import Loc, LocDict, LocList, YAMLSourceError, load_yaml_file

log = logging.getLogger(__name__)

ClientAuthType = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
                         "RequireAndVerifyClientCert"]
TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                 "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH_MODES = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                      "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}

# Go's crypto/tls names (tls.CipherSuites()) → OpenSSL names. TLS 1.3 suites: accepted, not configurable.
GO_CIPHER_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}

_UNSUPPORTED_TLS_KEYS = {
    "client_allowed_sans": "client_allowed_sans is not supported by hostwarden; "
                           "issue client certificates from a dedicated CA instead",
    "curve_preferences": "curve_preferences is not supported by hostwarden (OpenSSL's defaults are used)",
}
_UNSUPPORTED_TOP_KEYS = {
    "rate_limit": "rate_limit is not supported by hostwarden (web.max_requests bounds requests in flight)",
}
_BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")

AUTH_CACHE_SECONDS = 300.0
AUTH_CACHE_SIZE = 128


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str | None = None
    key_file: str | None = None
    cert: str | None = None
    key: str | None = None
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: str | None = None
    client_ca: str | None = None
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion = "TLS13"
    cipher_suites: list[str] = field(default_factory=list)
    prefer_server_cipher_suites: bool = True

    @property
    def configured(self) -> bool:
        """exporter-toolkit serves plain HTTP when no certificate, key or client auth is given."""
        return any((self.cert_file, self.key_file, self.cert, self.key, self.client_ca_file, self.client_ca,
                    self.client_auth_type != "NoClientCert"))

    def problems(self) -> list[tuple[str, str]]:
        """(key, problem) pairs; the key says where in the file the problem is reported."""
        out: list[tuple[str, str]] = []
        if not self.configured:
            return out
        if self.cert_file and self.cert:
            out.append(("cert", "give either cert_file or cert (inline PEM), not both"))
        if self.key_file and self.key:
            out.append(("key", "give either key_file or key (inline PEM), not both"))
        if not (self.cert_file or self.cert):
            out.append(("", "missing cert_file (or inline cert)"))
        if not (self.key_file or self.key):
            out.append(("", "missing key_file (or inline key)"))
        if self.client_ca_file and self.client_ca:
            out.append(("client_ca", "give either client_ca_file or client_ca (inline PEM), not both"))
        if self.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
            out.append(("client_auth_type", f"client_auth_type {self.client_auth_type} accepts unverified client "
                        "certificates and is not supported; use RequireAndVerifyClientCert "
                        "(or VerifyClientCertIfGiven)"))
        elif self.client_auth_type != "NoClientCert" and not (self.client_ca_file or self.client_ca):
            out.append(("client_auth_type", f"client_auth_type {self.client_auth_type} needs client_ca_file"))
        elif self.client_auth_type == "NoClientCert" and (self.client_ca_file or self.client_ca):
            out.append(("client_ca_file" if self.client_ca_file else "client_ca",
                        "client CAs are configured without a client_auth_type; "
                        "set client_auth_type: RequireAndVerifyClientCert"))
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            out.append(("min_version", f"min_version {self.min_version} is above max_version {self.max_version}"))
        return out


@dataclass(frozen=True)
class Headers:
    content_security_policy: str | None = field(default=None, metadata={"key": "Content-Security-Policy"})
    x_frame_options: str | None = field(default=None, metadata={"key": "X-Frame-Options"})
    x_content_type_options: str | None = field(default=None, metadata={"key": "X-Content-Type-Options"})
    x_xss_protection: str | None = field(default=None, metadata={"key": "X-XSS-Protection"})
    strict_transport_security: str | None = field(default=None, metadata={"key": "Strict-Transport-Security"})

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.x_frame_options and self.x_frame_options.lower() not in ("deny", "sameorigin"):
            out.append(("X-Frame-Options", f"X-Frame-Options must be deny or sameorigin, got {self.x_frame_options!r}"))
        if self.x_content_type_options and self.x_content_type_options.lower() != "nosniff":
            out.append(("X-Content-Type-Options",
                        f"X-Content-Type-Options must be nosniff, got {self.x_content_type_options!r}"))
        for name, value in self.as_dict().items():
            if "\n" in value or "\r" in value:
                out.append((name, f"header {name} must be a single line"))
        return out

    def as_dict(self) -> dict[str, str]:
        from dataclasses import fields

        return {f.metadata["key"]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


@dataclass(frozen=True)
class HTTPServerConfig:
    http2: bool = True  # accepted for compatibility; hostwarden serves HTTP/1.1
    headers: Headers = field(default_factory=Headers)


@dataclass(frozen=True)
class WebConfigFile:
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig | None = None
    basic_auth_users: dict[str, str] = field(default_factory=dict)


class WebSecurity:
    """What the HTTP server asks per connection (ssl_context) and per request (check_auth, extra_headers)."""

    def __init__(self, config: WebConfigFile, ssl_ctx: ssl.SSLContext | ReloadingTLS | None, *,
                 path: str = "<memory>", cache_seconds: float = AUTH_CACHE_SECONDS) -> None:
        self.config = config
        self.path = path
        # what the server wraps each new connection with (None: plain HTTP)
        self.tls: ReloadingTLS | FixedTLS | None = (
            None if ssl_ctx is None else ssl_ctx if isinstance(ssl_ctx, ReloadingTLS) else FixedTLS(ssl_ctx))
        self._users = [(u.encode(), h.encode()) for u, h in config.basic_auth_users.items()]
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[bytes, bytes, bytes], float] = {}
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        headers = config.http_server_config.headers if config.http_server_config else Headers()
        self.extra_headers: dict[str, str] = headers.as_dict()

    @property
    def tls_enabled(self) -> bool:
        return self.tls is not None

    @property
    def auth_enabled(self) -> bool:
        return bool(self._users)

    @property
    def auth_cache_size(self) -> int:
        """Successful verifications currently cached (self-observability and tests)."""
        with self._cache_lock:
            return len(self._cache)

    def ssl_context(self) -> ssl.SSLContext | None:
        """Wrap the listening socket with `do_handshake_on_connect=False`, so the handshake runs in the
        request's thread under its timeout and a client that never finishes it blocks nobody.
        The current context: it changes when the certificate files do (see `tls`)."""
        return self.tls.context() if self.tls is not None else None

    def check_auth(self, authorization_header: str | None, *, now: float | None = None) -> bool:
        """True when no users are configured or the header carries a valid user and password."""
        if not self._users:
            return True
        creds = _parse_basic(authorization_header)
        if creds is None:
            return False
        user, password = creds
        stored, known = self._users[0][1], False
        for name, hashed in self._users:  # no early exit: the time taken does not tell which user exists
            if hmac.compare_digest(name, user):
                stored, known = hashed, True
        now = time.monotonic() if now is None else now
        key = (user, hashlib.sha256(password).digest(), stored)
        with self._cache_lock:
            expires = self._cache.get(key)
            if expires is not None:
                if expires > now:
                    return known
                del self._cache[key]
        with self._bcrypt_lock:
            try:
                ok = bcrypt.checkpw(password, stored)
            except ValueError:
                ok = False
        if not (ok and known):
            return False
        with self._cache_lock:
            self._cache[key] = now + self._cache_seconds
            while len(self._cache) > AUTH_CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
        return True


def _parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user, password


# -- loading ----------------------------------------------------------------------------------------
def load_web_config(path: str, *, name: str = "web", on_tls_error: Callable[[], None] | None = None) -> WebSecurity:
    """Read, validate and build the TLS context; raise ConfigErrors with file:line:col for every problem.
    `name` (the listener) and `on_tls_error` are for certificate rotation (agent.core.tlsreload)."""
    path = os.path.abspath(path)
    try:
        doc = load_yaml_file(path)
    except YAMLSourceError as e:
        raise ConfigErrors([Issue(e.loc, e.message)]) from None
    root = Loc(path, 1, 1)
    if doc is None:
        doc = LocDict()
        doc.loc, doc.key_locs, doc.value_locs = root, {}, {}
    if not isinstance(doc, dict):
        raise ConfigErrors([Issue(root, "the web config file must be a YAML mapping")])
    errors = Errors()
    _reject_unsupported(doc, _UNSUPPORTED_TOP_KEYS, errors, root)
    known = {"tls_server_config", "http_server_config", "basic_auth_users"}
    for key in doc:
        if key not in known:
            errors.add(doc.key_loc(key), f"unknown key {key!r}" + did_you_mean(str(key), known))
    tls_node = doc.get("tls_server_config")
    tls = None
    if tls_node is not None:
        if isinstance(tls_node, dict):
            _reject_unsupported(tls_node, _UNSUPPORTED_TLS_KEYS, errors, root)
        tls_loc = doc.value_loc("tls_server_config")
        tls = build(TLSServerConfig, tls_node, errors, loc=tls_loc, path="tls_server_config")
        if tls is not MISSING:
            for key, problem in tls.problems():
                errors.add(_value_loc(tls_node, key, tls_loc) if key else tls_loc, f"tls_server_config: {problem}")
        else:
            tls = None
    http = None
    if doc.get("http_server_config") is not None:
        http_loc = doc.value_loc("http_server_config")
        http = build(HTTPServerConfig, doc["http_server_config"], errors, loc=http_loc, path="http_server_config")
        if http is MISSING:
            http = None
        else:
            headers_node = doc["http_server_config"].get("headers")
            for key, problem in http.headers.problems():
                errors.add(_value_loc(headers_node, key, http_loc), f"http_server_config.headers: {problem}")
    users = _parse_users(doc.get("basic_auth_users"), doc.value_loc("basic_auth_users") if "basic_auth_users"
                         in doc else root, errors)
    ctx: ssl.SSLContext | ReloadingTLS | None = None
    if tls is not None and tls.configured and not errors:
        ctx = _ssl_context(tls, tls_node, os.path.dirname(path), errors, root)
    errors.raise_if_any()
    if ctx is not None and tls is not None:
        ctx = _reloading(tls, tls_node, path, ctx, name=name, on_error=on_tls_error)
    config = WebConfigFile(tls_server_config=tls, http_server_config=http, basic_auth_users=users)
    security = WebSecurity(config, ctx, path=path)
    if security.auth_enabled and not security.tls_enabled:
        log.warning("%s: basic_auth_users without tls_server_config: passwords cross the network in clear text",
                    path)
    return security


def _reloading(tls: TLSServerConfig, node: Any, path: str, ctx: ssl.SSLContext, *, name: str,
               on_error: Callable[[], None] | None) -> ReloadingTLS:
    """`ctx` wrapped so that new connections follow changes of the files it was built from."""
    base_dir = os.path.dirname(path)
    files = [f if os.path.isabs(f) else os.path.join(base_dir, f)
             for f in (tls.cert_file, tls.key_file, tls.client_ca_file) if f]

    def build() -> ssl.SSLContext:
        errors = Errors()
        fresh = _ssl_context(tls, node, base_dir, errors, Loc(path, 1, 1))
        if fresh is None or errors:
            raise TLSBuildError("; ".join(i.message for i in errors.issues) or "no context built")
        return fresh

    return ReloadingTLS(build, files, ctx, name=name, on_error=on_error)


def _parse_users(node: Any, loc: Loc, errors: Errors) -> dict[str, str]:
    if node is None:
        return {}
    if not isinstance(node, dict):
        errors.add(loc, f"basic_auth_users: expected a mapping of user name to bcrypt hash, got {node!r}")
        return {}
    users: dict[str, str] = {}
    for user, hashed in node.items():
        vloc = _value_loc(node, user, loc)
        name = str(user)
        if ":" in name or not name:
            errors.add(node.key_loc(user) if isinstance(node, LocDict) else loc,
                       f"basic_auth_users: user name {name!r} must be non-empty and without ':'")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            errors.add(vloc, f"basic_auth_users.{name}: expected a bcrypt hash ($2y$10$...), e.g. from "
                             "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`; plain passwords are not accepted")
            continue
        users[name] = hashed
    return users


def _value_loc(node: Any, key: str, default: Loc) -> Loc:
    return node.value_loc(key) if isinstance(node, LocDict) else default


def _reject_unsupported(node: Any, unsupported: dict[str, str], errors: Errors, default: Loc) -> None:
    for key, why in unsupported.items():
        if key in node:
            errors.add(node.key_loc(key) if isinstance(node, LocDict) else default, why)
            del node[key]


def _ssl_context(tls: TLSServerConfig, node: Any, base_dir: str, errors: Errors, root: Loc) -> ssl.SSLContext | None:
    def loc(key: str) -> Loc:
        return _value_loc(node, key, root)

    def resolve(key: str, value: str) -> str | None:
        full = value if os.path.isabs(value) else os.path.join(base_dir, value)
        if not os.access(full, os.R_OK):
            why = "does not exist" if not os.path.exists(full) else "is not readable"
            errors.add(loc(key), f"tls_server_config.{key}: {full} {why}")
            return None
        return full

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = _TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_alpn_protocols(["http/1.1"])
    if tls.cipher_suites:
        names = []
        suites_node = node.get("cipher_suites") if isinstance(node, dict) else None
        for i, suite in enumerate(tls.cipher_suites):
            if suite not in GO_CIPHER_SUITES:
                where = suites_node.item_loc(i) if isinstance(suites_node, LocList) else loc("cipher_suites")
                errors.add(where, f"tls_server_config.cipher_suites: unknown cipher suite {suite!r}"
                           + did_you_mean(suite, GO_CIPHER_SUITES))
            elif GO_CIPHER_SUITES[suite]:
                names.append(GO_CIPHER_SUITES[suite])
        if names and not errors:
            try:
                ctx.set_ciphers(":".join(names))
            except ssl.SSLError as e:
                errors.add(loc("cipher_suites"), f"tls_server_config.cipher_suites: not usable here: {e.reason or e}")
    cert_file = resolve("cert_file", tls.cert_file) if tls.cert_file else None
    key_file = resolve("key_file", tls.key_file) if tls.key_file else None
    ca_file = resolve("client_ca_file", tls.client_ca_file) if tls.client_ca_file else None
    if errors:
        return None
    try:
        with _pem_path(cert_file, tls.cert) as cert_path, _pem_path(key_file, tls.key) as key_path:
            ctx.load_cert_chain(cert_path, key_path, password=_no_password)
    except (ssl.SSLError, OSError, EncryptedKeyError) as e:
        where = loc("cert_file") if tls.cert_file else loc("cert")
        errors.add(where, f"tls_server_config: cannot load the certificate and key "
                          f"({cert_file or 'inline cert'}, {key_file or 'inline key'}): {_ssl_reason(e)}")
        return None
    if tls.client_auth_type != "NoClientCert":
        try:
            if ca_file:
                ctx.load_verify_locations(cafile=ca_file)
            else:
                ctx.load_verify_locations(cadata=tls.client_ca)
        except (ssl.SSLError, OSError, ValueError) as e:
            where = loc("client_ca_file") if tls.client_ca_file else loc("client_ca")
            errors.add(where, f"tls_server_config: cannot load the client CA: {_ssl_reason(e)}")
            return None
        ctx.verify_mode = _CLIENT_AUTH_MODES[tls.client_auth_type]
    return ctx


class EncryptedKeyError(Exception):
    pass


def _no_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal: a daemon must fail instead.
    raise EncryptedKeyError("the private key is encrypted; give an unencrypted key protected by file permissions")


def _ssl_reason(e: Exception) -> str:
    if isinstance(e, EncryptedKeyError):
        return str(e)
    reason = getattr(e, "reason", None)
    return str(reason).lower().replace("_", " ") if reason else (getattr(e, "strerror", None) or str(e))


class _pem_path:
    """A path to PEM data: the file itself, or an in-memory file (memfd) holding the inline PEM."""

    def __init__(self, file: str | None, inline: str | None) -> None:
        self.file, self.inline, self.fd = file, inline, -1

    def __enter__(self) -> str:
        if self.file:
            return self.file
        self.fd = os.memfd_create("hostwarden-pem", os.MFD_CLOEXEC)
        os.write(self.fd, (self.inline or "").encode())
        return f"/proc/self/fd/{self.fd}"

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
