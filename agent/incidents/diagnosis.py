"""The context a ticket carries when it opens, so the on-call needs no login to start.

What fired, where, since when, value vs threshold, the last 10 minutes of the series (from the agent's
own store), and depending on the alert:
- CPU / memory rules: the top 5 processes by CPU and by memory (psutil);
- filesystem rules (a `mountpoint` label): the largest directories and files under the mount, from a
  scan that stays on that file system and stops at its time budget (and says it stopped);
- systemd units (a `name`/`unit` label naming a unit): `journalctl -u UNIT -n 20 --no-pager`;
- checks (a `check` label): the check's last status, output and error;
- the rule's runbook link.

Bounded: the whole diagnosis takes at most `time_budget` seconds (sections that no longer fit are
named as skipped) and `max_bytes` bytes. Process and directory results are cached briefly, so a burst
of incidents does not rescan the machine for each. Output is plain text; backends escape it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psutil
from hostwarden.agent.core.alert import Alert
from hostwarden.agent.core.store import SeriesStore, is_stale
from hostwarden.agent.core.units import human_duration

SERIES_WINDOW = 600.0
MAX_SERIES = 3
MAX_POINTS = 20
TOP_N = 5
PROCESS_CACHE_SECONDS = 10.0
SCAN_CACHE_SECONDS = 60.0
JOURNAL_LINES = 20
MAX_SECTION_BYTES = 4096
STATUS_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_UNIT = re.compile(r"^[\w@:.\\-]+\.(service|socket|timer|mount|path|target|scope|slice|swap|automount|device)$")
_CPU = re.compile(r"cpu|load|pressure_cpu", re.IGNORECASE)
_MEMORY = re.compile(r"mem|swap|oom", re.IGNORECASE)


def clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts is not None else "-"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Diagnoser:
    def __init__(self, store: SeriesStore, *, check_results: Callable[[], dict[str, object]] | None = None,
                 time_budget: float = 2.0, max_bytes: int = 16384, journalctl: str = "journalctl",
                 process_sample_seconds: float = 0.25) -> None:
        self.store = store
        self.check_results = check_results
        self.time_budget = time_budget
        self.max_bytes = max_bytes
        self.journalctl = journalctl
        self.process_sample_seconds = process_sample_seconds
        self._proc_cache: tuple[float, str] | None = None
        self._scan_cache: dict[str, tuple[float, str]] = {}

    def __call__(self, alert: Alert, now: float) -> str:
        deadline = time.monotonic() + self.time_budget
        sections: list[tuple[str, str]] = [("Summary", self._summary(alert, now))]
        optional: list[tuple[str, Callable[[float], str]]] = [("Last 10 minutes", lambda d: self._series(alert, now))]
        if self._is_cpu(alert) or self._is_memory(alert):
            optional.append(("Top processes", self._processes))
        mount = alert.label("mountpoint")
        if mount:
            optional.append((f"Largest under {mount}", lambda d: self._largest(mount, d)))
        unit = self._unit(alert)
        if unit:
            optional.append((f"Journal of {unit}", lambda d: self._journal(unit, d)))
        check = alert.label("check")
        if check and self.check_results is not None:
            optional.append((f"Check {check}", lambda d: self._check(check)))
        skipped = []
        for title, fn in optional:
            if time.monotonic() >= deadline:
                skipped.append(title)
                continue
            try:
                text = fn(deadline)
            except Exception as e:  # one section failing must not cost the others
                text = f"(unavailable: {type(e).__name__}: {e})"
            if text:
                sections.append((title, _cap(clean(text), MAX_SECTION_BYTES)))
        runbook = alert.annotation("runbook_url") or alert.annotation("runbook")
        if runbook:
            sections.append(("Runbook", clean(runbook)))
        if skipped:
            sections.append(("Skipped", f"time budget of {self.time_budget:g}s used up before: {', '.join(skipped)}"))
        return _cap("\n\n".join(f"{t}\n{'-' * len(t)}\n{body.rstrip()}" for t, body in sections) + "\n",
                    self.max_bytes)

    # -- sections ---------------------------------------------------------------------------------------
    def _summary(self, alert: Alert, now: float) -> str:
        lines = [f"What:     {alert.rule} ({alert.severity})"]
        summary = alert.annotation("summary")
        if summary:
            lines.append(f"Summary:  {' '.join(summary.split())}")
        host = alert.label("host") or dict(alert.identity).get("host", "-")
        where = " ".join(f"{k}={v}" for k, v in alert.labels if k not in ("alertname", "severity", "host"))
        lines.append(f"Where:    {host}" + (f"  {where}" if where else ""))
        since = alert.fired_at if alert.fired_at is not None else alert.active_since
        lines.append(f"Since:    {fmt_time(alert.active_since)} (condition true for "
                     f"{human_duration(max(0.0, now - alert.active_since))}; firing since {fmt_time(since)})")
        value = f"{alert.value:.6g}"
        lines.append(f"Value:    {value}" + (f"  (threshold {alert.threshold})" if alert.threshold else ""))
        if alert.expr:
            lines.append(f"Expr:     {' '.join(alert.expr.split())}")
        if alert.source:
            lines.append(f"Rule:     {alert.source}")
        description = alert.annotation("description")
        if description:
            lines.append("")
            lines.append(description.strip())
        return "\n".join(lines)

    def _series(self, alert: Alert, now: float) -> str:
        labels = dict(alert.labels)
        known = set(self.store.names())
        names = [n for n in dict.fromkeys(_IDENT.findall(alert.expr)) if n in known][:MAX_SERIES]
        out: list[str] = []
        shown = 0
        with self.store.lock:
            for name in names:
                candidates = [s for s in self.store.series(name)
                              if all(labels.get(k, v) == v for k, v in s.labels)]
                candidates.sort(key=lambda s: -sum(1 for k, _ in s.labels if k in labels))
                for s in candidates:
                    if shown >= MAX_SERIES:
                        break
                    ts, vals = s.window(now - SERIES_WINDOW, now)
                    points = [(t, v) for t, v in zip(ts, vals, strict=True) if not (v != v and is_stale(v))]
                    if not points:
                        continue
                    if len(points) > MAX_POINTS:
                        step = len(points) / MAX_POINTS
                        points = [points[int(i * step)] for i in range(MAX_POINTS - 1)] + [points[-1]]
                    sel = ",".join(f'{k}="{v}"' for k, v in s.labels)
                    out.append(f"{name}{{{sel}}}")
                    out.extend(f"  {fmt_time(t)}  {v:.6g}" for t, v in points)
                    shown += 1
        return "\n".join(out) if out else "(no samples of the rule's metrics in the store)"

    def _is_cpu(self, alert: Alert) -> bool:
        return bool(_CPU.search(f"{alert.rule} {alert.expr}"))

    def _is_memory(self, alert: Alert) -> bool:
        return bool(_MEMORY.search(f"{alert.rule} {alert.expr}"))

    def _processes(self, deadline: float) -> str:
        mono = time.monotonic()
        if self._proc_cache is not None and mono - self._proc_cache[0] < PROCESS_CACHE_SECONDS:
            return self._proc_cache[1]
        procs = list(psutil.process_iter(["pid", "name", "username"]))
        for p in procs:
            try:
                p.cpu_percent(None)
            except (psutil.Error, OSError):
                pass
        time.sleep(max(0.0, min(self.process_sample_seconds, (deadline - time.monotonic()) / 3)))
        rows = []
        for p in procs:
            try:
                with p.oneshot():
                    cpu = p.cpu_percent(None)
                    rss = p.memory_info().rss
                    cmd = " ".join(" ".join(p.cmdline()).split()) or f"[{p.info.get('name') or '?'}]"  # one line
            except (psutil.Error, OSError):
                continue
            rows.append((p.info["pid"], p.info.get("username") or "?", cpu, rss, cmd))
        header = f"{'PID':>7}  {'USER':<12} {'CPU%':>6} {'RSS':>10}  COMMAND"

        def table(sorted_rows: list[tuple[Any, ...]]) -> str:
            return "\n".join([header] + [f"{pid:>7}  {str(user)[:12]:<12} {cpu:>6.1f} {fmt_bytes(rss):>10}  "
                                         f"{cmd[:160]}" for pid, user, cpu, rss, cmd in sorted_rows[:TOP_N]])

        text = ("By CPU:\n" + table(sorted(rows, key=lambda r: -r[2])) + "\n\nBy memory:\n" +
                table(sorted(rows, key=lambda r: -r[3])))
        self._proc_cache = (time.monotonic(), text)
        return text

    def _largest(self, mount: str, deadline: float) -> str:
        mono = time.monotonic()
        cached = self._scan_cache.get(mount)
        if cached is not None and mono - cached[0] < SCAN_CACHE_SECONDS:
            return cached[1]
        text = scan_largest(mount, deadline=min(deadline, mono + self.time_budget * 0.75))
        self._scan_cache[mount] = (time.monotonic(), text)
        return text

    def _unit(self, alert: Alert) -> str:
        for key in ("unit", "name"):
            v = alert.label(key)
            if v and _UNIT.match(v):
                return v
        return ""

    def _journal(self, unit: str, deadline: float) -> str:
        exe = shutil.which(self.journalctl)
        if exe is None:
            return "(journalctl is not installed)"
        timeout = max(0.1, deadline - time.monotonic())
        try:
            res = subprocess.run([exe, "-u", unit, "-n", str(JOURNAL_LINES), "--no-pager", "-o", "short-iso"],
                                 capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                 env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SYSTEMD_COLORS": "0",
                                      "LC_ALL": "C.UTF-8"})
        except subprocess.TimeoutExpired:
            return f"(journalctl did not answer within {timeout:.1f}s)"
        out = res.stdout.decode("utf-8", "replace").strip()
        if res.returncode != 0 and not out:
            return f"(journalctl exited {res.returncode}: {res.stderr.decode('utf-8', 'replace').strip()[:300]})"
        return out or "(no journal entries)"

    def _check(self, name: str) -> str:
        assert self.check_results is not None
        result = self.check_results().get(name)
        if result is None:
            return "(no result of this check yet)"
        status = getattr(result, "status", None)
        lines = [f"Status:  {STATUS_NAMES.get(int(status), status) if status is not None else '?'}"
                 f" ({'ok' if getattr(result, 'ok', False) else 'failing'})"]
        message = str(getattr(result, "message", "") or "")
        if message:
            lines.append(f"Output:  {message}")
        details = str(getattr(result, "details", "") or "")
        if details:
            lines.append("")
            lines.append(details)
        return "\n".join(lines)


def scan_largest(mount: str, *, deadline: float, top: int = TOP_N) -> str:
    """Largest directories (depth ≤ 2 below the mount) and files under `mount`, staying on its file system;
    stops at `deadline` (monotonic) and says so."""
    try:
        root_dev = os.lstat(mount).st_dev
    except OSError as e:
        return f"(cannot scan {mount}: {e.strerror or e})"
    dir_sizes: dict[str, int] = {}
    files: list[tuple[int, str]] = []
    stack = [(mount, ())]  # (path, first-two components below the mount)
    scanned = 0
    complete = True
    start = time.monotonic()
    while stack:
        if time.monotonic() >= deadline:
            complete = False
            break
        path, parts = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue
        with it:
            for entry in it:
                scanned += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != root_dev:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    sub = (*parts, entry.name) if len(parts) < 2 else parts
                    stack.append((entry.path, sub))
                    continue
                size = st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
                for depth in (1, 2):
                    if len(parts) >= depth:
                        key = os.path.join(mount, *parts[:depth])
                        dir_sizes[key] = dir_sizes.get(key, 0) + size
                if len(files) < 4 * top or size > files[-1][0]:
                    files.append((size, entry.path))
                    files.sort(reverse=True)
                    del files[4 * top:]
    took = time.monotonic() - start
    lines = ["Directories:"]
    lines += [f"  {fmt_bytes(size):>10}  {path}" for path, size in
              sorted(dir_sizes.items(), key=lambda kv: -kv[1])[:top]] or ["  (none)"]
    lines.append("Files:")
    lines += [f"  {fmt_bytes(size):>10}  {path}" for size, path in files[:top]] or ["  (none)"]
    note = (f"(complete scan of {scanned} entries in {took:.1f}s)" if complete else
            f"(partial: the scan stopped at its time budget after {scanned} entries in {took:.1f}s; "
            f"sizes are lower bounds)")
    lines.append(note)
    return "\n".join(lines)


def _cap(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    note = f"\n(truncated: {len(data) - max_bytes} more bytes)\n"
    keep = max(0, max_bytes - len(note.encode()))
    return data[:keep].decode("utf-8", "ignore") + note
