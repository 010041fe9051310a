"""`hostwarden report --format html`: one self-contained HTML file (inline CSS, inline SVG charts, no scripts, no
external assets) fit to attach to a monthly service review. Every text from the state database (rule names,
check names, comments) is escaped: label values are untrusted."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from hostwarden.agent.core.units import human_duration

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:24px 32px;color:#1f2933;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d9e2ec;
padding-bottom:4px}
.sub{color:#52606d;font-size:13px}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.tile{border:1px solid #d9e2ec;border-radius:6px;padding:10px 14px;min-width:130px}
.tile .v{font-size:22px;font-weight:600}.tile .k{font-size:12px;color:#52606d}
.tile.bad .v{color:#c62828}
table{border-collapse:collapse;font-size:13px;margin-top:6px}
th,td{padding:4px 10px;border-bottom:1px solid #eef2f6;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f5f7fa;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.chart{border:1px solid #d9e2ec;border-radius:6px;padding:8px}
.chart h3{font-size:13px;margin:0 0 4px;color:#323f4b}
svg text{font-family:inherit;font-size:11px;fill:#323f4b}
.empty{color:#7b8794;font-style:italic}
"""
PALETTE = {"P1": "#c62828", "P2": "#ef6c00", "P3": "#f9a825", "P4": "#607d8b"}
BAR = "#3d7fd9"
BAR2 = "#9fc2f0"


def _d(seconds: float | None) -> str:
    return human_duration(seconds) if seconds is not None else "–"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def bar_chart(items: list[tuple[str, float, str]], *, title: str, unit: str = "", width: int = 460,
              fmt: Any = None) -> str:
    """Horizontal bars: (label, value, colour). Values are drawn relative to the largest one."""
    if not items:
        return f'<div class="chart"><h3>{_e(title)}</h3><p class="empty">nothing in this period</p></div>'
    fmt = fmt or (lambda v: f"{v:g}{unit}")
    row, label_w, value_w = 22, 170, 70
    height = row * len(items) + 8
    top = max((v for _, v, _ in items), default=0.0) or 1.0
    span = width - label_w - value_w
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(title)}">']
    for i, (label, value, colour) in enumerate(items):
        y = 4 + i * row
        w = max(1.0, span * value / top) if value > 0 else 0.0
        shown = label if len(label) <= 26 else label[:25] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_e(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="2" fill="{colour}">'
                     f'<title>{_e(label)}: {_e(fmt(value))}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 14}">{_e(fmt(value))}</text>')
    parts.append("</svg>")
    return f'<div class="chart"><h3>{_e(title)}</h3>{"".join(parts)}</div>'


def grouped_chart(groups: list[tuple[str, float | None, float | None]], *, title: str, legend: tuple[str, str],
                  width: int = 460) -> str:
    """Pairs of vertical bars per group (e.g. median and p90 per priority), durations in seconds."""
    vals = [v for _, a, b in groups for v in (a, b) if v is not None]
    if not vals:
        return f'<div class="chart"><h3>{_e(title)}</h3><p class="empty">nothing in this period</p></div>'
    height, base, left = 200, 160, 10
    top = max(vals) or 1.0
    slot = (width - left - 10) / max(len(groups), 1)
    bw = min(44.0, slot / 3)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" role="img" '
             f'aria-label="{_e(title)}">',
             f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#9aa5b1"/>']
    for i, (label, a, b) in enumerate(groups):
        x0 = left + i * slot + slot / 2 - bw
        for j, (v, colour) in enumerate(((a, BAR), (b, BAR2))):
            if v is None:
                continue
            h = max(1.0, (base - 20) * v / top)
            x = x0 + j * bw
            parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{_e(label)} {legend[j]}: {_e(_d(v))}</title></rect>')
            parts.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{base - h - 3:.1f}" text-anchor="middle">'
                         f'{_e(_d(v))}</text>')
        parts.append(f'<text x="{x0 + bw:.1f}" y="{base + 14}" text-anchor="middle">{_e(label)}</text>')
    ly = height + 10
    parts.append(f'<rect x="{left}" y="{ly - 9}" width="10" height="10" fill="{BAR}"/>'
                 f'<text x="{left + 14}" y="{ly}">{_e(legend[0])}</text>'
                 f'<rect x="{left + 80}" y="{ly - 9}" width="10" height="10" fill="{BAR2}"/>'
                 f'<text x="{left + 94}" y="{ly}">{_e(legend[1])}</text>')
    parts.append("</svg>")
    return f'<div class="chart"><h3>{_e(title)}</h3>{"".join(parts)}</div>'


def _table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="empty">nothing in this period</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _group_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [[k, str(g["count"]), str(g["open"]), _d(g["mtta_median_seconds"]), _d(g["mtta_p90_seconds"]),
             _d(g["mttr_median_seconds"]), _d(g["mttr_p90_seconds"])] for k, g in groups.items()]


GROUP_HEADERS = ["", "incidents", "open", "MTTA median", "MTTA p90", "MTTR median", "MTTR p90"]


def render_html(rep: dict[str, Any], *, host: str = "") -> str:
    fmt_t = "%Y-%m-%d %H:%M UTC"
    period = (f"{time.strftime(fmt_t, time.gmtime(rep['since']))} → "
              f"{time.strftime(fmt_t, time.gmtime(rep['until']))}")
    inc, sla, sup = rep["incidents"], rep["sla_breaches"], rep["suppression"]
    breaches = sla["acknowledge"] + sla["resolve"]
    tiles = [("Incidents", str(inc["count"]), False), ("Open", str(inc["open"]), inc["open"] > 0),
             ("MTTA median", _d(inc["mtta_median_seconds"]), False),
             ("MTTR median", _d(inc["mttr_median_seconds"]), False),
             ("MTTR p90", _d(inc["mttr_p90_seconds"]), False),
             ("SLA breaches", str(breaches), breaches > 0),
             ("Silenced", _d(sup["silenced_seconds"]), False),
             ("Maintenance", _d(sup["maintenance_seconds"]), False)]
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
           "img-src data:\">",
           f"<title>hostwarden service report {_e(host)}</title><style>{CSS}</style></head><body>",
           f"<h1>Service report{' — ' + _e(host) if host else ''}</h1><div class=\"sub\">{_e(period)}</div>",
           '<div class="tiles">']
    out += [f'<div class="tile{" bad" if bad else ""}"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>'
            for k, v, bad in tiles]
    out.append("</div>")

    by_rule = sorted(rep["by_rule"].items(), key=lambda kv: (-kv[1]["count"], kv[0]))[:15]
    prio = rep["by_priority"]
    avail = rep["availability"]
    out.append("<h2>Incidents</h2><div class=\"charts\">")
    out.append(bar_chart([(k, float(g["count"]), BAR) for k, g in by_rule], title="Incidents by rule"))
    out.append(bar_chart([(k, float(g["count"]), PALETTE.get(k, BAR)) for k, g in prio.items()],
                         title="Incidents by priority"))
    out.append(bar_chart([(k, float(g["count"]), BAR) for k, g in rep["by_category"].items()],
                         title="Incidents by category"))
    out.append(grouped_chart([(k, g["mttr_median_seconds"], g["mttr_p90_seconds"]) for k, g in prio.items()],
                             title="MTTR by priority", legend=("median", "p90")))
    out.append("</div>")
    for key, title in (("by_rule", "By rule"), ("by_category", "By category"), ("by_priority", "By priority"),
                       ("by_backend", "By backend")):
        out.append(f"<h2>{title}</h2>" + _table([title.split()[-1], *GROUP_HEADERS[1:]], _group_rows(rep[key])))

    out.append("<h2>SLA breaches</h2>")
    out.append(_table(["priority", "incidents", "acknowledged late", "resolved late"],
                      [[p, str(b["occurrences"]), str(b["acknowledge"]), str(b["resolve"])]
                       for p, b in rep["sla_breaches_by_priority"].items()]))

    out.append("<h2>Availability</h2><div class=\"charts\">")
    out.append(bar_chart([(k, a["availability_ratio"] * 100, "#2e7d32" if a["availability_ratio"] >= 0.999
                           else ("#f9a825" if a["availability_ratio"] >= 0.99 else "#c62828"))
                          for k, a in avail.items()], title="Availability per check",
                         fmt=lambda v: f"{v:.3f}%"))
    out.append("</div>")
    out.append(_table(["check", "availability", "down", "incidents", "from"],
                      [[k, f"{a['availability_ratio'] * 100:.3f}%", _d(a["down_seconds"]), str(a["incidents"]),
                        a["source"]] for k, a in avail.items()]))

    noisy = rep["noisiest_rules"]
    out.append("<h2>Noisiest rules (tuning candidates)</h2><div class=\"charts\">")
    out.append(bar_chart([(r["rule"], float(r["occurrences"]), BAR) for r in noisy], title="Occurrences"))
    out.append(bar_chart([(r["rule"], float(r["flapping"]), "#8e24aa") for r in noisy if r["flapping"]],
                         title="Flapping episodes"))
    out.append("</div>")
    out.append(_table(["rule", "occurrences", "incidents", "flapping"],
                      [[r["rule"], str(r["occurrences"]), str(r["incidents"]), str(r["flapping"])] for r in noisy]))

    out.append("<h2>Silences and maintenance</h2>")
    out.append(f"<p>Silenced {_e(_d(sup['silenced_seconds']))} by {sup['silences']} silence(s); maintenance "
               f"windows {_e(_d(sup['maintenance_seconds']))}; {inc['silenced']} incident(s) silenced, "
               f"{inc['silenced_without_ticket']} of them fired and cleared without a ticket.</p>")
    out.append(_table(["silence", "matchers", "from", "to", "by", "comment"],
                      [[s["id"], " ".join(s["matchers"]), time.strftime(fmt_t, time.gmtime(s["starts_at"])),
                        time.strftime(fmt_t, time.gmtime(s["ends_at"])), s["created_by"], s["comment"]]
                       for s in sup["silence_list"]]))
    if sup["maintenance_windows"]:
        out.append(_table(["maintenance window", "active"],
                          [[k, _d(v)] for k, v in sup["maintenance_windows"].items()]))
    out.append(f'<p class="sub">Generated by hostwarden at {_e(time.strftime(fmt_t, time.gmtime(rep["until"])))}'
               f".</p></body></html>\n")
    return "\n".join(out)
