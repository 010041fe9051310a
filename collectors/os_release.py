"""`node_os_info` and `node_os_version` from os-release(5), as node_exporter's `os` collector.

/etc/os-release is read, else /usr/lib/os-release; the parsed file is kept until its modification
time changes, so a cycle costs one stat(2). Every label of node_exporter 1.5 is present, empty
when the file lacks the key. `node_os_version` is the leading major.minor of VERSION_ID as a number
(Debian "12" → 12, Ubuntu "22.04" → 22.04) and is left out when VERSION_ID has no number (sid).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.procfs import read_text

FILES = ("etc/os-release", "usr/lib/os-release")
INFO_KEYS = {"build_id": "BUILD_ID", "id": "ID", "id_like": "ID_LIKE", "image_id": "IMAGE_ID",
             "image_version": "IMAGE_VERSION", "name": "NAME", "pretty_name": "PRETTY_NAME",
             "variant": "VARIANT", "variant_id": "VARIANT_ID", "version": "VERSION",
             "version_codename": "VERSION_CODENAME", "version_id": "VERSION_ID"}
_VERSION = re.compile(r"^[0-9]+\.?[0-9]*")
_ESCAPES = {"\\": "\\", '"': '"', "$": "$", "`": "`"}


@dataclass(frozen=True)
class OsConfig(CollectorConfig):
    pass


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines, shell-quoted values ("..." with \\ escapes, '...'), comments and blanks skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        out[key.strip()] = _unquote(value.strip())
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, chars, i = value[1:-1], [], 0
        while i < len(inner):
            c = inner[i]
            if c == "\\" and i + 1 < len(inner) and inner[i + 1] in _ESCAPES:
                chars.append(inner[i + 1])
                i += 2
                continue
            chars.append(c)
            i += 1
        return "".join(chars)
    return value


@register("os")
class OsCollector:
    Config = OsConfig
    metrics = metric_defs(
        MetricDef("node_os_info", "gauge",
                  "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, "
                  "name, pretty_name, variant, variant_id, version, version_codename, version_id.",
                  tuple(sorted(INFO_KEYS))),
        MetricDef("node_os_version", "gauge", "Metric containing the major.minor part of the OS version.",
                  ("id", "id_like", "name")),
    )

    def __init__(self, config: OsConfig | None = None, *, root: str = "/") -> None:
        self.config = config or OsConfig()
        self._paths = tuple(os.path.join(root, f) for f in FILES)
        self._cached: tuple[str, int] | None = None  # (path, mtime_ns) of the parsed file
        self._samples: tuple[tuple[Labels, float | None], ...] = ()

    def _load(self, path: str) -> None:
        fields = parse_os_release(read_text(path))
        info = tuple((k, fields.get(v, "")) for k, v in sorted(INFO_KEYS.items()))
        version_labels = tuple((k, fields.get(INFO_KEYS[k], "")) for k in ("id", "id_like", "name"))
        match = _VERSION.match(fields.get("VERSION_ID", ""))
        version = float(match.group(0)) if match else 0.0
        self._samples = ((info, None), (version_labels, version if version > 0 else None))

    def collect(self, now: float) -> Iterable[Sample]:
        for path in self._paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            key = (path, st.st_mtime_ns)
            if key != self._cached:
                self._load(path)
                self._cached = key
            (info, _), (version_labels, version) = self._samples
            out = [Sample("node_os_info", info, 1.0, now)]
            if version is not None:
                out.append(Sample("node_os_version", version_labels, version, now))
            return out
        return []
