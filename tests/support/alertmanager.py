"""Start Debian's real Alertmanager (`prometheus-alertmanager`) on 127.0.0.1 for tests; talk to its API v2."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import free_port

BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")


def alertmanager_binary() -> str:
    for name in BINARY_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Debian package 'prometheus-alertmanager' is not installed (test.sh installs it as root)")


@dataclass
class Alertmanager:
    proc: subprocess.Popen
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"filter={k}%3D%22{v}%22" for k, v in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=10) as resp:
            return json.loads(resp.read())

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        req = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200

    def log(self) -> str:
        return (self.workdir / "alertmanager.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_alertmanager(workdir: Path, config_yaml: str) -> Alertmanager:
    """A single, non-clustered Alertmanager with `config_yaml`, its data in `workdir`."""
    binary = alertmanager_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(config_yaml)
    log = open(workdir / "alertmanager.log", "ab")  # noqa: SIM115 - the child's lifetime
    proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.path={workdir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                             "--log.level=debug"], stdout=log, stderr=subprocess.STDOUT)
    am = Alertmanager(proc, port, workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"alertmanager exited:\n{am.log()}")
        try:
            with urllib.request.urlopen(f"{am.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return am
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    am.stop()
    raise RuntimeError(f"alertmanager not ready after 30s:\n{am.log()}")
