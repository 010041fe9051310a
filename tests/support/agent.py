"""Start a real `hostwarden run` process for tests, on a free 127.0.0.1 port, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hostwarden_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "hostwarden"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hostwarden.agent.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*hostwarden_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


@dataclass
class AgentProcess:
    proc: subprocess.Popen
    port: int
    config: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self, path: str = "/metrics", timeout: float = 5) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return resp.read().decode()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        return terminate(self.proc, timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def terminate(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM, then SIGKILL after `timeout` seconds; the exit code (negative: killed by that signal)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def write_config(directory: Path, body: str, *, port: int | None = None, state_dir: Path | None = None) -> Path:
    """A config with `body` appended to a global/web header using a free port and a temp state dir."""
    port = port or free_port()
    state = state_dir or directory / "state"
    cfg = directory / "hostwarden.yaml"
    cfg.write_text(f"global:\n  interval: 1s\n  state_dir: {state}\n  hostname: testhost\n"
                   f"web:\n  listen_address: 127.0.0.1:{port}\n{body}")
    return cfg


def start_agent(config: Path, *, extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                wait_ready: float = 30.0, prefix: list[str] | None = None,
                drop_env: frozenset[str] = frozenset()) -> AgentProcess:
    """`prefix`: a command that execs the agent (same pid, e.g. `unshare ...`); `drop_env`: variables (lower
    case names) left out of the agent's environment."""
    text = config.read_text()
    port = int(text.split("listen_address: 127.0.0.1:")[1].split()[0])
    log = config.parent / f"agent-{port}.log"
    fh = open(log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    base = {k: v for k, v in os.environ.items() if k.lower() not in drop_env}
    proc = subprocess.Popen([*(prefix or []), *hostwarden_cmd(), "run", "--config", str(config), *(extra_args or [])],
                            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env={**base, **(env or {})})
    agent = AgentProcess(proc, port, config, log)
    deadline = time.monotonic() + wait_ready
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}:\n{agent.log_text()}")
        try:
            agent.scrape("/-/ready", timeout=1)
            return agent
        except OSError:
            time.sleep(0.1)
    agent.kill()
    raise RuntimeError(f"agent not ready after {wait_ready}s:\n{agent.log_text()}")


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
