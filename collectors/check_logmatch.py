"""`logmatch` check: follow a log file like `tail -F` and count lines matching named regexes.

The follower keeps the file open between runs and remembers (device, inode) and the read offset:
- rotation by rename (logrotate's default `create`): the old file is read to its end through the
  still-open descriptor, then the new file is opened and read from its beginning — no line written
  before the rotation is lost;
- truncation (`copytruncate`): the size drops below the offset, reading restarts at 0;
- partial lines: only complete lines are counted; an unterminated tail waits for its newline (or for
  the file to be rotated away, when it is counted as it is);
- the first run starts at the end of the file (only new lines count) unless `from_beginning: true`; a
  file that appears later (or after a rotation) is read from its beginning;
- at most `max_read_bytes` are read per run; the rest waits for the next run.
Counters are monotonic for the life of the agent (they restart at 0 with it, as any counter may).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from typing import BinaryIO

from hostwarden.agent.core.samples import MetricDef, metric_defs
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.checks import CheckConfig, CheckResult, register_check, resolve_path, sample

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass(frozen=True)
class LogmatchConfig(CheckConfig):
    path: str = ""
    patterns: dict[str, Regex] = field(default_factory=dict)
    from_beginning: bool = False
    max_read_bytes: int = 8 << 20
    max_line_bytes: int = 64 << 10  # longer lines are cut (the cut text is still matched, once)

    def validate(self) -> list[str]:
        problems = super().validate()
        if not self.path:
            problems.append("path is required")
        if not self.patterns:
            problems.append("patterns is required: a mapping of name to regex, e.g. {error: 'ERROR'}")
        if self.max_read_bytes < 1024 or self.max_line_bytes < 64:
            problems.append("max_read_bytes must be >= 1024 and max_line_bytes >= 64")
        return problems

    def with_base_dir(self, base_dir: str) -> LogmatchConfig:
        return dataclasses.replace(self, path=resolve_path(self.path, base_dir) or "")


@dataclass
class ReadResult:
    lines: list[bytes]
    bytes_read: int
    error: str | None = None
    events: list[str] = field(default_factory=list)  # "rotated", "truncated", "opened"
    backlog: bool = False  # stopped at the byte budget with more to read


class LogFollower:
    def __init__(self, path: str, *, from_beginning: bool = False, max_line_bytes: int = 64 << 10) -> None:
        self.path = path
        self.from_beginning = from_beginning
        self.max_line_bytes = max_line_bytes
        self._file: BinaryIO | None = None
        self._id: tuple[int, int] | None = None
        self._pos = 0
        self._partial = bytearray()
        self._skipping = False  # inside an over-long line, dropping bytes up to its newline
        self._first = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, budget: int) -> ReadResult:
        out = ReadResult([], 0)
        try:
            st = os.stat(self.path)
        except OSError as e:
            st = None
            if not isinstance(e, FileNotFoundError):
                out.error = f"cannot stat {self.path}: {e.strerror or e}"
        if self._file is not None:
            budget = self._drain(out, budget)
            current = (st.st_dev, st.st_ino) if st is not None else None
            if current != self._id and budget > 0:  # renamed or deleted, and read to its end
                self._flush_partial(out)
                self.close()
                out.events.append("rotated")
        if self._file is None and st is not None:
            try:
                self._file = open(self.path, "rb")  # noqa: SIM115 - kept open across runs on purpose
            except OSError as e:
                out.error = f"cannot open {self.path}: {e.strerror or e}"
            else:
                fst = os.fstat(self._file.fileno())
                self._id = (fst.st_dev, fst.st_ino)
                self._pos = fst.st_size if self._first and not self.from_beginning else 0
                self._file.seek(self._pos)
                self._partial.clear()
                self._skipping = False
                out.events.append("opened")
                budget = self._drain(out, budget)
        if self._file is None and out.error is None:
            out.error = f"{self.path} does not exist"
        self._first = False
        out.backlog = budget <= 0
        return out

    def _drain(self, out: ReadResult, budget: int) -> int:
        """Read complete lines from the open file up to `budget` bytes; return the budget left."""
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        if size < self._pos:
            self._pos = 0
            self._file.seek(0)
            self._partial.clear()
            self._skipping = False
            out.events.append("truncated")
        while budget > 0:
            chunk = self._file.read(min(CHUNK, budget))
            if not chunk:
                break
            budget -= len(chunk)
            self._pos += len(chunk)
            out.bytes_read += len(chunk)
            self._split(chunk, out.lines)
        return budget

    def _split(self, chunk: bytes, lines: list[bytes]) -> None:
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            piece = chunk[start:] if nl < 0 else chunk[start:nl]
            if self._skipping:
                if nl >= 0:
                    self._skipping = False
            else:
                self._partial += piece
                if nl >= 0:
                    lines.append(bytes(self._partial[: self.max_line_bytes]))
                    self._partial.clear()
                elif len(self._partial) > self.max_line_bytes:
                    lines.append(bytes(self._partial[: self.max_line_bytes]))
                    self._partial.clear()
                    self._skipping = True
            if nl < 0:
                return
            start = nl + 1

    def _flush_partial(self, out: ReadResult) -> None:
        if self._partial and not self._skipping:
            out.lines.append(bytes(self._partial))
        self._partial.clear()
        self._skipping = False


@register_check("logmatch")
class LogmatchCheck:
    Config = LogmatchConfig
    metrics = metric_defs(
        MetricDef("hostwarden_log_matches_total", "counter", "Lines matching the named pattern.",
                  ("check", "file", "pattern")),
        MetricDef("hostwarden_log_lines_total", "counter", "Complete lines read.", ("check", "file")),
    )

    def __init__(self, config: LogmatchConfig) -> None:
        self.config = config
        self.follower = LogFollower(config.path, from_beginning=config.from_beginning,
                                    max_line_bytes=config.max_line_bytes)
        self._patterns = [(name, re.compile(rx)) for name, rx in config.patterns.items()]
        self.matches = dict.fromkeys(config.patterns, 0)
        self.lines = 0

    def close(self) -> None:
        self.follower.close()

    def run(self, deadline: float) -> CheckResult:
        got = self.follower.read(self.config.max_read_bytes)
        for event in got.events:
            if event != "opened":
                log.info("check %s: %s %s", self.config.name, self.config.path, event)
        for raw in got.lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self.lines += 1
            for name, rx in self._patterns:
                if rx.search(line):
                    self.matches[name] += 1
        path = self.config.path
        samples = [sample("hostwarden_log_lines_total", self.lines, file=path)]
        samples += [sample("hostwarden_log_matches_total", n, file=path, pattern=name)
                    for name, n in self.matches.items()]
        if got.error:
            return CheckResult.failed(got.error, samples=samples)
        counts = ", ".join(f"{name}={n}" for name, n in self.matches.items())
        more = " (read limit reached, continuing next run)" if got.backlog else ""
        return CheckResult(ok=True, message=f"{len(got.lines)} new line(s); totals {counts}{more}", samples=samples)
