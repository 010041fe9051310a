"""A small HTTP client for ticket backends: TLS, timeouts, proxies, and the retry decision.

    client = HttpClient("https://redmine.example.com", timeout=10, headers={"X-Redmine-API-Key": key},
                        secret_headers=("X-Redmine-API-Key",))
    resp = client.request("GET", "/issues.json", params={"status_id": "*"})   # -> requests.Response

`request` returns only 2xx answers; everything else raises, carrying the backend's retry decision:

- TransientError (retry later): connection refused/reset, DNS and TLS failures, timeouts, HTTP 408,
  425, 429 and 5xx; `retry_after` from a `Retry-After` header (seconds or an HTTP date).
- PermanentError (dead-letter): other 4xx (400, 401, 403, 404, 409, 422 …), redirects (a POST must
  not silently become a GET: the message names the Location to configure instead), and a 2xx that is
  not the JSON the caller asked for (`json_body`).

Messages name the method, the URL without its query string, the status and the start of the body,
with every secret header value, the basic-auth password and every secret known to agent.secrets
replaced by `<redacted>`. Proxies come from the environment (HTTPS_PROXY, NO_PROXY …) as with curl;
`ca_file` replaces the system CA store; `verify=False` turns verification off (logged once).
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import requests
import urllib3

from agent import secrets
from exporters.tickets.base import PermanentError, TransientError

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({408, 425, 429})
MAX_BODY_IN_ERROR = 500
USER_AGENT = "hostwarden"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def classify(status: int) -> type[Exception] | None:
    """None for 2xx, else the error class a response with this status raises."""
    if 200 <= status < 300:
        return None
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientError
    return PermanentError


class HttpClient:
    """One `requests.Session` per backend; thread-compatible (use from one dispatcher thread)."""

    def __init__(self, base_url: str, *, timeout: float, verify: bool = True, ca_file: str | None = None,
                 headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
                 secret_headers: Iterable[str] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.verify: bool | str = (ca_file or True) if verify else False
        self._session = requests.Session()  # trust_env: proxies and NO_PROXY from the environment
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept"] = "application/json"
        self._session.headers.update(headers or {})
        self._session.auth = auth
        self._secrets = [v for k, v in (headers or {}).items() if k in set(secret_headers) and v]
        if auth and auth[1]:
            basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._secrets += [basic, auth[1]]  # the Authorization header's value, and the password itself
        if not verify:
            log.warning("TLS certificate verification is OFF for %s", self.base_url)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + "/" + path.lstrip("/")

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, secrets.REDACTED)
        return secrets.redact(text)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, headers: Mapping[str, str] | None = None) -> requests.Response:
        """Send one request; return a 2xx response or raise TransientError / PermanentError."""
        url = self.url(path)
        where = f"{method} {url}"
        try:
            with warnings.catch_warnings():  # verify=False was logged once at start, not on every request
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                resp = self._session.request(method, url, params=params, json=json_body, headers=headers,
                                             timeout=self.timeout, verify=self.verify, allow_redirects=False)
        except requests.Timeout as e:
            msg = f"{where}: timed out after {self.timeout:g}s ({type(e).__name__})"
            raise TransientError(self.redact(msg)) from None
        except requests.exceptions.SSLError as e:
            raise TransientError(self.redact(f"{where}: TLS error: {_reason(e)}")) from None
        except requests.ConnectionError as e:
            raise TransientError(self.redact(f"{where}: connection failed: {_reason(e)}")) from None
        except requests.RequestException as e:  # invalid URL, too many redirects, …: configuration
            raise PermanentError(self.redact(f"{where}: {type(e).__name__}: {e}")) from None
        if 300 <= resp.status_code < 400:
            raise PermanentError(self.redact(f"{where}: HTTP {resp.status_code} redirect to "
                                             f"{resp.headers.get('Location', '?')} (configure that URL)"))
        err = classify(resp.status_code)
        if err is None:
            return resp
        msg = self.redact(f"{where}: HTTP {resp.status_code} {resp.reason or ''}".rstrip() + _snippet(resp))
        if err is TransientError:
            raise TransientError(msg, retry_after=parse_retry_after(resp.headers.get("Retry-After"), time.time()))
        raise PermanentError(msg)

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """`request` and decode the JSON answer (PermanentError when the body is not JSON)."""
        resp = self.request(method, path, **kw)
        return json_body(resp, self)

    def close(self) -> None:
        self._session.close()


def json_body(resp: requests.Response, client: HttpClient | None = None) -> Any:
    try:
        return resp.json()
    except RecursionError:
        text = f"{resp.request.method} {resp.url}: HTTP {resp.status_code}: JSON nested too deep{_snippet(resp)}"
        raise PermanentError(client.redact(text) if client else secrets.redact(text)) from None
    except (ValueError, json.JSONDecodeError):
        text = f"{resp.request.method} {resp.url}: HTTP {resp.status_code}: expected JSON, got " \
               f"{resp.headers.get('Content-Type', 'no content type')}{_snippet(resp)}"
        raise PermanentError(client.redact(text) if client else secrets.redact(text)) from None


def _snippet(resp: requests.Response) -> str:
    text = " ".join((resp.text or "").split())
    if not text:
        return ""
    return ": " + (text[:MAX_BODY_IN_ERROR] + "…" if len(text) > MAX_BODY_IN_ERROR else text)


def _reason(e: Exception) -> str:
    """The innermost useful reason of a requests/urllib3 connection error, without the long repr chain."""
    inner: BaseException = e
    while True:
        nxt = getattr(inner, "reason", None) or inner.__context__ or (inner.args[0] if inner.args else None)
        if not isinstance(nxt, BaseException) or nxt is inner:
            break
        inner = nxt
    return str(inner) or type(inner).__name__
