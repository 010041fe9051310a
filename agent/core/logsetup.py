"""Logging the way Prometheus exporters do it: `--log.level`, `--log.format logfmt|json`, to stderr.

    ts=2024-05-01T12:00:00.123Z level=info caller=agent.daemon:212 msg="configuration reloaded" path=/etc/x

Under systemd (`$JOURNAL_STREAM` names our stderr) the timestamp is left out — journald adds its
own — and each line starts with a `<N>` syslog priority (sd-daemon(3)), so `journalctl -p err`
filters by level. One record is always one line: newlines in messages and tracebacks are escaped.
Extra fields (`log.info("...", extra={"rule": name})`) become `key=value` pairs. Known secrets are
redacted by agent.secrets' filter and, for tracebacks and extra fields, in the formatted line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Literal, TextIO

from hostwarden.agent.core import secrets

# NOTICE (syslog priority 5) between INFO and WARNING: normal but significant, e.g. every remediation action.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
          "error": logging.ERROR}
_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", NOTICE: "notice", logging.WARNING: "warn",
                logging.ERROR: "error", logging.CRITICAL: "error"}
# sd-daemon(3) priorities: <7> debug, <6> info, <5> notice, <4> warning, <3> err, <2> crit.
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, NOTICE: 5, logging.WARNING: 4, logging.ERROR: 3,
                    logging.CRITICAL: 2}
# Libraries that log each routine step at INFO (APScheduler: "Running job ..." every tick).
_CHATTY = ("apscheduler", "urllib3", "asyncio")
_HANDLER_NAME = "hostwarden"
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def under_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """True when `$JOURNAL_STREAM` (`device:inode`) is the file `stream` writes to (sd-daemon(3))."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def _level_name(levelno: int) -> str:
    return _LEVEL_NAMES.get(levelno) or ("debug" if levelno < logging.INFO else "error")


def _priority(levelno: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, NOTICE, logging.INFO):
        if levelno >= threshold:
            return _SYSLOG_PRIORITY[threshold]
    return 7


def _timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' ="\\\n\r\t') and text.isprintable():
        return text
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t"))
    return f'"{escaped}"'


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}


class AgentFormatter(logging.Formatter):
    """logfmt or JSON, one line per record; `journal=True` drops the timestamp and adds `<N>`."""

    def __init__(self, fmt: Literal["logfmt", "json"] = "logfmt", *, journal: bool = False) -> None:
        super().__init__()
        if fmt not in ("logfmt", "json"):
            raise ValueError(f"log format must be logfmt or json, got {fmt!r}")
        self.fmt = fmt
        self.journal = journal

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self.journal:
            out["ts"] = _timestamp(record.created)
        out["level"] = _level_name(record.levelno)
        out["caller"] = f"{record.name}:{record.lineno}"
        out["msg"] = record.getMessage()
        for key, value in _extra_fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["err"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["err"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return out

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        if self.fmt == "json":
            line = json.dumps(fields, default=str, ensure_ascii=False, separators=(",", ":"))
        else:
            line = " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())
        line = secrets.redact(line)
        if self.journal:
            line = f"<{_priority(record.levelno)}>{line}"
        return line


def setup_logging(level: str = "info", fmt: Literal["logfmt", "json"] = "logfmt", *, stream: TextIO | None = None,
                  journal: bool | None = None) -> logging.Handler:
    """Configure the root logger (replacing its handlers) and return the installed handler.

    `journal=None` detects journald through `$JOURNAL_STREAM`; `stream` defaults to sys.stderr as it
    is at call time.
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    out = sys.stderr if stream is None else stream
    if journal is None:
        journal = under_journal(out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(AgentFormatter(fmt, journal=journal))
    handler.addFilter(secrets.RedactingFilter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call; foreign handlers (pytest's) stay
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    quiet = logging.DEBUG if LEVELS[level] <= logging.DEBUG else logging.WARNING
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
    return handler
