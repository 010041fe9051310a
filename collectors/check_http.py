"""`http` check: one request (following redirects like blackbox_exporter, by default), expected status
set, optional body regex, TLS verification on by default with an optional CA file, and the server
certificate's expiry — read even when verification fails, so an expired or self-signed certificate
still shows how many days it has left.

Built on http.client (not requests) to own the socket: one total deadline across redirects and
body reads, a cap on the body read, and access to the peer certificate. Environment proxies are not
used: a health check measures the service, not the proxy.
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import http.client
import re
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field

from hostwarden.agent.core import __version__
from hostwarden.agent.core.samples import MetricDef, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.agent.core.secrets import SecretError, resolve
from hostwarden.collectors.checks import CheckConfig, CheckResult, register_check, remaining, resolve_path, sample

REDIRECTS = (301, 302, 303, 307, 308)
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


@dataclass(frozen=True)
class HttpConfig(CheckConfig):
    url: str = ""
    method: str = "GET"
    status: list[int] = field(default_factory=list)  # empty: any 2xx
    body_regex: Regex | None = None
    body: str | None = None  # request body
    headers: dict[str, str] = field(default_factory=dict)
    follow_redirects: bool = True
    max_redirects: int = 10
    verify: bool = True
    ca_file: str | None = None
    min_cert_days: float | None = None  # fail when the certificate expires sooner
    username: str | None = None  # basic auth, with password_env or password_file
    password_env: str | None = None
    password_file: str | None = None
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    max_body_bytes: int = 1 << 20

    def validate(self) -> list[str]:
        problems = super().validate()
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"url {self.url!r}: expected http:// or https:// with a host")
        if self.method.upper() not in METHODS:
            problems.append(f"method {self.method!r}: expected one of {', '.join(METHODS)}")
        if any(not 100 <= s <= 599 for s in self.status):
            problems.append("status: codes must be 100-599")
        if self.password_env and self.password_file:
            problems.append("give password_env or password_file, not both")
        if (self.password_env or self.password_file) and not self.username:
            problems.append("password_env/password_file need username")
        if self.bearer_token_env and self.bearer_token_file:
            problems.append("give bearer_token_env or bearer_token_file, not both")
        if self.username and (self.bearer_token_env or self.bearer_token_file):
            problems.append("basic auth and a bearer token are mutually exclusive")
        if self.max_body_bytes < 0 or self.max_redirects < 0:
            problems.append("max_body_bytes and max_redirects must not be negative")
        return problems

    def with_base_dir(self, base_dir: str) -> HttpConfig:
        return dataclasses.replace(self, ca_file=resolve_path(self.ca_file, base_dir))


# -- certificates -------------------------------------------------------------------------------

def _tlv(data: bytes, i: int) -> tuple[int, int, int]:
    """DER tag-length-value at i → (tag, content start, content end)."""
    tag = data[i]
    length = data[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[i:i + n], "big")
        i += n
    if i + length > len(data):
        raise ValueError("truncated DER")
    return tag, i, i + length


def _asn1_time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]
        year = int(text[:2])
        text = f"{2000 + year if year < 50 else 1900 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMM[SS]
        raise ValueError(f"unexpected time tag {tag:#x}")
    text = text.split(".")[0].ljust(14, "0")
    fields = (int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14]))
    return float(calendar.timegm(fields))


def cert_not_after(der: bytes) -> float:
    """Unix time of a DER certificate's notAfter (tbsCertificate.validity), without a crypto library."""
    _, i, _ = _tlv(der, 0)  # Certificate
    _, i, _ = _tlv(der, i)  # tbsCertificate
    tag, _, end = _tlv(der, i)
    if tag == 0xA0:  # [0] version
        i = end
    for _ in range(3):  # serialNumber, signature, issuer
        _, _, i = _tlv(der, i)
    _, i, _ = _tlv(der, i)  # validity
    _, _, i = _tlv(der, i)  # notBefore
    tag, start, end = _tlv(der, i)
    return _asn1_time(tag, der[start:end])


def cert_expiry_days(not_after: float, now: float) -> float:
    return (not_after - now) / 86400.0


def fetch_cert(host: str, port: int, deadline: float) -> bytes | None:
    """The server's leaf certificate, without verifying it (for expiry when verification failed)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=max(0.01, remaining(deadline))) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)
    except OSError:
        return None


# -- the check ----------------------------------------------------------------------------------

@dataclass
class _Response:
    status: int
    location: str | None
    body: bytes


class _Failure(Exception):
    pass


@register_check("http")
class HttpCheck:
    Config = HttpConfig
    metrics = metric_defs(
        MetricDef("hostwarden_http_status_code", "gauge", "Status code of the final response (0: none).",
                  ("check",)),
        MetricDef("hostwarden_http_duration_seconds", "gauge", "Time for the whole request, redirects included.",
                  ("check",)),
        MetricDef("hostwarden_http_cert_expiry_days", "gauge", "Days until the server certificate expires.",
                  ("check",)),
        MetricDef("hostwarden_http_cert_not_after_timestamp_seconds", "gauge",
                  "Unix time the server certificate expires (notAfter).", ("check",)),
    )

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self._body_re = re.compile(config.body_regex) if config.body_regex else None
        self._ctx = ssl.create_default_context(cafile=config.ca_file)
        if not config.verify:
            self._ctx.check_hostname = False
            self._ctx.verify_mode = ssl.CERT_NONE
        self._cert_der: bytes | None = None

    def _auth_header(self) -> str | None:
        cfg = self.config
        if cfg.username:
            password = resolve(env=cfg.password_env, file=cfg.password_file, what=f"check {cfg.name} password") or ""
            token = base64.b64encode(f"{cfg.username}:{password}".encode()).decode("ascii")
            return f"Basic {token}"
        bearer = resolve(env=cfg.bearer_token_env, file=cfg.bearer_token_file, what=f"check {cfg.name} token")
        return f"Bearer {bearer}" if bearer else None

    def run(self, deadline: float) -> CheckResult:
        cfg = self.config
        self._cert_der = None
        t0 = time.monotonic()
        try:
            auth = self._auth_header()
        except SecretError as e:
            return CheckResult.failed(str(e))
        url, method, body = cfg.url, cfg.method.upper(), cfg.body
        origin = urllib.parse.urlsplit(url).netloc
        error = None
        resp: _Response | None = None
        try:
            for _hop in range(cfg.max_redirects + 1):
                same_origin = urllib.parse.urlsplit(url).netloc == origin
                resp = self._request(url, method, body, auth if same_origin else None, deadline)
                if not (cfg.follow_redirects and resp.status in REDIRECTS and resp.location):
                    break
                url = urllib.parse.urljoin(url, resp.location)
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = ("HEAD" if method == "HEAD" else "GET"), None
            else:
                error = f"more than {cfg.max_redirects} redirects"
        except _Failure as e:
            error = str(e)
        duration = time.monotonic() - t0
        samples = [sample("hostwarden_http_status_code", resp.status if resp and not error else 0),
                   sample("hostwarden_http_duration_seconds", duration)]
        days = None
        if self._cert_der is not None:
            try:
                not_after = cert_not_after(self._cert_der)
            except (ValueError, IndexError):
                not_after = None
            if not_after is not None:
                days = cert_expiry_days(not_after, time.time())
                samples += [sample("hostwarden_http_cert_expiry_days", days),
                            sample("hostwarden_http_cert_not_after_timestamp_seconds", not_after)]
        if error:
            return CheckResult.failed(error, samples=samples)
        assert resp is not None
        return self._verdict(resp, url, duration, days, samples)

    def _verdict(self, resp: _Response, url: str, duration: float, days: float | None, samples: list) -> CheckResult:
        cfg = self.config
        expected = resp.status in cfg.status if cfg.status else 200 <= resp.status < 300
        if not expected:
            want = ", ".join(map(str, cfg.status)) if cfg.status else "2xx"
            return CheckResult.failed(f"{url}: status {resp.status}, expected {want}", samples=samples)
        if self._body_re is not None and not self._body_re.search(resp.body.decode("utf-8", "replace")):
            return CheckResult.failed(f"{url}: body does not match /{cfg.body_regex}/", samples=samples)
        if cfg.min_cert_days is not None and days is not None and days < cfg.min_cert_days:
            return CheckResult.failed(f"{url}: certificate expires in {days:.1f} days (min {cfg.min_cert_days:g})",
                                      samples=samples)
        return CheckResult(ok=True, message=f"{url}: status {resp.status} in {duration * 1000:.0f}ms",
                           samples=samples)

    def _request(self, url: str, method: str, body: str | None, auth: str | None, deadline: float) -> _Response:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Failure(f"cannot follow redirect to {url!r}")
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        timeout = remaining(deadline)
        if timeout <= 0:
            raise _Failure(f"{url}: timed out after {float(self.config.timeout):g}s")
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                                           context=self._ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            try:
                conn.connect()
            except ssl.SSLCertVerificationError as e:
                self._cert_der = fetch_cert(host, port, deadline)
                raise _Failure(f"{url}: TLS certificate verification failed: {e.verify_message or e.reason}") from None
            if isinstance(conn.sock, ssl.SSLSocket):
                self._cert_der = conn.sock.getpeercert(binary_form=True)
            headers = {"User-Agent": f"hostwarden/{__version__}", "Accept": "*/*", **self.config.headers}
            if auth:
                headers["Authorization"] = auth
            sock = conn.sock  # getresponse() drops conn.sock when the server closes; the response keeps it
            sock.settimeout(max(0.001, remaining(deadline)))
            conn.request(method, path, body=body.encode() if body is not None else None, headers=headers)
            sock.settimeout(max(0.001, remaining(deadline)))
            resp = conn.getresponse()
            data = bytearray()
            limit = self.config.max_body_bytes
            while len(data) < limit and not resp.isclosed():
                left = remaining(deadline)
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = resp.read(min(65536, limit - len(data)))
                if not chunk:
                    break
                data += chunk
            return _Response(resp.status, resp.getheader("Location"), bytes(data))
        except _Failure:
            raise
        except TimeoutError:
            raise _Failure(f"{url}: timed out after {float(self.config.timeout):g}s") from None
        except ssl.SSLError as e:
            raise _Failure(f"{url}: TLS error: {e.reason or e}") from None
        except socket.gaierror as e:
            raise _Failure(f"{url}: cannot resolve {host}: {e.strerror}") from None
        except OSError as e:
            raise _Failure(f"{url}: {e.strerror or e}") from None
        except http.client.HTTPException as e:
            raise _Failure(f"{url}: bad HTTP response: {type(e).__name__}: {e}") from None
        finally:
            conn.close()
