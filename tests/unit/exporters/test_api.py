"""The read API's JSON (Prometheus' shapes and number formats), its filters and error types, over a real
RuleManager evaluating over a real store."""

from __future__ import annotations

import json

import pytest
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.store import SeriesStore
from hostwarden.exporters.api import (
    API,
    go_exp_value,
    go_sample_value,
    params_of,
    rfc3339,
)
from hostwarden.rules.loader import load_rule_files
from hostwarden.rules.manager import RuleManager
from hostwarden.rules.status import GroupStatus

RULES = """
groups:
  - name: g
    interval: 10s
    rules:
      - alert: High
        expr: v > 10
        for: 20s
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.k }} at {{ $value }}"}
      - record: v:double
        expr: v * 2
      - alert: Dup
        expr: label_replace(v, "k", "same", "", "")
"""


class View:
    def __init__(self, manager: RuleManager, store: SeriesStore, now: float) -> None:
        self.manager, self.store, self._now = manager, store, now

    def now(self) -> float:
        return self._now

    def rule_status(self) -> list[GroupStatus]:
        with self.store.lock:
            return self.manager.status()

    def subquery_step(self) -> float:
        return 10.0


@pytest.fixture
def api(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    errors = Errors()
    groups = load_rule_files([str(path)], errors, default_interval=10.0)
    assert not errors.issues
    store = SeriesStore()
    manager = RuleManager(groups, external_labels={"host": "h"})
    for t in range(1000, 1040, 10):
        store.load_series("v", (("k", "a"),), [(t, 50.0)])
        store.load_series("v", (("k", "b"),), [(t, 1.0)])
        manager.evaluate(groups[0], store, float(t))
    a = API(View(manager, store, 1030.0))
    yield a
    a.close()


def call(api: API, path: str, query: str = "", method: str = "GET") -> tuple[int, dict]:
    resp = api.handle(method, path, params_of(query, b"", ""))
    assert resp is not None and resp.content_type == "application/json"
    return resp.code, json.loads(resp.body)


@pytest.mark.parametrize(("value", "text"), [(1.0, "1"), (0.5, "0.5"), (1e21, "1000000000000000000000"),
                                             (-2.25, "-2.25"), (float("nan"), "NaN"), (float("inf"), "+Inf"),
                                             (float("-inf"), "-Inf"), (0.1 + 0.2, "0.30000000000000004"), (0.0, "0")])
def test_go_sample_value_formats_as_strconv_f(value: float, text: str) -> None:
    assert go_sample_value(value) == text


@pytest.mark.parametrize(("value", "text"), [(1.0, "1e+00"), (50.0, "5e+01"), (0.95, "9.5e-01"),
                                             (123456.0, "1.23456e+05"), (0.0, "0e+00"), (float("nan"), "NaN"),
                                             (float("inf"), "+Inf")])
def test_go_exp_value_formats_as_strconv_e(value: float, text: str) -> None:
    assert go_exp_value(value) == text


def test_rfc3339_trims_fraction_and_zero_is_go_zero_time() -> None:
    assert rfc3339(0) == "0001-01-01T00:00:00Z"
    assert rfc3339(1700000000.0) == "2023-11-14T22:13:20Z"
    assert rfc3339(1700000000.25) == "2023-11-14T22:13:20.25Z"


def test_api_rules_json_fields_as_prometheus(api: API) -> None:
    code, body = call(api, "/api/v1/rules")
    assert code == 200 and body["status"] == "success"
    (group,) = body["data"]["groups"]
    assert list(group) == ["name", "file", "rules", "interval", "limit", "evaluationTime", "lastEvaluation"]
    assert (group["name"], group["interval"], group["limit"]) == ("g", 10.0, 0)
    assert group["lastEvaluation"] == "1970-01-01T00:17:10Z"
    high, record, dup = group["rules"]
    assert list(high) == ["state", "name", "query", "duration", "keepFiringFor", "labels", "annotations", "alerts",
                          "health", "evaluationTime", "lastEvaluation", "type"]
    assert (high["state"], high["duration"], high["type"], high["health"]) == ("firing", 20.0, "alerting", "ok")
    assert high["annotations"] == {"summary": "{{ $labels.k }} at {{ $value }}"}  # templates as written
    (alert,) = high["alerts"]
    assert alert == {"labels": {"alertname": "High", "k": "a", "severity": "critical"},
                     "annotations": {"summary": "a at 50"}, "state": "firing",
                     "activeAt": "1970-01-01T00:16:40Z", "value": "5e+01"}
    assert list(record) == ["name", "query", "health", "evaluationTime", "lastEvaluation", "type"]
    assert record["type"] == "recording"
    assert dup["health"] == "err" and "same labelset" in dup["lastError"]
    assert dup["state"] == "inactive" and dup["alerts"] == []


@pytest.mark.parametrize(("query", "names"), [("type=alert", ["High", "Dup"]), ("type=record", ["v:double"]),
                                              ("rule_name[]=High", ["High"]),
                                              ("rule_group[]=nope", None), ("exclude_alerts=true", None)])
def test_api_rules_filters(api: API, query: str, names: list[str] | None) -> None:
    _code, body = call(api, "/api/v1/rules", query)
    groups = body["data"]["groups"]
    if query.startswith("rule_group"):
        assert groups == []
    elif query.startswith("exclude"):
        assert all("alerts" not in r for r in groups[0]["rules"])
    else:
        assert [r["name"] for r in groups[0]["rules"]] == names


def test_api_rules_bad_type_is_bad_data_400(api: API) -> None:
    code, body = call(api, "/api/v1/rules", "type=both")
    assert code == 400 and body["errorType"] == "bad_data" and body["status"] == "error"


def test_api_alerts_lists_active_alerts(api: API) -> None:
    code, body = call(api, "/api/v1/alerts")
    assert code == 200
    assert [a["labels"]["alertname"] for a in body["data"]["alerts"]] == ["High"]


@pytest.mark.parametrize(("query", "result_type", "result"), [
    ("query=v*2&time=1030", "vector", [{"metric": {"k": "a"}, "value": [1030, "100"]},
                                      {"metric": {"k": "b"}, "value": [1030, "2"]}]),
    ("query=sum(v)&time=1030.5", "vector", [{"metric": {}, "value": [1030.5, "51"]}]),
    ("query=scalar(sum(v))&time=1030", "scalar", [1030, "51"]),
    ('query="hi"&time=1030', "string", [1030, "hi"]),
    ("query=v{k='a'}[15s]&time=1030", "matrix", [{"metric": {"__name__": "v", "k": "a"},
                                                 "values": [[1020, "50"], [1030, "50"]]}]),
])
def test_api_query_result_types(api: API, query: str, result_type: str, result: object) -> None:
    code, body = call(api, "/api/v1/query", query)
    assert code == 200, body
    assert body["data"] == {"resultType": result_type, "result": result}


@pytest.mark.parametrize(("query", "code", "error_type"), [
    ("query=sum(", 400, "bad_data"), ("", 400, "bad_data"), ("query=v&time=yesterday", 400, "bad_data"),
    ('query=label_replace(v, "k", "x", "", "")&time=1030', 422, "execution"),
    ("query=v&timeout=soon", 400, "bad_data"),
])
def test_api_query_errors_have_prometheus_types_and_codes(api: API, query: str, code: int, error_type: str) -> None:
    got, body = call(api, "/api/v1/query", query)
    assert (got, body["status"], body["errorType"]) == (code, "error", error_type)
    assert set(body) == {"status", "errorType", "error"} and body["error"]


def test_api_query_range_steps_and_limits(api: API) -> None:
    code, body = call(api, "/api/v1/query_range", "query=sum(v)&start=1010&end=1030&step=10s")
    assert code == 200
    assert body["data"] == {"resultType": "matrix",
                            "result": [{"metric": {}, "values": [[1010, "51"], [1020, "51"], [1030, "51"]]}]}
    code, body = call(api, "/api/v1/query_range", "query=sum(v)&start=0&end=1000000&step=1")
    assert (code, body["errorType"]) == (400, "bad_data") and "11,000 points" in body["error"]


def test_api_query_post_form_body(api: API) -> None:
    resp = api.handle("POST", "/api/v1/query", params_of("", b"query=sum(v)&time=1030",
                                                         "application/x-www-form-urlencoded"))
    assert resp is not None and json.loads(resp.body)["data"]["result"] == [{"metric": {}, "value": [1030, "51"]}]


def test_api_unknown_endpoint_404_and_wrong_method_405(api: API) -> None:
    code, body = call(api, "/api/v1/targets")
    assert (code, body["errorType"]) == (404, "not_found")
    code, _body = call(api, "/api/v1/rules", method="POST")
    assert code == 405
    assert api.handle("GET", "/metrics", {}) is None


def test_api_query_timeout_answers_503(api: API) -> None:
    import threading

    api.timeout = 0.2
    gate = threading.Event()
    store = api.view.store
    holder = threading.Thread(target=lambda: (store.lock.acquire(), gate.wait(5), store.lock.release()))
    holder.start()  # another thread holds the store: the query cannot run in time
    try:
        code, body = call(api, "/api/v1/query", "query=v&time=1030")
    finally:
        gate.set()
        holder.join(5)
    assert (code, body["errorType"]) == (503, "timeout")
