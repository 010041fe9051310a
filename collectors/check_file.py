"""`file` check: existence, age (seconds since mtime) and size of a path or a glob.

For a glob the limits (`max_age`, `min_size`, `max_size`) apply to the newest match — "last night's
backup exists, is fresh and is not empty" — and `min_count` to the number of matches. Per-file
series are kept for the `max_files` newest matches so a glob over a busy directory stays bounded.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import time
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Duration
from hostwarden.agent.core.units import human_duration
from hostwarden.collectors.checks import CheckConfig, CheckResult, register_check, resolve_path, sample


@dataclass(frozen=True)
class FileConfig(CheckConfig):
    path: str = ""
    max_age: Duration | None = None
    min_size: int | None = None  # bytes
    max_size: int | None = None  # bytes
    min_count: int = 1  # globs: fewer matches is a failure
    max_files: int = 20  # globs: per-file series for at most this many (newest) matches

    def validate(self) -> list[str]:
        problems = super().validate()
        if not self.path:
            problems.append("path is required")
        if self.min_count < 0 or self.max_files < 1:
            problems.append("min_count must be >= 0 and max_files >= 1")
        return problems

    def with_base_dir(self, base_dir: str) -> FileConfig:
        return dataclasses.replace(self, path=resolve_path(self.path, base_dir) or "")

    @property
    def is_glob(self) -> bool:
        return glob.has_magic(self.path)


@dataclass(frozen=True)
class FileStat:
    path: str
    mtime: float
    size: int


def stat_files(config: FileConfig) -> tuple[list[FileStat], str | None]:
    """The matching files, newest first, and an error text for a single path that cannot be stat'ed."""
    paths = glob.glob(config.path) if config.is_glob else [config.path]
    out = []
    error = None
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue  # vanished between glob and stat, or a missing single path
        except OSError as e:
            error = f"cannot stat {p}: {e.strerror or e}"
            continue
        out.append(FileStat(p, st.st_mtime, st.st_size))
    out.sort(key=lambda f: (-f.mtime, f.path))
    return out, error


def evaluate(files: list[FileStat], config: FileConfig, now: float, error: str | None = None) -> CheckResult:
    """Pure: stats (newest first) at time `now` → samples and verdict."""
    samples: list[Sample] = []
    if config.is_glob:
        samples.append(sample("hostwarden_file_matches", len(files)))
    else:
        samples.append(sample("hostwarden_file_exists", 1 if files else 0, path=config.path))
    for f in files[: config.max_files]:
        samples.append(sample("hostwarden_file_age_seconds", max(0.0, now - f.mtime), path=f.path))
        samples.append(sample("hostwarden_file_size_bytes", f.size, path=f.path))
        samples.append(sample("hostwarden_file_modified_timestamp_seconds", f.mtime, path=f.path))
    if error and not files:
        return CheckResult.failed(error, samples=samples)
    if not files:
        if config.is_glob and config.min_count == 0:
            return CheckResult(ok=True, message=f"no file matches {config.path}", samples=samples)
        return CheckResult.failed(f"{config.path}: " + ("no file matches" if config.is_glob else "does not exist"),
                                  samples=samples)
    if config.is_glob and len(files) < config.min_count:
        return CheckResult.failed(f"{len(files)} file(s) match {config.path}, expected at least {config.min_count}",
                                  samples=samples)
    newest = files[0]
    age = max(0.0, now - newest.mtime)
    problems = []
    if config.max_age is not None and age > config.max_age:
        problems.append(f"{newest.path} is {_age(age)} old (max {_age(config.max_age)})")
    if config.min_size is not None and newest.size < config.min_size:
        problems.append(f"{newest.path} is {newest.size} bytes (min {config.min_size})")
    if config.max_size is not None and newest.size > config.max_size:
        problems.append(f"{newest.path} is {newest.size} bytes (max {config.max_size})")
    if problems:
        return CheckResult.failed("; ".join(problems), samples=samples)
    return CheckResult(ok=True, message=f"{newest.path}: {newest.size} bytes, {_age(age)} old", samples=samples)


def _age(seconds: float) -> str:
    return human_duration(seconds)


@register_check("file")
class FileCheck:
    Config = FileConfig
    metrics = metric_defs(
        MetricDef("hostwarden_file_exists", "gauge", "1 when the (non-glob) path exists.", ("check", "path")),
        MetricDef("hostwarden_file_matches", "gauge", "Number of files matching the glob.", ("check",)),
        MetricDef("hostwarden_file_age_seconds", "gauge", "Seconds since the file was last modified.",
                  ("check", "path")),
        MetricDef("hostwarden_file_size_bytes", "gauge", "File size.", ("check", "path")),
        MetricDef("hostwarden_file_modified_timestamp_seconds", "gauge", "Unix time of the file's mtime.",
                  ("check", "path")),
    )

    def __init__(self, config: FileConfig) -> None:
        self.config = config

    def run(self, deadline: float) -> CheckResult:
        files, error = stat_files(self.config)
        return evaluate(files, self.config, time.time(), error)
