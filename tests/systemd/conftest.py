"""Shared pieces of the tests that install hostwarden into a namespaced systemd (tests/support/systemdns.py).

The namespace has no network: pip inside it installs from a wheelhouse built here, on the host, from the
same sources (`wheelhouse`), through a pip.conf written into the namespace's own (overlaid) /root. The
sources are a copy of the checkout as a fresh clone has it (`source_tree`: tracked and new files, nothing
ignored), outside /tmp so both sides see it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.systemdns import (
    DEFAULT_OVERLAY,
    ROOT,
    SystemdNamespace,
    refusal_reason,
    systemd_ns,  # noqa: F401 (the harness's fixture, for this directory)
)

WORK = ROOT / "build" / "systemd-tests"
# /root too: pip's config and cache inside stay inside.
OVERLAY = (*DEFAULT_OVERLAY, "/root")
METRICS_URL = "http://127.0.0.1:19842/metrics"


def readme_setup_commands() -> list[str]:
    """The commands of the README's "Set-up: two commands" block, comments stripped (install, then tests)."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Set-up: two commands\n.*?```sh\n(.*?)```", text, re.M | re.S)
    assert m, "README.md has no '## Set-up: two commands' sh block"
    return [line.split("#", 1)[0].strip() for line in m.group(1).splitlines() if line.split("#", 1)[0].strip()]


def boot(name: str) -> SystemdNamespace:
    reason = refusal_reason()
    if reason is not None:
        pytest.skip(f"no namespaced systemd here: {reason}")
    return SystemdNamespace(name=name, overlay=OVERLAY).start()


@pytest.fixture(scope="session")
def source_tree() -> Path:
    """The checkout's files as a fresh clone would have them (plus uncommitted edits), world-readable."""
    dest = WORK / "src"
    shutil.rmtree(dest, ignore_errors=True)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for d in [dest, *dest.rglob("*")]:
        if d.is_dir():
            d.chmod(0o755)
    return dest


@pytest.fixture(scope="session")
def wheelhouse(source_tree: Path) -> Path:
    """Wheels of every dependency, the test extras and setuptools (to build hostwarden) for offline pip."""
    wh = WORK / "wheels"
    wh.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wh), "--find-links", str(wh),
            f"{source_tree}[test]", "setuptools>=77"]
    # Offline first (a wheelhouse from an earlier run), then with the index.
    if subprocess.run([*base, "--no-index"], capture_output=True, timeout=600).returncode != 0:
        r = subprocess.run(base, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"pip wheel failed: {r.stderr[-3000:]}"
    for own in wh.glob("hostwarden-*.whl"):
        own.unlink()
    return wh


def fresh_host(ns: SystemdNamespace) -> None:
    """Inside the namespace only (overlays): no trace of an earlier hostwarden (this build host may have a
    /var/lib/hostwarden from agents run as root), as on a fresh Debian."""
    ns.run(["sh", "-c", "rm -rf /etc/hostwarden /var/lib/hostwarden /opt/hostwarden /usr/local/bin/hostwarden "
            "/etc/systemd/system/hostwarden.service /etc/systemd/system/hostwarden.service.d; "
            "if getent passwd hostwarden >/dev/null; then userdel hostwarden; fi; "
            "if getent group hostwarden >/dev/null; then groupdel hostwarden; fi; systemctl daemon-reload"],
           check=True)


def offline_pip(ns: SystemdNamespace, wheelhouse: Path) -> None:
    """pip inside the namespace installs only from `wheelhouse` (root's own pip.conf, in the overlay)."""
    ns.run(["sh", "-c", "mkdir -p /root/.config/pip && "
            f"printf '[global]\\nno-index = true\\nfind-links = {wheelhouse}\\n' > /root/.config/pip/pip.conf"],
           check=True)


def allow_service_starts(ns: SystemdNamespace) -> None:
    """This build host has a policy-rc.d that forbids starting services (exit 101), as container images do;
    a real host has none. Removed inside the namespace only."""
    ns.run(["rm", "-f", "/usr/sbin/policy-rc.d"], check=True)


def metric(text: str, name: str, labels: str = "") -> float | None:
    """The value of `name{labels...}` in exposition text (labels: a substring of the label set)."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m and labels in (m.group(1) or ""):
            return float(m.group(2))
    return None


def scrape(ns: SystemdNamespace) -> str:
    status, body = ns.http_get(METRICS_URL)
    assert status == 200, f"/metrics: {status} {body[:300]}"
    return body


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def main_pid(ns: SystemdNamespace, unit: str = "hostwarden.service") -> int:
    return int(ns.show(unit, "MainPID").get("MainPID", "0") or 0)
