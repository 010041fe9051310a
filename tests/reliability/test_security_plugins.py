"""Plugins run without a shell, with an explicit environment, and a timeout kills their whole process group.

Real plugin processes (small scripts written to tmp_path) run through collectors.check_nagios.NagiosCheck.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest
from hostwarden.collectors.check_nagios import NagiosCheck, NagiosConfig

PLANTED = "HOSTWARDEN_TEST_PLANTED_ENV"


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _run(config: NagiosConfig, budget: float | None = None) -> tuple[object, float]:
    start = time.monotonic()
    result = NagiosCheck(config).run(time.monotonic() + (budget if budget is not None else float(config.timeout)))
    return result, time.monotonic() - start


def test_plugin_arguments_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    args = ["$(touch " + str(marker) + ")", "; touch " + str(marker), "`id`", "&&", "|", "*", "$HOME", "'\"'"]
    # hex: the output's `|` would start perfdata
    echo = _script(tmp_path / "echo_args",
                   "import sys\nprint('OK - ' + ' '.join(a.encode().hex() for a in sys.argv[1:]))\n")
    result, _ = _run(NagiosConfig(name="argv", type="nagios", command=[str(echo), *args], timeout=10))
    assert result.ok
    assert result.message == "OK - " + " ".join(a.encode().hex() for a in args)
    assert not marker.exists()


def test_plugin_environment_only_path_locale_and_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PLANTED, "agent-side-secret-value")
    monkeypatch.setenv("PASS_ME", "passed")
    dump = _script(tmp_path / "dump_env", "import os\nprint('OK - env')\n"
                                          "for k in sorted(os.environ): print(f'{k}={os.environ[k]}')\n")
    cfg = NagiosConfig(name="env", type="nagios", command=[str(dump)], env={"CONFIGURED": "yes"},
                       env_passthrough=["PASS_ME", "NOT_SET_ANYWHERE"], timeout=10)
    result, _ = _run(cfg)
    seen = dict(line.split("=", 1) for line in result.details.splitlines() if "=" in line)
    # python itself may add LC_CTYPE coercion; nothing else from the agent's environment gets through
    assert set(seen) - {"LC_CTYPE"} == {"PATH", "LANG", "LC_ALL", "CONFIGURED", "PASS_ME"}
    assert seen["LANG"] == seen["LC_ALL"] == "C" and seen["CONFIGURED"] == "yes" and seen["PASS_ME"] == "passed"
    assert "agent-side-secret-value" not in result.details + result.message


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_plugin_timeout_kills_whole_process_group_including_grandchildren(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = _script(tmp_path / "hang", (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "print('still working', flush=True)\n"
        "time.sleep(600)\n"))
    result, took = _run(NagiosConfig(name="hang", type="nagios", command=[str(hang)], timeout=2))
    assert not result.ok and "timed out" in result.message and "process group killed" in result.message
    assert took < 6
    plugin_pid, grandchild_pid = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_alive(plugin_pid) or _alive(grandchild_pid)):
        time.sleep(0.05)
    assert not _alive(plugin_pid) and not _alive(grandchild_pid)


def test_plugin_runs_in_own_session_not_agent_process_group(tmp_path: Path) -> None:
    ids = _script(tmp_path / "ids", "import os\nprint(f'OK - {os.getpgid(0)} {os.getsid(0)} {os.getpid()}')\n")
    result, _ = _run(NagiosConfig(name="ids", type="nagios", command=[str(ids)], timeout=10))
    pgid, sid, pid = map(int, result.message.split()[2:])
    assert pgid == sid == pid
    assert pgid != os.getpgid(0)


def test_plugin_stdin_is_devnull_never_the_agents(tmp_path: Path) -> None:
    reader = _script(tmp_path / "reader", "import sys\ndata = sys.stdin.read()\nprint(f'OK - read {len(data)}')\n")
    result, took = _run(NagiosConfig(name="stdin", type="nagios", command=[str(reader)], timeout=10))
    assert result.message == "OK - read 0" and took < 5
