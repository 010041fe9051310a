"""The status page, its SVG charts, the runbook pages and `hostwarden status`: untrusted text (labels,
annotations, check output, ticket titles and URLs) never becomes markup or terminal control sequences."""

from __future__ import annotations

import html.parser
import json

import pytest
from hostwarden.agent.cmd_status import clean
from hostwarden.agent.cmd_status import render as render_text
from hostwarden.agent.core.alert import Alert, AlertState
from hostwarden.agent.incidents.runbooks import resolve_alert, resolve_url
from hostwarden.exporters import runbooks
from hostwarden.exporters.status_page import render, safe_url, timeline_svg
from hostwarden.exporters.statusmodel import (
    ActiveAlert,
    Chart,
    CheckRow,
    CollectorRow,
    Health,
    IncidentRow,
    OutboxRow,
    Summary,
    TicketLink,
    summary_json,
)
from hostwarden.exporters.svgchart import line_chart
from hostwarden.exporters.webapp import WebApp
from hostwarden.rules.chartdata import ChartSeries, ThresholdLine
from hostwarden.rules.status import AlertStatus, GroupStatus, RuleStatus

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
NOW = 1_800_000_000.0


class Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    p = Tags()
    p.feed(text)
    return p.tags


def summary(*, silences: bool = False, ticket_url: str = "/tickets/local/7") -> Summary:
    alert = AlertStatus(labels=(("alertname", "DiskFull"), ("mount", EVIL), ("severity", "critical")),
                        annotations=(("summary", EVIL),), state="firing", active_at=NOW - 300, value=0.97,
                        keep_firing_since=None, severity="critical", threshold="> 0.9", fingerprint="abcdef0123456789")
    chart = Chart(series=(ChartSeries((("mount", EVIL),), ((NOW - 60, 0.5), (NOW - 30, float("nan")),
                                                             (NOW - 20, 0.9), (NOW, 0.97))),),
                  thresholds=(ThresholdLine(f"> 0.9 {EVIL}", 0.9),), start=NOW - 600, end=NOW)
    ticket = TicketLink(backend=EVIL, ticket_id="7", url=ticket_url, incident_id=7, status="open")
    rule = RuleStatus(kind="alert", name=EVIL, query="x > 1", labels=(), annotations=(), duration=0.0,
                      keep_firing_for=0.0, alerts=(alert,), health="err", last_error=EVIL, evaluation_time=0.001,
                      last_evaluation=NOW)
    return Summary(
        now=NOW, hostname=EVIL, silences=silences,
        alerts=(ActiveAlert(name="DiskFull", group="g", alert=alert, ticket=ticket,
                            silenced=f"silence {EVIL}" if silences else None, chart=chart),),
        checks=(CheckRow(name=EVIL, type="http", ok=False, status=2, message=EVIL),),
        incidents=(IncidentRow(incident_id=7, rule="DiskFull", title=EVIL, severity="critical", status="open",
                               opened_at=NOW - 290, resolved_at=None, ticket=ticket),
                   IncidentRow(incident_id=6, rule="DiskFull", title="old", severity="warning", status="resolved",
                               opened_at=NOW - 7200, resolved_at=NOW - 3600, ticket=None)),
        health=Health(version="0.2.0", started_at=NOW - 3600, last_reload_ok=False, last_reload_at=NOW - 60,
                      collectors=(CollectorRow(EVIL, False, 0.01, 3, EVIL),),
                      outbox=(OutboxRow(EVIL, 2, 30.0, 1),), store_series=12),
        groups=(GroupStatus(name=EVIL, file="f", interval=10.0, limit=0, rules=(rule,), evaluation_time=0.0,
                            last_evaluation=NOW),))


def test_status_page_escapes_every_untrusted_text() -> None:
    page = render(summary())
    assert "<script" not in page and "<img" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8  # shown as text in every section
    assert {t for t, _a in tags(page)} <= {"html", "head", "meta", "title", "style", "body", "a", "header", "h1",
                                          "span", "nav", "ul", "li", "main", "h2", "div", "table", "thead", "tr",
                                          "th", "tbody", "td", "br", "code", "section", "h3", "p", "svg", "rect",
                                          "line", "text", "polyline", "circle", "time", "caption", "details",
                                          "summary", "footer"}


def test_status_page_sections_charts_and_ticket_link() -> None:
    page = render(summary())
    for anchor in ('id="alerts"', 'id="charts"', 'id="checks"', 'id="incidents"', 'id="health"', 'id="rules"'):
        assert anchor in page
    links = [a.get("href") for t, a in tags(page) if t == "a"]
    assert "/tickets/local/7" in links and "#chart-abcdef0123456789" in links
    assert page.count('class="chart"') == 1 and "stroke-dasharray" in page
    assert page.count("<polyline") == 1 and page.count("<circle") == 1  # the NaN splits the line; a lone point
    assert "FAILED" in page  # last reload failed
    assert ">Silenced<" not in page


def test_status_page_silenced_column_when_the_agent_has_silences() -> None:
    page = render(summary(silences=True))
    assert "<th scope=col>Silenced</th>" in page
    assert '<td data-label="Silenced">silence &quot;&gt;&lt;script&gt;' in page


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "//evil.example/x", "vbscript:x",
                                 " javascript:alert(1)"])
def test_ticket_links_only_http_or_agent_relative(url: str) -> None:
    assert safe_url(url) is None
    page = render(summary(ticket_url=url))
    assert all(not (a.get("href") or "").strip().lower().startswith(("javascript", "data", "//", "vbscript"))
               for t, a in tags(page) if t == "a")


def test_safe_url_keeps_http_https_and_relative() -> None:
    assert safe_url("https://jira.example.com/browse/OPS-1") == "https://jira.example.com/browse/OPS-1"
    assert safe_url("/tickets/local/3") == "/tickets/local/3"


def test_line_chart_escapes_titles_and_scales_points() -> None:
    svg = line_chart([ChartSeries((("k", EVIL),), ((0.0, 1.0), (10.0, 2.0)))], [ThresholdLine(EVIL, 1.5)],
                     start=0.0, end=10.0, title=EVIL)
    assert "<script" not in svg and EVIL not in svg
    assert [t for t, _a in tags(svg)].count("polyline") == 1
    points = next(a for t, a in tags(svg) if t == "polyline")["points"]
    assert points is not None and points.split()[0].startswith("48.0,") and points.split()[-1].startswith("392.0,")


def test_line_chart_without_samples_says_so() -> None:
    assert "no samples in the store" in line_chart([], [], start=0.0, end=1.0)


def test_timeline_one_bar_per_incident_open_ones_reach_now() -> None:
    inc = summary().incidents
    svg = timeline_svg(inc, now=NOW, window=86400.0)
    rects = [a for t, a in tags(svg) if t == "rect"]
    assert len(rects) == 2
    assert float(rects[0]["x"] or 0) + float(rects[0]["width"] or 0) == pytest.approx(1000.0, abs=0.2)


def test_summary_json_round_trips_and_terminal_render_strips_control_characters() -> None:
    data = json.loads(json.dumps(summary_json(summary())))
    data["alerts"][0]["labels"]["mount"] = "\x1b]0;pwned\x07\x1b[2J/data"
    lines = render_text(data, base_url="http://127.0.0.1:19842")
    text = "\n".join(lines)
    assert "\x1b" not in text and "\x07" not in text
    assert "?]0;pwned??[2J/data" in text
    assert "http://127.0.0.1:19842/tickets/local/7" in text
    assert "last reload FAILED" in lines[0]
    assert clean("a\u202eb\nc") == "a?b?c"


def test_runbooks_installed_with_the_package_and_found_case_insensitively() -> None:
    intro, books = runbooks.load()
    assert "Runbooks" in intro and len(books) >= 10
    assert runbooks.find("hosthighcpuusage") is not None
    page = runbooks.runbook_page("HostHighCpuUsage")
    assert page is not None and "<ol><li>" in page and "<code>top -o %CPU</code>" in page
    assert runbooks.runbook_page("NoSuchAlert") is None


def test_runbook_markdown_is_escaped() -> None:
    html_text = runbooks.markdown_html(f"1. run `{EVIL}`\n   continued {EVIL}\n\n{EVIL}\n")
    assert "<script" not in html_text and "<img" not in html_text
    assert html_text.startswith("<ol><li>run <code>")


def test_relative_runbook_url_resolved_against_base_absolute_kept() -> None:
    base = "http://web-01:19842/runbooks/"
    assert resolve_url("HostHighCpuUsage", base) == "http://web-01:19842/runbooks/HostHighCpuUsage"
    assert resolve_url("https://wiki.example.com/x", base) == "https://wiki.example.com/x"
    assert resolve_url("HostHighCpuUsage", "") == "HostHighCpuUsage"
    alert = Alert(rule="A", group="g", labels=(), identity=(), state=AlertState.FIRING, severity="warning",
                  value=1.0, active_since=0.0, annotations=(("summary", "s"), ("runbook_url", "disk/full")))
    resolved = resolve_alert(alert, "https://wiki.example.com/runbooks/")
    assert resolved.annotation("runbook_url") == "https://wiki.example.com/runbooks/disk/full"
    assert resolved.annotation("summary") == "s"


class _View:
    store = None

    def summary(self, *, charts: bool = True) -> Summary:
        return summary()

    def local_ticket(self, backend: str, ticket_id: int) -> dict | None:
        return {"id": ticket_id, "title": EVIL, "status": "new", "diagnosis": EVIL,
                "events": [{"at": NOW, "kind": "opened", "text": EVIL, "author": "hostwarden"}],
                "labels": {"k": EVIL}} if backend == "local" else None


@pytest.mark.parametrize(("path", "code", "ctype"), [
    ("/", 200, "text/html"), ("/alerts", 302, "text/html"), ("/runbooks/", 200, "text/html"),
    ("/runbooks/HostHighLoad", 200, "text/html"), ("/runbooks/nope", 404, "text/html"),
    ("/docs/runbooks.md", 200, "text/html"),
    ("/tickets/local/3", 200, "text/html"), ("/tickets/jira/3", 404, "text/html"),
    ("/tickets/local/x", 404, "text/html"),
    ("/favicon.ico", 200, "image/svg+xml"), ("/api/hostwarden/v1/status", 200, "application/json"),
])
def test_webapp_routes(path: str, code: int, ctype: str) -> None:
    app = WebApp(_View())  # type: ignore[arg-type]
    try:
        resp = app.handle("GET", path)
        assert resp is not None and resp.code == code and resp.content_type.startswith(ctype)
        if ctype == "text/html" and code == 200:
            assert "script-src" not in resp.headers["Content-Security-Policy"]
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
            assert "<script" not in resp.body.decode()
        assert app.handle("GET", "/nothing") is None
    finally:
        app.close()


def test_status_page_of_an_idle_agent() -> None:
    s = summary()
    idle = Summary(now=NOW, hostname="web-01", alerts=(), checks=(), incidents=(),
                   health=Health(version="0.2.0", started_at=NOW - 5, last_reload_ok=True, last_reload_at=NOW - 5,
                                 collectors=(), outbox=(), store_series=0), groups=())
    page = render(idle)
    assert "Nothing is firing or pending." in page and "No checks configured." in page and "No incidents." in page
    assert 'id="charts"' not in page and "<svg" not in page
    assert render(s).count("<svg") == 2  # one chart, the timeline
