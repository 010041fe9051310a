"""Reading sysfs attributes and /proc files where absence is normal (node_exporter's collectors whose
source may not exist): a missing, unreadable or unanswerable file is None, a missing directory is empty.

Each helper is one open and one read; nothing is cached, so a vanished device leaves no stale series.
"""

from __future__ import annotations

import os

from hostwarden.collectors.procfs import read_attr_text, read_text


def read_str(path: str) -> str | None:
    """The file's text without surrounding whitespace, or None when it cannot be read (absent,
    permission, or a sysfs attribute the driver cannot answer: EIO, ENODATA, EINVAL)."""
    try:
        return read_attr_text(path).strip()
    except OSError:
        return None


def read_int(path: str) -> int | None:
    text = read_str(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def listdir(path: str) -> list[str]:
    """Sorted entries (the order node_exporter's globs give), or [] when the directory is absent."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def numbered(path: str, prefix: str) -> list[tuple[str, str]]:
    """(number, full path) for entries `<prefix><digits>` of a directory, in directory order."""
    n = len(prefix)
    return [(e[n:], os.path.join(path, e)) for e in listdir(path)
            if e.startswith(prefix) and e[n:].isdigit()]


def read_text_or_none(path: str) -> str | None:
    """The whole file unstripped (multi-line /proc files), or None when it is absent."""
    try:
        return read_text(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
