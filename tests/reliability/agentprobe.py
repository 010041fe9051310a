"""Reading a real agent's /metrics during fault injection: parse the text exposition, scrape in a loop."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_exposition(text: str) -> Series:
    out: Series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, tuple(sorted(labels.items()))))


def named(series: Series, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {lab: v for (n, lab), v in series.items() if n == name}


@dataclass
class Scrape:
    at: float  # time.monotonic() when the scrape started
    status: int  # HTTP status, 0 for a connection error or timeout
    seconds: float
    series: Series = field(default_factory=dict)


class Scraper:
    """Scrapes `url` every `interval` seconds on a thread until stopped (bounded by `max_scrapes`)."""

    def __init__(self, url: str, interval: float = 0.2, timeout: float = 5.0, max_scrapes: int = 100_000) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.max_scrapes = max_scrapes
        self.scrapes: list[Scrape] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.scrapes) < self.max_scrapes:
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
                    text = resp.read().decode()
                    self.scrapes.append(Scrape(start, resp.status, time.monotonic() - start, parse_exposition(text)))
            except urllib.error.HTTPError as e:
                self.scrapes.append(Scrape(start, e.code, time.monotonic() - start))
            except OSError:
                self.scrapes.append(Scrape(start, 0, time.monotonic() - start))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - start)))

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> list[Scrape]:
        self._stop.set()
        self._thread.join(self.timeout + 5)
        return self.scrapes


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def record(row: str, **figures: object) -> None:
    """Append the figures a test measured to $HOSTWARDEN_RELIABILITY_REPORT (JSON lines), for docs/reliability.md."""
    import json
    import os

    path = os.environ.get("HOSTWARDEN_RELIABILITY_REPORT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"row": row, **figures}, sort_keys=True, default=str) + "\n")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (from /proc/<pid>/stat)."""
    import os
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
