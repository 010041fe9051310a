"""Secrets come from environment variables or files (systemd credentials), never from YAML.

Every secret resolved here is remembered so the logging filter can redact it wherever it appears.
"""

from __future__ import annotations

import logging
import os
import threading

_lock = threading.Lock()
_known: set[str] = set()
REDACTED = "<redacted>"


class SecretError(Exception):
    pass


def remember(value: str) -> str:
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)
    return value


def resolve(*, env: str | None = None, file: str | None = None, what: str = "secret") -> str | None:
    """Read a secret from `$env` or from `file`; a relative file name is looked up in $CREDENTIALS_DIRECTORY."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"{what}: environment variable {env} is not set")
        return remember(value.strip())
    if file:
        path = file
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not os.path.isabs(path) and creds:
            path = os.path.join(creds, path)
        try:
            with open(path, encoding="utf-8") as f:
                return remember(f.read().strip())
        except OSError as e:
            raise SecretError(f"{what}: cannot read {path}: {e.strerror or e}") from None
    return None


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for s in known:
        if s in text:
            text = text.replace(s, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs every known secret from log records (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            msg = record.getMessage()
            red = redact(msg)
            if red != msg:
                record.msg, record.args = red, None
        return True
