"""Prometheus' read API over the agent: /api/v1/alerts, /api/v1/rules, /api/v1/query, /api/v1/query_range.

The JSON is Prometheus' (web/api/v1/api.go), field for field, so Grafana's Prometheus data source,
alert-list panels and scripts written against Prometheus work against a host directly:

    {"status": "success", "data": {...}}
    {"status": "error", "errorType": "bad_data", "error": "..."}      # HTTP 400
    errorType execution → 422, timeout → 503, internal → 500, not_found → 404

Queries run the rule engine's evaluator (rules/promql.py) over the agent's in-memory store, which
keeps the metric names loaded rules read, for as long as they look back (at least 10 minutes); a
name no rule reads has no samples to query. Evaluation happens on a small worker pool; a query
that is not done after `timeout` (default and maximum DEFAULT_TIMEOUT) answers 503 `timeout` (its
evaluation, bounded by the engine's sample limit, finishes in the background).

Everything here reads snapshots (`AgentView`); nothing holds a lock while writing a response.
"""

from __future__ import annotations

import json
import logging
import math
import re
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.promql import Element, PromQLError, SeriesRange, compile_expr
from hostwarden.rules.status import AlertStatus, GroupStatus, RuleStatus

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
MAX_QUERY_WORKERS = 2
MAX_POINTS = 11_000  # Prometheus' limit of points per series in a range query
MAX_BODY_BYTES = 1 << 20
JSON = "application/json"


class AgentView(Protocol):
    """What the API reads from the running agent (agent/webview.py implements it)."""

    store: SeriesStore

    def now(self) -> float: ...
    def rule_status(self) -> list[GroupStatus]: ...
    def subquery_step(self) -> float: ...


@dataclass(frozen=True)
class Response:
    code: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class APIError(Exception):
    CODES = {"bad_data": 400, "execution": 422, "timeout": 503, "internal": 500, "not_found": 404,
             "unavailable": 503, "canceled": 503}

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


# -- formatting, as Prometheus does ------------------------------------------------------------------------
def go_sample_value(v: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent; NaN, +Inf, -Inf."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    text = format(Decimal(repr(v)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def go_exp_value(v: float) -> str:
    """strconv.FormatFloat(v, 'e', -1, 64), the alert `value` of /api/v1/alerts ("1e+00", "9.5e-01")."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    digits = Decimal(repr(v)).normalize().as_tuple().digits if v != 0 else (0,)
    return f"{v:.{max(0, len(digits) - 1)}e}"


def rfc3339(ts: float | None) -> str:
    """Go's time.Time JSON (RFC 3339, fraction trimmed), "0001-01-01T00:00:00Z" for never."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    dt = datetime.fromtimestamp(ts, UTC)
    frac = f"{dt.microsecond:06d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def api_time(t: float) -> float | int:
    """A sample timestamp in the API: seconds with millisecond precision (Prometheus' int64 ms / 1000)."""
    ms = round(t * 1000)
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def _map(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(sorted(pairs))


# -- rules and alerts ----------------------------------------------------------------------------------------
def alert_json(a: AlertStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"labels": _map(a.labels), "annotations": _map(a.annotations), "state": a.state,
                           "activeAt": rfc3339(a.active_at)}
    if a.keep_firing_since:
        out["keepFiringSince"] = rfc3339(a.keep_firing_since)
    out["value"] = go_exp_value(a.value)
    return out


def rule_json(r: RuleStatus, *, exclude_alerts: bool = False) -> dict[str, Any]:
    if r.kind == "record":
        out: dict[str, Any] = {"name": r.name, "query": r.query}
        if r.labels:
            out["labels"] = _map(r.labels)
        out["health"] = r.health
        if r.last_error:
            out["lastError"] = r.last_error
        out.update(evaluationTime=r.evaluation_time, lastEvaluation=rfc3339(r.last_evaluation), type="recording")
        return out
    out = {"state": r.state, "name": r.name, "query": r.query, "duration": r.duration,
           "keepFiringFor": r.keep_firing_for, "labels": _map(r.labels), "annotations": _map(r.annotations)}
    if not exclude_alerts:
        out["alerts"] = [alert_json(a) for a in r.alerts]
    out["health"] = r.health
    if r.last_error:
        out["lastError"] = r.last_error
    out.update(evaluationTime=r.evaluation_time, lastEvaluation=rfc3339(r.last_evaluation), type="alerting")
    return out


def rules_json(groups: list[GroupStatus], params: dict[str, list[str]]) -> dict[str, Any]:
    """`data` of /api/v1/rules with its filters: type=alert|record, rule_name[], rule_group[], file[],
    exclude_alerts."""
    kind = (params.get("type") or [""])[-1].lower()
    if kind not in ("", "alert", "record"):
        raise APIError("bad_data", f'invalid query parameter type="{kind}"; must be one of: "alert", "record"')
    names = set(params.get("rule_name[]", []))
    group_names = set(params.get("rule_group[]", []))
    files = set(params.get("file[]", []))
    exclude = (params.get("exclude_alerts") or ["false"])[-1].lower() == "true"
    out = []
    for g in groups:
        if (group_names and g.name not in group_names) or (files and g.file not in files):
            continue
        rules = [rule_json(r, exclude_alerts=exclude) for r in g.rules
                 if (not kind or r.kind == kind) and (not names or r.name in names)]
        if not rules:  # as Prometheus since 2.46: a group without (matching) rules is left out
            continue
        out.append({"name": g.name, "file": g.file, "rules": rules, "interval": g.interval, "limit": g.limit,
                    "evaluationTime": g.evaluation_time, "lastEvaluation": rfc3339(g.last_evaluation)})
    return {"groups": out}


def alerts_json(groups: list[GroupStatus]) -> dict[str, Any]:
    return {"alerts": [alert_json(a) for g in groups for r in g.rules for a in r.alerts]}


# -- queries -------------------------------------------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}


def parse_time(text: str, name: str) -> float:
    try:
        v = float(text)
        if math.isfinite(v):
            return v
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise APIError("bad_data", f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp') \
            from None


def parse_duration(text: str, name: str) -> float:
    try:
        v = float(text)
        if math.isfinite(v) and v >= 0:
            return v
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise APIError("bad_data", f'invalid parameter "{name}": cannot parse "{text}" to a valid duration')
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _vector_json(result: list[Element], t: float) -> list[dict[str, Any]]:
    return [{"metric": dict(el.labels), "value": [api_time(t), go_sample_value(el.value)]} for el in result]


def _matrix_json(series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]) -> list[dict[str, Any]]:
    return [{"metric": dict(labels), "values": [[api_time(t), go_sample_value(v)] for t, v in points]}
            for labels, points in series.items()]


def evaluate_instant(store: SeriesStore, text: str, t: float, *, subquery_step: float) -> dict[str, Any]:
    compiled = _compile(text, subquery_step)
    t = round(t * 1000) / 1000
    try:
        with store.lock:
            result = compiled.eval(store, t)
    except PromQLError as e:
        raise APIError("execution", str(e)) from None
    if compiled.value_type == "scalar":
        return {"resultType": "scalar", "result": [api_time(t), go_sample_value(float(result))]}  # type: ignore[arg-type]
    if compiled.value_type == "string":
        return {"resultType": "string", "result": [api_time(t), str(result)]}
    if compiled.value_type == "matrix":
        ranges: list[SeriesRange] = result  # type: ignore[assignment]
        return {"resultType": "matrix", "result": _matrix_json({r.labels: list(r.points) for r in ranges})}
    return {"resultType": "vector", "result": _vector_json(result, t)}  # type: ignore[arg-type]


def evaluate_range(store: SeriesStore, text: str, start: float, end: float, step: float, *,
                   subquery_step: float) -> dict[str, Any]:
    if end < start:
        raise APIError("bad_data", 'invalid parameter "end": end timestamp must not be before start time')
    if step <= 0:
        raise APIError("bad_data", 'invalid parameter "step": zero or negative query resolution step widths are '
                                   "not accepted. Try a positive integer")
    if (end - start) / step > MAX_POINTS:
        raise APIError("bad_data", "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing "
                                   "the query resolution (?step=XX)")
    compiled = _compile(text, subquery_step)
    if compiled.value_type not in ("vector", "scalar"):
        raise APIError("bad_data", f'invalid expression type "{_go_type(compiled.value_type)}" for range query, '
                                   "must be Scalar or instant Vector")
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    n = int((end - start) / step + 1e-9)
    for i in range(n + 1):
        t = round((start + i * step) * 1000) / 1000
        try:
            with store.lock:  # per step: collectors get the lock between steps
                result = compiled.eval(store, t)
        except PromQLError as e:
            raise APIError("execution", str(e)) from None
        if compiled.value_type == "scalar":
            series.setdefault((), []).append((t, float(result)))  # type: ignore[arg-type]
        else:
            for el in result:  # type: ignore[union-attr]
                series.setdefault(el.labels, []).append((t, el.value))
    return {"resultType": "matrix", "result": _matrix_json(series)}


def _go_type(value_type: str) -> str:
    return {"matrix": "range vector", "vector": "instant vector"}.get(value_type, value_type)


def _compile(text: str, subquery_step: float) -> Any:
    try:
        return compile_expr(text, subquery_step=subquery_step)
    except PromQLError as e:
        raise APIError("bad_data", str(e)) from None


# -- the HTTP side -------------------------------------------------------------------------------------------
def ok(data: Any) -> Response:
    return Response(200, json.dumps({"status": "success", "data": data}, separators=(",", ":"),
                                    allow_nan=False).encode())


def error(e: APIError) -> Response:
    body = json.dumps({"status": "error", "errorType": e.error_type, "error": e.message}).encode()
    return Response(APIError.CODES.get(e.error_type, 500), body)


def params_of(query: str, body: bytes, content_type: str) -> dict[str, list[str]]:
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    if body and content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
            params.setdefault(k, []).extend(v)
    return params


def _one(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name) or [""]
    return values[-1]


class API:
    """Routes /api/v1/*; `handle` returns None for paths that are not the API's."""

    def __init__(self, view: AgentView, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.view = view
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=MAX_QUERY_WORKERS, thread_name_prefix="query")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def handle(self, method: str, path: str, params: dict[str, list[str]]) -> Response | None:
        if not path.startswith("/api/v1/"):
            return None
        route = path[len("/api/v1/"):]
        routes: dict[str, Callable[[dict[str, list[str]]], Any]] = {
            "alerts": lambda p: alerts_json(self.view.rule_status()),
            "rules": lambda p: rules_json(self.view.rule_status(), p),
            "query": self._query, "query_range": self._query_range,
            "label/__name__/values": self._names,
        }
        fn = routes.get(route)
        if fn is None:
            return error(APIError("not_found", f"unknown API endpoint {path}"))
        post_ok = route in ("query", "query_range")
        if method not in ("GET", "HEAD") and not (post_ok and method == "POST"):
            return Response(405, b'{"status":"error","errorType":"bad_data","error":"method not allowed"}')
        try:
            return ok(fn(params))
        except APIError as e:
            return error(e)
        except Exception as e:  # a bug must answer 500, not drop the connection
            log.exception("API %s failed", path)
            return error(APIError("internal", f"{type(e).__name__}: {e}"))

    def _timeout(self, params: dict[str, list[str]]) -> float:
        text = _one(params, "timeout")
        return min(self.timeout, parse_duration(text, "timeout")) if text else self.timeout

    def _run(self, params: dict[str, list[str]], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        timeout = self._timeout(params)
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()
            raise APIError("timeout", "query timed out in query execution") from None

    def _query(self, params: dict[str, list[str]]) -> dict[str, Any]:
        text = _one(params, "query")
        if not text.strip():
            raise APIError("bad_data", 'invalid parameter "query": unknown position: parse error: no expression found')
        at = _one(params, "time")
        t = parse_time(at, "time") if at else self.view.now()
        step = self.view.subquery_step()
        return self._run(params, lambda: evaluate_instant(self.view.store, text, t, subquery_step=step))

    def _query_range(self, params: dict[str, list[str]]) -> dict[str, Any]:
        text = _one(params, "query")
        for name in ("start", "end", "step"):
            if not _one(params, name):
                raise APIError("bad_data", f'invalid parameter "{name}": cannot parse "" to a valid '
                                           f'{"duration" if name == "step" else "timestamp"}')
        start, end = parse_time(_one(params, "start"), "start"), parse_time(_one(params, "end"), "end")
        step = parse_duration(_one(params, "step"), "step")
        sq = self.view.subquery_step()
        return self._run(params, lambda: evaluate_range(self.view.store, text, start, end, step, subquery_step=sq))

    def _names(self, params: dict[str, list[str]]) -> list[str]:
        return sorted(self.view.store.names())

