from __future__ import annotations

import gzip
import http.client

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.exporters.prometheus import Exposition
from hostwarden.exporters.web import MetricsServer


@pytest.fixture
def server() -> MetricsServer:
    exp = Exposition(process_metrics=False)
    exp.update("x", [Sample("up_thing", (), 1.0, 0.0)])
    exp.render()
    srv = MetricsServer(exp, "127.0.0.1:0", on_reload=lambda: True)
    srv.start()
    yield srv
    srv.stop()


def test_metrics_keepalive_connection_serves_repeated_scrapes(server: MetricsServer) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        assert b"up_thing 1\n" in body
        assert resp.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    conn.close()


def test_metrics_gzip_and_openmetrics_negotiated(server: MetricsServer) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip",
                                             "Accept": "application/openmetrics-text;version=1.0.0"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(resp.read()).endswith(b"# EOF\n")


def test_health_ready_reload_and_unknown_paths(server: MetricsServer) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    for method, path, status in [("GET", "/-/healthy", 200), ("GET", "/-/ready", 200), ("POST", "/-/reload", 200),
                                 ("GET", "/nope", 404), ("GET", "/", 200)]:
        conn.request(method, path)
        resp = conn.getresponse()
        resp.read()
        assert (path, resp.status) == (path, status)
