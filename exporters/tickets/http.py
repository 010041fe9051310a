"""A small HTTP client for ticket backends: TLS, timeouts, proxies, and the retry decision.

    client = HttpClient("https://redmine.example.com", timeout=10, headers={"X-Redmine-API-Key": key},
                        secret_headers=("X-Redmine-API-Key",))
    resp = client.request("GET", "/issues.json", params={"status_id": "*"})   # -> requests.Response

`request` returns only 2xx answers; everything else raises, carrying the backend's retry decision:

- TransientError (retry later): connection refused/reset, DNS and TLS failures, timeouts, HTTP 408,
  425, 429 and 5xx; `retry_after` from a `Retry-After` header (seconds or an HTTP date).
- PermanentError (dead-letter): other 4xx (400, 401, 403, 404, 409, 422 …), redirects (a POST must
  not silently become a GET: the message names the Location to configure instead), and a 2xx that is
  not the JSON the caller asked for (`json_body`), or larger than MAX_ANSWER_BYTES when it is decoded.

An answer is read within the timeout as a whole (a server dripping bytes cannot hold a backend) and
at most MAX_ANSWER_BYTES of it (of an error answer only the start, for the message). `doc()` returns
the JSON answer as a `Doc`, whose accessors check the shape of what they read, so an answer of the
wrong shape is a PermanentError saying where ("redmine ops: GET /issues.json: unexpected answer:
issues[0].id should be an integer, got 'x'"), never a KeyError or TypeError.

Messages start with the client's `name` (the backend, e.g. "redmine ops") and name the method, the URL
without its query string, the status and the start of the body, with every secret header value, the
basic-auth password and every secret known to agent.secrets replaced by `<redacted>`. Proxies come
from the environment (HTTPS_PROXY, NO_PROXY …) as with curl; `ca_file` replaces the system CA store;
`verify=False` turns verification off (logged once).
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import re
import reprlib
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from hostwarden.agent.core import secrets
from hostwarden.agent.core.incident import PermanentError, TransientError

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({408, 425, 429})
MAX_BODY_IN_ERROR = 500  # characters of an answer quoted in an error message
MAX_ERROR_BODY_BYTES = 4096  # bytes read of a non-2xx answer (for the message)
MAX_ANSWER_BYTES = 16 << 20  # a 2xx answer larger than this is refused (ticket APIs answer kilobytes)
MAX_RETRY_AFTER = 3600.0  # seconds: a Retry-After further out is taken as this
USER_AGENT = "hostwarden"
_CHUNK = 65536
TRUNCATED = "hostwarden_truncated"  # attribute of a Response whose body was longer than what was read

T = TypeVar("T")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), bounded to [0, MAX_RETRY_AFTER];
    None when absent or not a number or date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        try:
            seconds = when.timestamp() - now
        except (ValueError, OverflowError, OSError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def classify(status: int) -> type[Exception] | None:
    """None for 2xx, else the error class a response with this status raises."""
    if 200 <= status < 300:
        return None
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientError
    return PermanentError


def set_response_body(resp: requests.Response, body: bytes) -> None:
    """Hand a body read by `read_body` (bounded, with a deadline) to `resp`, so `.content`, `.text` and `.json()`
    answer from it. requests has no public way to do this: this is the one place that sets its private
    `_content`, and tests/unit/exporters/test_http.py fails if an upgrade of requests stops honouring it."""
    resp._content = body
    resp._content_consumed = True


class HttpClient:
    """One `requests.Session` per backend; thread-compatible (use from one dispatcher thread).

    `name` (e.g. "redmine ops") starts every error message, so an operator sees which backend failed."""

    def __init__(self, base_url: str, *, timeout: float, verify: bool = True, ca_file: str | None = None,
                 headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
                 secret_headers: Iterable[str] = (), name: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
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

    def where(self, method: str, url_or_path: str) -> str:
        """`name: METHOD url`: how messages about one request start."""
        return _where(self.name, method, url_or_path)

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, secrets.REDACTED)
        return secrets.redact(text)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, headers: Mapping[str, str] | None = None) -> requests.Response:
        """Send one request; return a 2xx response (its body read) or raise TransientError / PermanentError."""
        url = self.url(path)
        where = self.where(method, url)
        try:
            with warnings.catch_warnings():  # verify=False was logged once at start, not on every request
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                resp = self._session.request(method, url, params=params, json=json_body, headers=headers,
                                             timeout=self.timeout, verify=self.verify, allow_redirects=False,
                                             stream=True)
        except requests.Timeout as e:
            msg = f"{where}: timed out after {self.timeout:g}s ({type(e).__name__})"
            raise TransientError(self.redact(msg)) from None
        except requests.exceptions.SSLError as e:
            raise TransientError(self.redact(f"{where}: TLS error: {_reason(e)}")) from None
        except requests.ConnectionError as e:
            raise TransientError(self.redact(f"{where}: connection failed: {_reason(e)}")) from None
        except requests.RequestException as e:  # invalid URL, too many redirects, …: configuration
            raise PermanentError(self.redact(f"{where}: {type(e).__name__}: {e}")) from None
        try:
            err = classify(resp.status_code)
            self._read(resp, where, whole=err is None)
            if err is None:
                return resp
            if 300 <= resp.status_code < 400:
                raise PermanentError(self.redact(f"{where}: HTTP {resp.status_code} redirect to "
                                                 f"{resp.headers.get('Location', '?')} (configure that URL)"))
            msg = self.redact(f"{where}: HTTP {resp.status_code} {resp.reason or ''}".rstrip() + _snippet(resp))
            if err is TransientError:
                raise TransientError(msg, retry_after=parse_retry_after(resp.headers.get("Retry-After"), time.time()))
            raise PermanentError(msg)
        finally:
            resp.close()

    def _read(self, resp: requests.Response, where: str, *, whole: bool) -> None:
        """Read the body into `resp` (so `.content`, `.text`, `.json()` work): all of it for a 2xx (at most
        MAX_ANSWER_BYTES: a larger one is marked `TRUNCATED`, refused by `json_body`), else its start."""
        limit = MAX_ANSWER_BYTES if whole else MAX_ERROR_BODY_BYTES
        body, truncated = read_body(resp, limit, self.timeout, where, redact=self.redact)
        set_response_body(resp, body)
        setattr(resp, TRUNCATED, truncated)

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """`request` and decode the JSON answer (PermanentError when the body is not JSON)."""
        resp = self.request(method, path, **kw)
        return json_body(resp, self)

    def doc(self, method: str, path: str, **kw: Any) -> Doc:
        """`request` and decode the JSON answer as a `Doc` (an empty body is null)."""
        return self.decode(self.request(method, path, **kw))

    def decode(self, resp: requests.Response) -> Doc:
        """The JSON answer of a 2xx `resp` as a `Doc` (an empty body is null)."""
        value = json_body(resp, self) if resp.content else None
        return Doc(value, self.where(resp.request.method or "?", urlsplit(resp.url).path))

    def close(self) -> None:
        self._session.close()


def json_body(resp: requests.Response, client: HttpClient | None = None) -> Any:
    """The decoded JSON of `resp`; PermanentError (naming the request) when it is not JSON."""
    where = _where(client.name if client else "", resp.request.method or "?",
                   urlsplit(resp.url)._replace(query="").geturl())
    if getattr(resp, TRUNCATED, False):
        text = f"{where}: HTTP {resp.status_code}: answer larger than {MAX_ANSWER_BYTES >> 20} MiB (refused)"
        raise PermanentError(client.redact(text) if client else secrets.redact(text))
    try:
        return _loads(resp)
    except RecursionError:
        text = f"{where}: HTTP {resp.status_code}: JSON nested too deep{_snippet(resp)}"
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, a number with too many digits
        text = f"{where}: HTTP {resp.status_code}: expected JSON, got " \
               f"{resp.headers.get('Content-Type', 'no content type')}{_snippet(resp)}"
    raise PermanentError(client.redact(text) if client else secrets.redact(text))


def _loads(resp: requests.Response) -> Any:
    """JSON from the body: as bytes (UTF-8/16/32, RFC 8259) unless the answer names another charset."""
    enc = (resp.encoding or "").lower().replace("-", "").replace("_", "")
    if enc and enc not in ("utf8", "iso88591"):  # requests' default for text/* is ISO-8859-1: not a statement
        try:
            return json.loads(resp.content.decode(resp.encoding or "utf-8"))
        except LookupError:
            pass
    return json.loads(resp.content)


def _where(name: str, method: str, url: str) -> str:
    return f"{name}: {method} {url}" if name else f"{method} {url}"


def _snippet(resp: requests.Response) -> str:
    text = " ".join(resp.content[:MAX_BODY_IN_ERROR * 4].decode("utf-8", "replace").split())
    if not text:
        return ""
    return ": " + (text[:MAX_BODY_IN_ERROR] + "…" if len(text) > MAX_BODY_IN_ERROR else text)


def read_body(resp: requests.Response, limit: int, timeout: float, where: str, *,
              redact: Callable[[str], str] = str) -> tuple[bytes, bool]:
    """The body of a `stream=True` response, at most `limit` bytes, and whether there was more; read within
    `timeout` overall whatever the server's pace (requests' timeout applies to each socket read, so a server
    dribbling a byte a second would otherwise hold the caller for hours). TransientError when the time is up
    or the connection fails; PermanentError when the content encoding is broken."""
    # read1: what has arrived, at most one socket read, so the deadline is checked between reads
    # (urllib3 2 has it; urllib3 1 only has read, which waits for a full chunk)
    read = getattr(resp.raw, "read1", None) or resp.raw.read
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = read(_CHUNK, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() > deadline:
                raise TransientError(redact(f"{where}: HTTP {resp.status_code}: the answer was not read "
                                            f"within {timeout:g}s ({size} bytes so far)"))
    except urllib3.exceptions.DecodeError as e:
        raise PermanentError(redact(f"{where}: HTTP {resp.status_code}: cannot decode the answer "
                                    f"({resp.headers.get('Content-Encoding', '')}): {e}")) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise TransientError(redact(f"{where}: HTTP {resp.status_code}: reading the answer failed: "
                                    f"{_reason(e)}")) from None
    return b"".join(chunks)[:limit], size > limit


def _reason(e: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 connection error, without the long repr chain."""
    inner: BaseException = e
    while True:
        nxt = getattr(inner, "reason", None) or inner.__context__ or (inner.args[0] if inner.args else None)
        if not isinstance(nxt, BaseException) or nxt is inner:
            break
        inner = nxt
    return str(inner) or type(inner).__name__


# -- reading JSON answers of unknown shape ------------------------------------------------------------------
_KINDS: dict[type, str] = {dict: "an object", list: "an array", str: "a string", int: "an integer",
                           float: "a number", bool: "true or false"}
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxdict, _BRIEF.maxlist, _BRIEF.maxstring, _BRIEF.maxother = 2, 4, 4, 60, 60
_DECIMAL = re.compile(r"-?[0-9]{1,18}")


def _typed(value: Any, kind: type[T]) -> T | None:
    """`value` as a `kind`, or None when it is not one (an integer may come as a decimal string; a bool is
    never a number)."""
    if isinstance(value, bool) and kind is not bool:
        return None
    if kind is int and isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)  # type: ignore[return-value]
    if kind is float and isinstance(value, int):
        return float(value)  # type: ignore[return-value]
    return value if isinstance(value, kind) else None


class Doc:
    """A JSON answer (or a part of one) read defensively: every accessor checks the type of what it reads
    and raises PermanentError naming the backend, the request and the place in the answer::

        issue = client.doc("GET", "/issues/7.json").obj("issue")
        status = issue.get("status.id", int)              # PermanentError unless an integer is there
        who = issue.get("assigned_to.name", str, "")      # "" when absent or null

    `path` is dot-separated keys; this Doc and each step must be an object; an absent key or a null value
    is "absent" (then `default`, or an empty object/array where `optional`).
    """

    __slots__ = ("path", "value", "where")

    def __init__(self, value: Any, where: str, path: str = "") -> None:
        self.value = value
        self.where = where
        self.path = path

    @staticmethod
    def of(value: Any, where: str) -> Doc:
        """`value` itself when it is a Doc already, else a Doc of it."""
        return value if isinstance(value, Doc) else Doc(value, where)

    def error(self, problem: str) -> PermanentError:
        return PermanentError(secrets.redact(f"{self.where}: unexpected answer: {problem}"))

    def _wrong(self, path: str, value: Any, kind: type) -> PermanentError:
        got = "null" if value is None else f"{_KINDS.get(type(value), type(value).__name__)} {_BRIEF.repr(value)}"
        return self.error(f"{path or 'the answer'} should be {_KINDS.get(kind, kind.__name__)}, got {got}")

    def _at(self, path: str) -> tuple[Any, str]:
        value, here = self.value, self.path
        for i, key in enumerate(path.split(".") if path else ()):
            if value is None and i:  # an absent parent: absent (the object itself being null is wrong)
                return None, f"{here}.{key}" if here else key
            if not isinstance(value, dict):
                raise self._wrong(here, value, dict)
            value = value.get(key)
            here = f"{here}.{key}" if here else key
        return value, here

    def get(self, path: str, kind: type[T], default: Any = ...) -> Any:
        """The `kind` value at `path`; `default` when absent or null (without a default: PermanentError)."""
        value, here = self._at(path)
        if value is None and default is not ...:
            return default
        typed = _typed(value, kind)
        if typed is None:
            raise self._wrong(here, value, kind)
        return typed

    def id(self, path: str = "id") -> str:
        """A record id at `path`: a non-negative integer (a JSON number or a decimal string), as text."""
        value = self.get(path, int)
        if value < 0:
            raise self.error(f"{self._at(path)[1]} should be an id (a non-negative integer), got {value}")
        return str(value)

    def raw(self, path: str, default: Any = None) -> Any:
        """The value at `path` whatever its type (for comparisons); `default` when absent or null."""
        value, _ = self._at(path)
        return default if value is None else value

    def obj(self, path: str = "", *, optional: bool = False) -> Doc:
        """The object at `path`; `optional`: an empty one when absent or null."""
        value, here = self._at(path)
        if value is None and optional:
            value = {}
        if not isinstance(value, dict):
            raise self._wrong(here, value, dict)
        return Doc(value, self.where, here)

    def objects(self, path: str = "", *, optional: bool = False) -> list[Doc]:
        """The array of objects at `path`; `optional`: empty when absent or null."""
        value, here = self._at(path)
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise self._wrong(here, value, list)
        out: list[Doc] = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self._wrong(f"{here}[{i}]", item, dict)
            out.append(Doc(item, self.where, f"{here}[{i}]"))
        return out

    def has(self, key: str) -> bool:
        """Whether this object has `key` (even with a null value)."""
        return isinstance(self.value, dict) and key in self.value
