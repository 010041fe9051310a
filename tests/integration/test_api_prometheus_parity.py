"""The agent's /api/v1/rules, /api/v1/alerts and /api/v1/query compared field by field with Debian's real
Prometheus evaluating the same rule file over the same series: Prometheus scrapes the series from the
agent's /metrics (the textfile collector's `demo_*`, job/instance dropped so the label sets agree) and
both evaluate every second. Series are constant, so values, states and labels must be equal; times
(activeAt, lastEvaluation) differ by when each started and are compared for form and order."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

import pytest

from tests.support.agent import start_agent, wait_for, write_config
from tests.support.prometheus import start_prometheus

pytestmark = pytest.mark.integration

RULES = """
groups:
  - name: parity
    interval: 1s
    rules:
      - record: demo:double
        expr: demo_value * 2
      - alert: DemoHigh
        expr: demo_value > 10
        for: 2s
        keep_firing_for: 5s
        labels:
          severity: critical
          team: "{{ $labels.kind }}-team"
        annotations:
          summary: "{{ $labels.kind }} is {{ $value }}"
          description: 'value {{ printf "%.1f" $value }} over 10'
      - alert: DemoSlow
        expr: demo_value > 1
        for: 1h
        labels: {severity: warning}
      - alert: DemoNever
        expr: demo_value > 1000
      - alert: DemoDoubleHigh
        expr: demo:double > 50
        annotations:
          summary: "double is {{ $value }}"
  - name: parity-errors
    interval: 1s
    rules:
      - alert: DemoDuplicate
        expr: label_replace(demo_value, "kind", "same", "", "")
"""
SERIES = 'demo_value{kind="a"} 20\ndemo_value{kind="b"} 30\ndemo_value{kind="c"} 5\ndemo_other 7\n'
QUERIES = [
    "demo_value", "demo_value * 2", "sum by (kind) (demo_value)", "sum(demo_value)", "scalar(sum(demo_value))",
    "42", '"text"', "count(demo_value > 10)", "demo_value > bool 10", "max(demo_value) - min(demo_value)",
    'label_replace(demo_value, "k2", "$1", "kind", "(.*)")', "demo_value offset 1s", "absent(nothing_here)",
    "topk(2, demo_value)", "avg_over_time(demo_value[3s])", "demo_value / on() group_left sum(demo_value)",
]
BAD = ["sum(", "demo_value{", "rate(demo_value)", ""]
EXECUTION = ['label_replace(demo_value, "kind", "same", "", "")']


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def api(base: str, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    return get(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}")


def rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def firing(base: str) -> set[str]:
    _code, body = api(base, "alerts")
    return {a["labels"]["alertname"] for a in body["data"]["alerts"] if a["state"] == "firing"}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("parity")
    rules = d / "rules.yaml"
    rules.write_text(RULES)
    textfile = d / "state" / "textfile"
    textfile.mkdir(parents=True)
    (textfile / ".demo.tmp").write_text("# TYPE demo_value gauge\n# TYPE demo_other gauge\n" + SERIES)
    os.replace(textfile / ".demo.tmp", textfile / "demo.prom")
    agent = start_agent(write_config(d, f"rule_files: [{rules}]\n"))
    prom = None
    try:
        prom = start_prometheus(d / "prom", f"  - job_name: hostwarden\n    static_configs:\n"
                                            f"      - targets: ['127.0.0.1:{agent.port}']\n"
                                            "    metric_relabel_configs:\n"
                                            "      - {source_labels: [__name__], regex: 'demo_.*', action: keep}\n"
                                            "      - {regex: 'job|instance', action: labeldrop}\n",
                                rule_files=[str(rules)])
        want = {"DemoHigh", "DemoDoubleHigh"}
        wait_for(lambda: firing(agent.url) >= want, 30, what="agent alerts firing")
        wait_for(lambda: firing(prom.url) >= want, 30, what="prometheus alerts firing")
        time.sleep(1.5)  # both have evaluated every group at least once more
        yield agent.url, prom.url, textfile
    finally:
        if prom is not None:
            prom.stop()
        assert agent.stop() == 0, agent.log_text()


def by_name(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rules}


def alerts_by_labels(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {json.dumps(a["labels"], sort_keys=True): a for a in alerts}


def assert_alerts_equal(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], where: str) -> None:
    o, t = alerts_by_labels(ours), alerts_by_labels(theirs)
    assert o.keys() == t.keys(), where
    for key, a in o.items():
        b = t[key]
        assert set(a) == set(b), f"{where} {key}: fields {sorted(a)} vs {sorted(b)}"
        for f in ("labels", "annotations", "state", "value"):
            assert a[f] == b[f], f"{where} {key}: {f} {a[f]!r} vs {b[f]!r}"
        rfc3339(a["activeAt"])
        if "keepFiringSince" in a:
            rfc3339(a["keepFiringSince"])


def test_api_rules_same_fields_and_values_as_prometheus(both) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    code_o, ours = api(ours_url, "rules")
    code_t, theirs = api(theirs_url, "rules")
    assert code_o == code_t == 200 and ours["status"] == theirs["status"] == "success"
    og, tg = ours["data"]["groups"], theirs["data"]["groups"]
    assert [g["name"] for g in og] == [g["name"] for g in tg] == ["parity", "parity-errors"]
    for a, b in zip(og, tg, strict=True):
        assert set(a) == set(b), (sorted(a), sorted(b))
        for f in ("name", "file", "interval", "limit"):
            assert a[f] == b[f], (f, a[f], b[f])
        assert rfc3339(a["lastEvaluation"]) > time.time() - 10 and isinstance(a["evaluationTime"], float)
        ours_rules, their_rules = by_name(a["rules"]), by_name(b["rules"])
        assert list(ours_rules) == list(their_rules)
        for name, r in ours_rules.items():
            p = their_rules[name]
            assert set(r) == set(p), f"{name}: fields {sorted(r)} vs {sorted(p)}"
            for f in ("name", "query", "type", "health", "labels", "annotations", "duration", "keepFiringFor",
                      "state"):
                assert r.get(f) == p.get(f), f"{name}.{f}: {r.get(f)!r} vs {p.get(f)!r}"
            assert ("lastError" in r) == ("lastError" in p), name
            assert rfc3339(r["lastEvaluation"]) > time.time() - 10
            assert isinstance(r["evaluationTime"], float)
            if "alerts" in r:
                assert_alerts_equal(r["alerts"], p["alerts"], name)
    errors = by_name(og[1]["rules"])["DemoDuplicate"]
    assert errors["health"] == "err" and "same labelset" in errors["lastError"]


@pytest.mark.parametrize("kind", ["alert", "record"])
def test_api_rules_type_filter_same_as_prometheus(both, kind: str) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    _c, ours = api(ours_url, "rules", type=kind)
    _c, theirs = api(theirs_url, "rules", type=kind)
    names = [[r["name"] for r in g["rules"]] for g in ours["data"]["groups"]]
    # Prometheus 2.42 lists a group the filter emptied (rules: []); later versions leave it out, as the agent does
    assert names == [n for n in ([r["name"] for r in g["rules"]] for g in theirs["data"]["groups"]) if n]
    assert names and all(names)
    assert all(r["type"] == ("alerting" if kind == "alert" else "recording")
               for g in ours["data"]["groups"] for r in g["rules"])


def test_api_rules_bad_type_is_bad_data_as_in_prometheus(both) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    (code_o, ours), (code_t, theirs) = api(ours_url, "rules", type="x"), api(theirs_url, "rules", type="x")
    assert code_o == code_t == 400
    assert ours["errorType"] == theirs["errorType"] == "bad_data"


def test_api_alerts_same_as_prometheus(both) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    code_o, ours = api(ours_url, "alerts")
    code_t, theirs = api(theirs_url, "alerts")
    assert code_o == code_t == 200
    assert set(ours["data"]) == set(theirs["data"]) == {"alerts"}
    alerts = ours["data"]["alerts"]
    assert {a["state"] for a in alerts} == {"firing", "pending"}
    assert_alerts_equal(alerts, theirs["data"]["alerts"], "alerts")


def _normalise(result: Any, result_type: str) -> Any:
    if result_type in ("scalar", "string"):
        return result[1]
    if result_type == "vector":
        return sorted((json.dumps(r["metric"], sort_keys=True), r["value"][1]) for r in result)
    return sorted((json.dumps(r["metric"], sort_keys=True), [v for _t, v in r["values"]]) for r in result)


@pytest.mark.parametrize("expr", QUERIES)
def test_api_query_same_result_as_prometheus(both, expr: str) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    at = f"{time.time() - 0.5:.3f}"
    code_o, ours = api(ours_url, "query", query=expr, time=at)
    code_t, theirs = api(theirs_url, "query", query=expr, time=at)
    assert (code_o, ours["status"]) == (code_t, theirs["status"]) == (200, "success"), (ours, theirs)
    o, t = ours["data"], theirs["data"]
    assert o["resultType"] == t["resultType"], (o, t)
    if o["resultType"] in ("scalar", "string"):
        assert o["result"][0] == t["result"][0] == float(at) or o["result"][0] == t["result"][0]
    elif o["resultType"] == "vector":
        assert {r["value"][0] for r in o["result"]} <= {float(at)}
        assert {r["value"][0] for r in t["result"]} <= {float(at)}
        assert all(set(r) == {"metric", "value"} for r in o["result"] + t["result"])
    assert _normalise(o["result"], o["resultType"]) == _normalise(t["result"], t["resultType"])


def test_api_query_matrix_shape_as_prometheus(both) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    _c, ours = api(ours_url, "query", query="demo_value[3s]")
    _c, theirs = api(theirs_url, "query", query="demo_value[3s]")
    assert ours["data"]["resultType"] == theirs["data"]["resultType"] == "matrix"
    metrics = sorted(json.dumps(r["metric"], sort_keys=True) for r in ours["data"]["result"])
    assert metrics == sorted(json.dumps(r["metric"], sort_keys=True) for r in theirs["data"]["result"])
    for r in ours["data"]["result"]:
        assert set(r) == {"metric", "values"} and r["values"]
        assert all(isinstance(t, float | int) and isinstance(v, str) for t, v in r["values"])


@pytest.mark.parametrize("expr", BAD)
def test_api_query_bad_data_same_code_as_prometheus(both, expr: str) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    code_o, ours = api(ours_url, "query", query=expr)
    code_t, theirs = api(theirs_url, "query", query=expr)
    assert code_o == code_t == 400, (ours, theirs)
    assert ours["status"] == theirs["status"] == "error"
    assert ours["errorType"] == theirs["errorType"] == "bad_data"
    assert set(ours) == set(theirs) - {"warnings"}


@pytest.mark.parametrize("expr", EXECUTION)
def test_api_query_execution_error_same_code_as_prometheus(both, expr: str) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    code_o, ours = api(ours_url, "query", query=expr)
    code_t, theirs = api(theirs_url, "query", query=expr)
    assert code_o == code_t == 422, (ours, theirs)
    assert ours["errorType"] == theirs["errorType"] == "execution"


def test_api_query_names_no_rule_reads_have_no_samples(both) -> None:  # type: ignore[no-untyped-def]
    """Documented difference: the store keeps only what loaded rules read (demo_other is read by none)."""
    ours_url, theirs_url, _textfile = both
    _c, ours = api(ours_url, "query", query="demo_other")
    _c, theirs = api(theirs_url, "query", query="demo_other")
    assert ours["data"] == {"resultType": "vector", "result": []}
    assert [r["value"][1] for r in theirs["data"]["result"]] == ["7"]


def test_api_query_post_form_same_as_get(both) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    results = []
    for base in (ours_url, theirs_url):
        req = urllib.request.Request(f"{base}/api/v1/query", data=b"query=sum(demo_value)", method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            results.append(json.loads(resp.read())["data"])
    assert results[0]["resultType"] == results[1]["resultType"] == "vector"
    assert results[0]["result"][0]["value"][1] == results[1]["result"][0]["value"][1] == "55"


def test_api_query_range_same_values_as_prometheus(both) -> None:  # type: ignore[no-untyped-def]
    ours_url, theirs_url, _textfile = both
    end = round(time.time() - 1)
    params = {"query": "sum by (kind) (demo_value)", "start": str(end - 2), "end": str(end), "step": "1s"}
    code_o, ours = api(ours_url, "query_range", **params)
    code_t, theirs = api(theirs_url, "query_range", **params)
    assert code_o == code_t == 200
    assert ours["data"]["resultType"] == theirs["data"]["resultType"] == "matrix"
    assert _normalise(ours["data"]["result"], "matrix") == _normalise(theirs["data"]["result"], "matrix")
    assert [t for t, _v in ours["data"]["result"][0]["values"]] == [end - 2, end - 1, end]


def test_api_keep_firing_since_as_prometheus(both) -> None:  # type: ignore[no-untyped-def]
    """Last in the module (it changes the series): kind="a" drops below the threshold; DemoHigh{kind="a"}
    keeps firing for keep_firing_for (5s) in both, with keepFiringSince."""
    ours_url, theirs_url, textfile = both
    (textfile / ".demo.tmp").write_text("# TYPE demo_value gauge\n# TYPE demo_other gauge\n"
                                        + SERIES.replace('kind="a"} 20', 'kind="a"} 0'))
    os.replace(textfile / ".demo.tmp", textfile / "demo.prom")

    def kept(base: str) -> dict[str, Any] | None:
        _c, body = api(base, "alerts")
        return next((a for a in body["data"]["alerts"]
                     if a["labels"] == {"alertname": "DemoHigh", "kind": "a", "severity": "critical", "team": "a-team"}
                     and "keepFiringSince" in a), None)

    ours = wait_for(lambda: kept(ours_url), 4, interval=0.1, what="agent keepFiringSince")
    theirs = wait_for(lambda: kept(theirs_url), 4, interval=0.1, what="prometheus keepFiringSince")
    assert set(ours) == set(theirs)
    assert ours["state"] == theirs["state"] == "firing"
    assert rfc3339(ours["keepFiringSince"]) > rfc3339(ours["activeAt"])
    assert ours["value"] == theirs["value"] == "2e+01"  # the last value that held
