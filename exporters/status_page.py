"""The agent's `/` page: what fires, its ticket and chart, checks, the last day's incidents, agent health.

One HTML document with its CSS inline and no script: no build step, no external asset (air-gapped
hosts), readable at phone width (tables scroll sideways, charts scale) and usable by keyboard (a skip
link, native links and <details>, a visible focus ring). Every label, annotation, check message and
ticket title is untrusted text and goes through `html.escape`; links are only emitted for http(s)
or agent-relative URLs. The page is served with a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import time
from html import escape
from urllib.parse import quote, urlsplit

from hostwarden.exporters.statusmodel import ActiveAlert, IncidentRow, Summary, TicketLink
from hostwarden.exporters.svgchart import fmt_value, legend, line_chart

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"

CSS = """
:root{--bg:#fff;--fg:#1b1f24;--muted:#5b636e;--line:#d7dbe0;--card:#f6f7f9;--firing:#b3261e;--pending:#9a6700;
--ok:#1a7f37;--c0:#0969da;--c1:#8250df;--c2:#1a7f37;--c3:#bc4c00;--c4:#57606a;--warn:#d4a72c;--crit:#cf222e}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;--card:#161b22;
--firing:#ff7b72;--pending:#d29922;--ok:#3fb950;--c0:#58a6ff;--c1:#bc8cff;--c2:#3fb950;--c3:#f0883e;--c4:#8b949e}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg)}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 12px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 16px;border-bottom:1px solid var(--line)}
h1{font-size:1.3em;margin:12px 0 8px}h2{font-size:1.1em;margin:22px 0 8px}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:4px 12px;margin:0;padding:0}
a{color:var(--c0)}a:focus-visible,summary:focus-visible{outline:3px solid var(--c0);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px 8px;z-index:1}
.muted{color:var(--muted)}.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.93em}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;white-space:nowrap}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.state{font-weight:700;text-transform:uppercase;font-size:.82em;letter-spacing:.02em}
.firing,.CRITICAL,.err,.dead{color:var(--firing)}.pending,.WARNING,.UNKNOWN,.unknown{color:var(--pending)}
.OK,.ok,.resolved{color:var(--ok)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 10px;min-width:0}
.card h3{font-size:1em;margin:0 0 4px;overflow-wrap:anywhere}
svg.chart{width:100%;height:auto;display:block}
svg .plot{fill:none;stroke:var(--line)}svg .grid{stroke:var(--line);stroke-width:.5}
svg .tick{fill:var(--muted);font-size:12px}svg .series{stroke-width:1.6}svg .threshold{stroke-width:1.4}
.legend{list-style:none;margin:4px 0 0;padding:0;font-size:.85em;overflow-wrap:anywhere}
.swatch{display:inline-block;width:14px;height:3px;margin:0 6px 3px 0;vertical-align:middle}
.swatch.dashed{border-top:2px dashed;height:0}
svg.timeline{width:100%;height:auto;display:block}
svg .bar-firing{fill:var(--firing)}svg .bar-resolved{fill:var(--ok)}svg .bar-other{fill:var(--c4)}
code{overflow-wrap:anywhere}
.axis{display:flex;justify-content:space-between;font-size:.8em;color:var(--muted);margin-bottom:6px}
@media (max-width:640px){table.stack thead{position:absolute;left:-9999px}table.stack tr{display:block;
border-bottom:1px solid var(--line);padding:4px 0}table.stack td{display:block;border:0;padding:2px 4px}
table.stack td[data-label]::before{content:attr(data-label) ": ";color:var(--muted);font-weight:600}}
"""


def _time(ts: float | None) -> str:
    if not ts:
        return '<span class="muted">never</span>'
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    return f'<time datetime="{iso}">{time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))}</time>'


def ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 90:
        return f"{s}s"
    if s < 5400:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def safe_url(url: str) -> str | None:
    """`url` when it is http(s) or agent-relative (no javascript:, data: ...), else None."""
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return url
    if not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//"):
        return url
    return None


def ticket_html(t: TicketLink | None) -> str:
    if t is None:
        return '<span class="muted">none yet</span>'
    text = escape(f"{t.backend} #{t.ticket_id}")
    url = safe_url(t.url)
    return f'<a href="{escape(url)}">{text}</a>' if url else text


def _labels_html(labels: tuple[tuple[str, str], ...], skip: tuple[str, ...] = ("alertname", "severity")) -> str:
    return " ".join(f"<code>{escape(k)}={escape(v)}</code>" for k, v in labels if k not in skip)


def _alerts_section(s: Summary) -> str:
    if not s.alerts:
        return '<h2 id="alerts">Alerts</h2><p class="ok">Nothing is firing or pending.</p>'
    head = ["State", "Alert", "Severity", "Since", "Value", "Threshold"]
    if s.silences:
        head.append("Silenced")
    head += ["Ticket", "Labels"]
    rows = []
    for a in s.alerts:
        al = a.alert
        cells = [f'<td data-label="State" class="state {escape(al.state)}">{escape(al.state)}</td>',
                 f'<td data-label="Alert"><a href="#chart-{escape(al.fingerprint)}">{escape(a.name)}</a>'
                 + (f'<br><span class="muted">{escape(a.summary)}</span>' if a.summary else "") + "</td>",
                 f'<td data-label="Severity">{escape(al.severity)}</td>',
                 f'<td data-label="Since" class="num">{_time(al.active_at)}<br><span class="muted">'
                 f"{ago(s.now - al.active_at)} ago</span></td>",
                 f'<td data-label="Value" class="num">{escape(fmt_value(al.value))}</td>',
                 f'<td data-label="Threshold" class="num">{escape(al.threshold) or "—"}</td>']
        if s.silences:
            text = "?" if a.silenced is None else a.silenced or "no"
            cells.append(f'<td data-label="Silenced">{escape(text)}</td>')
        cells += [f'<td data-label="Ticket">{ticket_html(a.ticket)}</td>',
                  f'<td data-label="Labels">{_labels_html(al.labels)}</td>']
        rows.append(f"<tr>{''.join(cells)}</tr>")
    firing = sum(1 for a in s.alerts if a.alert.state == "firing")
    pending = len(s.alerts) - firing
    return (f'<h2 id="alerts">Alerts <span class="muted">({firing} firing, {pending} pending)</span></h2>'
            f'<div class="scroll"><table class="stack"><thead><tr>{"".join(f"<th scope=col>{h}</th>" for h in head)}'
            "</tr></thead>"
            f'<tbody>{"".join(rows)}</tbody></table></div>' + _charts(s.alerts))


def _charts(alerts: tuple[ActiveAlert, ...]) -> str:
    cards = []
    for a in alerts:
        if a.chart is None:
            continue
        title = f"{a.name} — {a.alert.state}, value {fmt_value(a.alert.value)}"
        if a.alert.threshold:
            title += f" (threshold {a.alert.threshold})"
        svg = line_chart(a.chart.series, a.chart.thresholds, start=a.chart.start, end=a.chart.end, title=title)
        cards.append(f'<section class="card" id="chart-{escape(a.alert.fingerprint)}" aria-label="{escape(title)}">'
                     f'<h3><span class="state {escape(a.alert.state)}">{escape(a.alert.state)}</span> '
                     f'{escape(a.name)}</h3><p class="muted">{_labels_html(a.alert.labels)}</p>{svg}'
                     f"{legend(a.chart.series, a.chart.thresholds)}<p>Ticket: {ticket_html(a.ticket)}</p></section>")
    if not cards:
        return ""
    return f'<h2 id="charts">Charts <span class="muted">(up to the last 10 minutes)</span></h2><div class="cards">' \
           f'{"".join(cards)}</div>'


def _checks_section(s: Summary) -> str:
    if not s.checks:
        return '<h2 id="checks">Checks</h2><p class="muted">No checks configured.</p>'
    rows = "".join(f'<tr><td class="state {escape(c.state)}">{escape(c.state)}</td><td>{escape(c.name)}</td>'
                   f"<td>{escape(c.type)}</td><td>{escape(c.message)}</td></tr>" for c in s.checks)
    bad = sum(1 for c in s.checks if c.ok is False)
    return (f'<h2 id="checks">Checks <span class="muted">({len(s.checks) - bad} of {len(s.checks)} OK)</span></h2>'
            '<div class="scroll"><table><thead><tr><th scope=col>State</th><th scope=col>Check</th>'
            f"<th scope=col>Type</th><th scope=col>Output</th></tr></thead><tbody>{rows}</tbody></table></div>")


def timeline_svg(incidents: tuple[IncidentRow, ...], *, now: float, window: float) -> str:
    """One bar per incident over the window (open ones reach `now`); the time axis (every 6 h) is HTML below,
    so its text keeps its size at any width."""
    width, row_h = 1000, 12
    height = max(1, len(incidents)) * row_h + 4
    start = now - window

    def x(t: float) -> float:
        return (min(max(t, start), now) - start) / window * width

    parts = [f'<svg class="timeline" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
             f'style="height:{height}px" role="img" aria-label="Incidents of the last {ago(window)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>Incidents of the last {ago(window)}</title>']
    for i in range(1, 4):
        parts.append(f'<line x1="{x(start + window * i / 4):.1f}" x2="{x(start + window * i / 4):.1f}" y1="0" '
                     f'y2="{height}" class="grid"/>')
    for i, inc in enumerate(incidents):
        x0, x1 = x(inc.opened_at), x(inc.resolved_at if inc.resolved_at else now)
        cls = "bar-firing" if inc.status == "open" else "bar-resolved" if inc.status == "resolved" else "bar-other"
        label = f"#{inc.incident_id} {inc.title} ({inc.status})"
        parts.append(f'<rect x="{min(x0, width - 4):.1f}" y="{2 + i * row_h}" width="{max(4.0, x1 - x0):.1f}" '
                     f'height="{row_h - 3}" class="{cls}"><title>{escape(label)}</title></rect>')
    parts.append("</svg>")
    ticks = "".join(f"<span>{time.strftime('%H:%M', time.gmtime(start + window * i / 4))}</span>" for i in range(5))
    return "".join(parts) + f'<div class="axis" aria-hidden="true">{ticks}</div>'


def _incidents_section(s: Summary) -> str:
    title = f'<h2 id="incidents">Incidents <span class="muted">(last {ago(s.window)})</span></h2>'
    if not s.incidents:
        return title + '<p class="muted">No incidents.</p>'
    rows = "".join(
        f'<tr><td data-label="Id" class="num">#{i.incident_id}</td>'
        f'<td data-label="Status" class="state {escape(i.status)}">{escape(i.status)}</td>'
        f'<td data-label="Title">{escape(i.title)}</td><td data-label="Severity">{escape(i.severity)}</td>'
        f'<td data-label="Opened" class="num">{_time(i.opened_at)}</td>'
        f'<td data-label="Resolved" class="num">{_time(i.resolved_at) if i.resolved_at else "—"}</td>'
        f'<td data-label="Duration" class="num">{ago((i.resolved_at or s.now) - i.opened_at)}</td>'
        f'<td data-label="Ticket">{ticket_html(i.ticket)}</td></tr>'
        for i in reversed(s.incidents))
    return (title + timeline_svg(s.incidents, now=s.now, window=s.window)
            + '<div class="scroll"><table class="stack"><thead><tr><th scope=col>Id</th><th scope=col>Status</th>'
              "<th scope=col>Title</th><th scope=col>Severity</th><th scope=col>Opened</th><th scope=col>Resolved</th>"
              f"<th scope=col>Duration</th><th scope=col>Ticket</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _health_section(s: Summary) -> str:
    h = s.health
    reload_state = "ok" if h.last_reload_ok else "err"
    facts = (f"<p>hostwarden {escape(h.version)}, up {ago(s.now - h.started_at)} (since {_time(h.started_at)}). "
             f'Last configuration reload: <span class="{reload_state}">'
             f"{'successful' if h.last_reload_ok else 'FAILED, the previous configuration runs'}</span> "
             f"(last success {_time(h.last_reload_at)}). {h.store_series} series in the store."
             + (' <span class="err">The state database runs in memory (not durable).</span>' if h.state_degraded
                else "") + "</p>")
    col_rows = "".join(
        f"<tr><td class='state {'ok' if c.success else 'err'}'>{'ok' if c.success else 'failing'}</td>"
        f"<td>{escape(c.name)}</td><td class='num'>{c.duration * 1000:.1f} ms</td><td class='num'>{c.failures}</td>"
        f"<td>{escape(c.last_error)}</td></tr>" for c in h.collectors)
    out_rows = "".join(
        f"<tr><td>{escape(o.backend)}</td><td class='num'>{o.pending}</td><td class='num'>"
        f"{ago(o.oldest_age) if o.pending else '—'}</td><td class='num {'dead' if o.dead else ''}'>{o.dead}</td></tr>"
        for o in h.outbox)
    return ('<h2 id="health">Agent health</h2>' + facts
            + '<div class="scroll"><table><caption class="muted">Collectors</caption><thead><tr><th scope=col>State'
              "</th><th scope=col>Collector</th><th scope=col>Duration</th><th scope=col>Failures</th>"
              f"<th scope=col>Last error</th></tr></thead><tbody>{col_rows}</tbody></table></div>"
            + '<div class="scroll"><table><caption class="muted">Ticket outbox per backend</caption><thead><tr>'
              "<th scope=col>Backend</th><th scope=col>Pending</th><th scope=col>Oldest</th><th scope=col>Dead</th>"
              f"</tr></thead><tbody>{out_rows}</tbody></table></div>")


def _rules_section(s: Summary) -> str:
    rows = []
    for g in s.groups:
        for r in g.rules:
            rows.append(f"<tr><td>{escape(g.name)}</td><td>{escape(r.name)}</td><td>{escape(r.kind)}</td>"
                        f"<td class='state {escape(r.state if r.kind == 'alert' else r.health)}'>"
                        f"{escape(r.state if r.kind == 'alert' else '—')}</td>"
                        f"<td class='{escape(r.health)}'>{escape(r.health)}"
                        + (f"<br>{escape(r.last_error)}" if r.last_error else "")
                        + f"</td><td class='num'>{r.evaluation_time * 1000:.2f} ms</td></tr>")
    n = sum(len(g.rules) for g in s.groups)
    return (f'<h2 id="rules">Rules <span class="muted">({n} in {len(s.groups)} groups)</span></h2>'
            f'<details><summary>Show every rule</summary><div class="scroll"><table><thead><tr><th scope=col>Group'
            "</th><th scope=col>Rule</th><th scope=col>Type</th><th scope=col>State</th><th scope=col>Health</th>"
            f"<th scope=col>Evaluation</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div></details>")


def render(s: Summary, *, telemetry_path: str = "/metrics") -> str:
    firing = sum(1 for a in s.alerts if a.alert.state == "firing")
    title = f"{s.hostname} — {firing} firing — hostwarden"
    nav = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in (
        ("#alerts", "Alerts"), ("#checks", "Checks"), ("#incidents", "Incidents"), ("#health", "Health"),
        ("#rules", "Rules"), ("/runbooks/", "Runbooks"), (quote(telemetry_path), "Metrics"),
        ("/api/v1/alerts", "API")))
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
            f'initial-scale=1"><title>{escape(title)}</title><style>{CSS}</style></head><body>'
            '<a class="skip" href="#alerts">Skip to alerts</a>'
            f'<header><h1>{escape(s.hostname)}</h1><span class="muted">hostwarden {escape(s.health.version)} · '
            f'{_time(s.now)} UTC · <a href="/">refresh</a></span><nav aria-label="Sections"><ul>{nav}</ul></nav>'
            "</header><main>" + _alerts_section(s) + _checks_section(s) + _incidents_section(s) + _health_section(s)
            + _rules_section(s) + "</main><footer><p class='muted'>Times in UTC. JSON: "
            '<a href="/api/v1/rules">/api/v1/rules</a>, <a href="/api/hostwarden/v1/status">status</a>.</p>'
            "</footer></body></html>\n")
