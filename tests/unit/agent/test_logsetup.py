"""Log lines: logfmt and JSON, journald detection through a real file's device:inode, redaction."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator

import pytest
from hostwarden.agent.core import secrets
from hostwarden.agent.core.logsetup import AgentFormatter, setup_logging, under_journal

LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_logfmt(line: str) -> dict[str, str]:
    out = {}
    for key, raw in LOGFMT_PAIR.findall(line):
        if raw.startswith('"'):
            raw = raw[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        out[key] = raw
    return out


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("apscheduler", "urllib3", "asyncio")}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for name, lvl in chatty.items():
        logging.getLogger(name).setLevel(lvl)
    logging.captureWarnings(False)


def _record(msg: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("hostwarden.agent.daemon", level, "/x/agent/daemon.py", 42, msg, args or None, None)
    rec.created = 1714564800.25
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_formatter_logfmt_outside_journal_has_timestamp_and_fields() -> None:
    line = AgentFormatter("logfmt").format(_record("reloaded %s", "ok", path="/etc/x y"))
    assert line == ('ts=2024-05-01T12:00:00.250Z level=info caller=hostwarden.agent.daemon:42 msg="reloaded ok" '
                    'path="/etc/x y"')


def test_formatter_logfmt_under_journal_has_priority_and_no_timestamp() -> None:
    fmt = AgentFormatter("logfmt", journal=True)
    assert fmt.format(_record("x", level=logging.ERROR)) == "<3>level=error caller=hostwarden.agent.daemon:42 msg=x"
    assert fmt.format(_record("x", level=logging.WARNING)).startswith("<4>level=warn ")
    assert fmt.format(_record("x", level=logging.DEBUG)).startswith("<7>level=debug ")


def test_formatter_json_is_one_parseable_object() -> None:
    line = AgentFormatter("json").format(_record('quote " and\nnewline', rule="HighCPU"))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj == {"ts": "2024-05-01T12:00:00.250Z", "level": "info", "caller": "hostwarden.agent.daemon:42",
                   "msg": 'quote " and\nnewline', "rule": "HighCPU"}


def test_formatter_exception_stays_on_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("agent.x", logging.ERROR, "x.py", 1, "job failed", None, __import__("sys").exc_info())
    line = AgentFormatter("logfmt").format(rec)
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["msg"] == "job failed"
    assert "RuntimeError: boom" in fields["err"] and "Traceback" in fields["err"]


def test_formatter_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="logfmt or json"):
        AgentFormatter("text")  # type: ignore[arg-type]


def test_under_journal_matching_device_inode_true(tmp_path) -> None:
    with open(tmp_path / "stderr", "w") as f:
        st = os.fstat(f.fileno())
        assert under_journal(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not under_journal(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not under_journal(f, {"JOURNAL_STREAM": "garbage"})
        assert not under_journal(f, {})
    assert not under_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_setup_logging_journal_stream_env_drops_timestamps(tmp_path, monkeypatch, restore_root) -> None:
    with open(tmp_path / "stderr", "w+") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        setup_logging("info", "logfmt", stream=f)
        logging.getLogger("agent.test").info("started")
        f.flush()
        f.seek(0)
        lines = f.read().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("<6>level=info caller=agent.test:")
    assert "ts=" not in lines[0]


def test_setup_logging_plain_stream_has_timestamps_and_level_filter(restore_root) -> None:
    out = io.StringIO()
    setup_logging("warn", "logfmt", stream=out)
    log = logging.getLogger("agent.test")
    log.info("hidden")
    log.warning("shown %d", 1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    fields = parse_logfmt(lines[0])
    assert fields["level"] == "warn" and fields["msg"] == "shown 1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["ts"])


def test_setup_logging_called_twice_keeps_one_handler(restore_root) -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", stream=first)
    setup_logging("info", "json", stream=second)
    logging.getLogger("agent.test").info("once")
    assert first.getvalue() == ""
    assert [json.loads(x)["msg"] for x in second.getvalue().splitlines()] == ["once"]


def test_setup_logging_redacts_known_secrets_everywhere(restore_root) -> None:
    token = "s3cr3t-token-for-logsetup-test"
    secrets.remember(token)
    out = io.StringIO()
    setup_logging("info", "logfmt", stream=out)
    log = logging.getLogger("agent.test")
    log.info("posting with token %s", token)
    log.info("extra field", extra={"auth": f"Bearer {token}"})
    try:
        raise ValueError(f"server said {token}")
    except ValueError:
        log.exception("request failed")
    text = out.getvalue()
    assert token not in text
    assert text.count(secrets.REDACTED) == 3


def test_setup_logging_quiets_apscheduler_at_info(restore_root) -> None:
    out = io.StringIO()
    setup_logging("info", stream=out)
    logging.getLogger("apscheduler.executors.default").info('Running job "heartbeat"')
    assert out.getvalue() == ""
    setup_logging("debug", stream=out)
    logging.getLogger("apscheduler.executors.default").info('Running job "heartbeat"')
    assert "Running job" in out.getvalue()


def test_setup_logging_unknown_level_raises() -> None:
    with pytest.raises(ValueError, match="log level"):
        setup_logging("verbose")
