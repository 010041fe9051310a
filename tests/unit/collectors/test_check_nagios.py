"""The nagios check's process handling and exit-code mapping, with small real plugin scripts.

(Debian's monitoring-plugins are exercised in tests/integration/test_checks_nagios.py.)
"""

from __future__ import annotations

import os
import stat
import time

import psutil
import pytest
from hostwarden.agent.core.schema import Duration
from hostwarden.collectors.check_nagios import NagiosCheck, NagiosConfig, PluginRun, interpret, perfdata_samples
from hostwarden.collectors.checks import Status
from hostwarden.collectors.perfdata import parse_perfdata


def plugin(tmp_path, name: str, body: str, *, executable: bool = True) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755 if executable else 0o644)
    return str(path)


def run(command: list[str], timeout: float = 5.0, **kw: object):
    check = NagiosCheck(NagiosConfig(name="n", type="nagios", command=command, timeout=Duration(timeout), **kw))
    return check.run(time.monotonic() + timeout)


@pytest.mark.parametrize(("code", "status"), [(0, Status.OK), (1, Status.WARNING), (2, Status.CRITICAL),
                                              (3, Status.UNKNOWN), (4, Status.UNKNOWN), (255, Status.UNKNOWN)])
def test_interpret_exit_codes_map_to_states(code: int, status: Status) -> None:
    result = interpret(PluginRun(code, "SERVICE X - detail | a=1\n", "", False))
    assert result.status == status
    assert result.ok == (code == 0)
    if code > 3:
        assert result.message == f"plugin exited with code {code}: SERVICE X - detail"
    else:
        assert result.message == "SERVICE X - detail"


def test_interpret_signal_and_stderr_only_outputs() -> None:
    killed = interpret(PluginRun(-11, "", "", False))
    assert (killed.status, killed.message) == (Status.UNKNOWN, "plugin killed by signal SIGSEGV")
    quiet = interpret(PluginRun(2, "", "error: cannot open /x\nmore\n", False))
    assert quiet.message == "(no output on stdout) stderr: error: cannot open /x"


def test_perfdata_samples_limit_and_duplicate_labels() -> None:
    items, _ = parse_perfdata("a=1;2;3;0;10 a=5 b=2 c=3")
    got = perfdata_samples(items, limit=2)
    names = [(s.name, s.label("label"), s.value) for s in got]
    assert names == [("hostwarden_nagios_perfdata_value", "a", 1.0), ("hostwarden_nagios_perfdata_warning", "a", 2.0),
                     ("hostwarden_nagios_perfdata_critical", "a", 3.0), ("hostwarden_nagios_perfdata_min", "a", 0.0),
                     ("hostwarden_nagios_perfdata_max", "a", 10.0), ("hostwarden_nagios_perfdata_value", "b", 2.0)]


def test_nagios_check_script_output_exit_and_perfdata(tmp_path) -> None:
    cmd = plugin(tmp_path, "check_x", 'echo "WARNING - $1 is high | \'q len\'=$2;5;9;0"\necho "long line"\nexit 1\n')
    result = run([cmd, "queue", "7"])
    assert (result.status, result.ok, result.message) == (Status.WARNING, False, "WARNING - queue is high")
    assert result.details == "long line"
    (value, *_rest) = result.samples
    assert (value.name, dict(value.labels), value.value) == ("hostwarden_nagios_perfdata_value",
                                                             {"label": "q len"}, 7.0)  # empty uom: no label


def test_nagios_check_environment_is_explicit(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_SECRET_FOR_TEST", "s3cret")
    monkeypatch.setenv("HW_NOT_PASSED", "leak")
    cmd = plugin(tmp_path, "check_env", 'echo "OK - LANG=$LANG LC_ALL=$LC_ALL A=$A S=$HW_SECRET_FOR_TEST '
                                        'N=$HW_NOT_PASSED PATH=$PATH"\n')
    result = run([cmd], env={"A": "1"}, env_passthrough=["HW_SECRET_FOR_TEST"], path="/usr/bin:/bin")
    assert result.message == "OK - LANG=C LC_ALL=C A=1 S=s3cret N= PATH=/usr/bin:/bin"


def test_nagios_check_not_executable_is_unknown_with_reason(tmp_path) -> None:
    cmd = plugin(tmp_path, "check_noexec", "echo OK\n", executable=False)
    result = run([cmd])
    assert (result.status, result.message) == (Status.UNKNOWN, f"plugin {cmd} is not executable")


def test_nagios_check_missing_plugin_is_unknown(tmp_path) -> None:
    assert run([str(tmp_path / "nope")]).message == f"plugin {tmp_path / 'nope'} does not exist"
    bare = run(["check_hostwarden_does_not_exist"], path=str(tmp_path))
    assert bare.status == Status.UNKNOWN and "not found (or not executable)" in bare.message


def test_nagios_check_bare_name_found_in_configured_path(tmp_path) -> None:
    plugin(tmp_path, "check_here", 'echo "OK - found"\n')
    assert run(["check_here"], path=str(tmp_path)).message == "OK - found"


def test_nagios_check_bad_interpreter_is_unknown(tmp_path) -> None:
    path = tmp_path / "check_badshebang"
    path.write_text("#!/nonexistent/interpreter\necho hi\n")
    path.chmod(stat.S_IRWXU)
    result = run([str(path)])
    assert result.status == Status.UNKNOWN and result.message.startswith(f"cannot run plugin {path}")


def test_nagios_check_timeout_kills_whole_process_group(tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    cmd = plugin(tmp_path, "check_hang", f'sleep 60 &\necho $! > {pidfile}\necho "partial"\nwait\n')
    t0 = time.monotonic()
    result = run([cmd], timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert result.status == Status.UNKNOWN
    assert result.message == "plugin timed out after 0.5s (process group killed)"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the plugin's child survived the timeout"
        time.sleep(0.02)


def test_nagios_check_output_capped_and_chatty_plugin_not_blocked(tmp_path) -> None:
    # ~8 MiB of output: more than a pipe holds, so the plugin only exits if we keep reading
    cmd = plugin(tmp_path, "check_spew", 'echo "OK - spew | a=1"\nhead -c 8388608 /dev/zero | tr "\\0" x\nexit 0\n')
    result = run([cmd], max_output_bytes=4096)
    assert (result.status, result.message) == (Status.OK, "OK - spew")
    assert result.details.endswith("(output truncated)")
    assert len(result.details) <= 8192


def test_nagios_check_background_child_holding_stdout_does_not_stall(tmp_path) -> None:
    pidfile = tmp_path / "bg.pid"
    cmd = plugin(tmp_path, "check_bg", f'sleep 30 &\necho $! > {pidfile}\necho "OK - started"\nexit 0\n')
    t0 = time.monotonic()
    result = run([cmd], timeout=10)
    assert time.monotonic() - t0 < 5  # the leader's exit ends the run, not the inherited pipe
    assert (result.status, result.message) == (Status.OK, "OK - started")
    os.kill(int(pidfile.read_text()), 9)
