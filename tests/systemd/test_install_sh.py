"""install.sh and the installed service under a real systemd (PID 1 of a namespace, tests/support/systemdns.py).

One namespace and one virtualenv for the whole module (a fresh install costs ~25 s), in this order:
1. A host without systemd (a mount namespace with an empty /run inside the booted one): `./install.sh` from a
   root shell creates the virtualenv, /etc/hostwarden and the user, and runs the agent in the foreground as
   hostwarden.
2. `./install.sh` from a root shell on the systemd host without sudo: the unit is up once READY=1 came, /metrics
   answers.
3. With a test configuration (1 s interval; a local ticket store; a webhook backend whose token arrives through
   `LoadCredential=`): reload, a broken reload, journal priorities, the sandbox, the credential, `systemctl
   stop` draining an in-flight delivery, the watchdog.
4. `./install.sh` again, as a user with sudo: an upgrade in place; config, state and tickets kept.
5. `./install.sh --uninstall` keeps config and state; `--uninstall --purge` removes them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.systemdns import SystemdNamespace
from tests.systemd.conftest import (
    boot,
    fresh_host,
    main_pid,
    metric,
    offline_pip,
    readme_setup_commands,
    scrape,
    wait_for,
)

pytestmark = pytest.mark.integration

SERVICE = "hostwarden.service"
HOOK_PORT = 18080
HOOKSERVER = Path(__file__).with_name("hookserver.py")
# The README's install command, verbatim (from a root shell and as a sudo user alike).
INSTALL = readme_setup_commands()[0]
LEVEL_PRIORITY = {"debug": "7", "info": "6", "warn": "4", "error": "3"}

TEST_CONFIG = f"""\
global:
  interval: 1s
web:
  listen_address: 127.0.0.1:19842
collectors:
  cpu: {{}}
  memory: {{}}
  load: {{}}
rule_files:
  - test-rules/*.yaml
tickets:
  backends:
    - {{name: local, type: local}}
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{HOOK_PORT}/hook", token_file: hook-token}}
  route:
    - {{match: {{sink: hook}}, backend: hook}}
"""


def rule_file(*alerts: tuple[str, dict[str, str]]) -> str:
    rules = "".join(f"      - alert: {name}\n        expr: vector(1)\n"
                    f"        labels: {json.dumps({'severity': 'warning', **labels})}\n"
                    f"        annotations: {{summary: \"{name} fires\"}}\n" for name, labels in alerts)
    return f"groups:\n  - name: {alerts[0][0].lower()}\n    interval: 1s\n    rules:\n{rules}"


def write(ns: SystemdNamespace, path: str, text: str, mode: str = "0644") -> None:
    ns.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', "sh", path, mode],
           input=text, check=True)


def as_user(ns: SystemdNamespace, user: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    return ns.run(["runuser", "-u", user, "--", *argv], **kw)


def cli(ns: SystemdNamespace, *args: str) -> subprocess.CompletedProcess:
    """`hostwarden ARGS --config /etc/hostwarden/hostwarden.yaml` as the service user, on its state."""
    return as_user(ns, "hostwarden", ["env", "STATE_DIRECTORY=/var/lib/hostwarden", "/usr/local/bin/hostwarden",
                                      *args, "--config", "/etc/hostwarden/hostwarden.yaml"], timeout=120)


def journal_since(ns: SystemdNamespace, cursor: str) -> str:
    return ns.journalctl("-u", SERVICE, f"--after-cursor={cursor}", "-o", "cat").stdout


def journal_cursor(ns: SystemdNamespace) -> str:
    out = ns.journalctl("-n", "1", "--show-cursor", "-q").stdout
    m = re.search(r"-- cursor: (\S+)", out)
    return m.group(1) if m else ""


def run_install_sh(ns: SystemdNamespace, src: Path, *args: str, user: str | None = None,
                   hide_sudo: bool = False) -> subprocess.CompletedProcess:
    script = f"cd {src} && {INSTALL} {' '.join(args)}"
    argv = ["sh", "-c", script] if user is None else ["runuser", "-u", user, "--", "sh", "-c", script]
    if hide_sudo:  # a root shell on a host without sudo (inside the namespace's /usr overlay only)
        ns.run(["sh", "-c", "if [ -e /usr/bin/sudo ]; then mv /usr/bin/sudo /usr/bin/sudo.hidden; fi"], check=True)
    try:
        return ns.run(argv, timeout=900)
    finally:
        if hide_sudo:
            ns.run(["sh", "-c", "if [ -e /usr/bin/sudo.hidden ]; then mv /usr/bin/sudo.hidden /usr/bin/sudo; fi"])


@dataclass
class Hook:
    directory: Path
    token: str

    def requests(self, event: str = "arrived") -> list[dict]:
        log = self.directory / "requests.jsonl"
        if not log.exists():
            return []
        return [r for r in map(json.loads, log.read_text().splitlines()) if r["event"] == event]

    def for_alert(self, alert: str, event: str = "arrived") -> list[dict]:
        return [r for r in self.requests(event) if alert in json.dumps(r["body"])]

    def delay(self, seconds: float) -> None:
        (self.directory / "delay").write_text(str(seconds))


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ns(request: pytest.FixtureRequest):
    booted = boot("install-sh")  # skips (before building wheels) where the namespace is refused
    try:
        fresh_host(booted)
        offline_pip(booted, request.getfixturevalue("wheelhouse"))
        yield booted
    finally:
        booted.stop()


NO_SYSTEMD = f"mount -t tmpfs tmpfs /run && cd \"$0\" && exec {INSTALL} \"$@\""


@pytest.fixture(scope="module")
def without_systemd(ns: SystemdNamespace, source_tree: Path) -> str:
    """The first install.sh run, on "a host without systemd": a mount namespace whose /run is empty (no
    /run/systemd/system). It runs the agent in the foreground, which the fixture stops once it answers."""
    log = ns.shared / "no-systemd.log"
    with log.open("w") as out:
        proc = ns.popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", NO_SYSTEMD, str(source_tree)],
                        stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: ns.http_get("http://127.0.0.1:19842/metrics", timeout=2)[0] == 200 or proc.poll() is not None,
                 600, interval=1, what="the foreground agent")
        assert proc.poll() is None, log.read_text()[-3000:]
        # The agent runs as hostwarden (setpriv drops root); stop it by its pid, as a supervisor would.
        pids = ns.run(["pgrep", "-u", "hostwarden", "-f", "/opt/hostwarden/venv/bin/hostwarden run"]).stdout.split()
        assert len(pids) == 1, pids
        assert not ns.is_active(SERVICE)
        ns.run(["kill", "-TERM", pids[0]], check=True)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return log.read_text()


@pytest.fixture(scope="module")
def installed(ns: SystemdNamespace, source_tree: Path, without_systemd: str) -> subprocess.CompletedProcess:
    r = run_install_sh(ns, source_tree, hide_sudo=True)
    assert r.returncode == 0, f"install.sh failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def hook(ns: SystemdNamespace, installed) -> Hook:
    """The test configuration, the credential, the webhook receiver; the service restarted on them."""
    directory = ns.shared / "hook"
    directory.mkdir()
    token = "hw-credential-token-7f3a9c"
    server = ns.popen(["/usr/bin/python3", str(HOOKSERVER), str(HOOK_PORT), str(directory)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (directory / "ready").exists(), 30, what="the webhook receiver")
        ns.run(["install", "-d", "-m", "0700", "/etc/hostwarden/credentials"], check=True)
        write(ns, "/etc/hostwarden/credentials/hook-token", token + "\n", "0600")
        write(ns, "/etc/hostwarden/test-rules/always.yaml",
              rule_file(("SystemdTestLocal", {}), ("SystemdTestHook", {"sink": "hook"})), "0644")
        write(ns, "/etc/hostwarden/hostwarden.yaml", TEST_CONFIG, "0640")
        ns.run(["chgrp", "hostwarden", "/etc/hostwarden/hostwarden.yaml"], check=True)
        write(ns, f"/etc/systemd/system/{SERVICE}.d/10-test-credential.conf",
              "[Service]\nLoadCredential=hook-token:/etc/hostwarden/credentials/hook-token\n")
        ns.systemctl("daemon-reload", check=True)
        r = ns.systemctl("restart", SERVICE)
        assert r.returncode == 0, f"{r.stderr}\n{ns.journalctl('-u', SERVICE, '-n', '40').stdout}"
        yield Hook(directory, token)
    finally:
        server.terminate()
        server.wait(10)


# -- 1. no systemd -------------------------------------------------------------------------------------------
def test_without_systemd_install_sh_creates_etc_and_runs_the_agent_as_hostwarden(ns: SystemdNamespace,
                                                                                  without_systemd: str):
    assert "hostwarden 0.2.0 installed in /opt/hostwarden/venv" in without_systemd
    assert "starting the agent in the foreground as user hostwarden" in without_systemd
    for path in ("/etc/hostwarden/hostwarden.yaml", "/etc/hostwarden/rules/host.yaml"):
        assert ns.run(["test", "-f", path]).returncode == 0, path
    assert ns.run(["stat", "-c", "%U", "/var/lib/hostwarden"]).stdout.strip() == "hostwarden"
    assert ns.run(["readlink", "/usr/local/bin/hostwarden"]).stdout.strip() == "/opt/hostwarden/venv/bin/hostwarden"


# -- 2. install as root, no sudo -----------------------------------------------------------------------------
def test_install_sh_as_root_without_sudo_brings_the_service_up(ns: SystemdNamespace, installed):
    assert "re-running with sudo" not in installed.stdout
    assert "hostwarden 0.2.0 upgraded in /opt/hostwarden/venv" in installed.stdout
    props = ns.show(SERVICE, "ActiveState", "SubState", "Type", "StatusText", "UnitFileState", "NRestarts")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    assert props["Type"] == "notify" and props["UnitFileState"] == "enabled", props
    assert "collectors" in props["StatusText"], props  # STATUS= from the agent, sent with READY=1
    text = scrape(ns)
    assert metric(text, "hostwarden_build_info") == 1
    assert metric(text, "hostwarden_config_last_reload_successful") == 1
    # The venv comes from the system interpreter and the service user can run it.
    cfg = ns.run(["cat", "/opt/hostwarden/venv/pyvenv.cfg"], check=True).stdout
    assert re.search(r"^home = /usr/bin$", cfg, re.M), cfg
    assert ns.run(["readlink", "/usr/local/bin/hostwarden"]).stdout.strip() == "/opt/hostwarden/venv/bin/hostwarden"
    assert as_user(ns, "hostwarden", ["/usr/local/bin/hostwarden", "--version"], check=True).stdout.startswith(
        "hostwarden ")
    assert ns.run(["test", "-f", "/etc/hostwarden/hostwarden.yaml"]).returncode == 0


# -- 3. the service under systemd ----------------------------------------------------------------------------
def test_load_credential_delivers_the_webhook_token(ns: SystemdNamespace, hook: Hook):
    assert ns.wait_active(SERVICE, 60)
    sent = wait_for(lambda: hook.for_alert("SystemdTestHook"), 60, what="the webhook delivery")
    assert sent[0]["headers"].get("Authorization") == f"Bearer {hook.token}"
    # Only systemd could read the source file: the service user cannot, the service got it as a credential.
    assert as_user(ns, "hostwarden", ["cat", "/etc/hostwarden/credentials/hook-token"]).returncode != 0
    env = ns.run(["sh", "-c", f"tr '\\0' '\\n' < /proc/{main_pid(ns)}/environ"], check=True).stdout
    assert "CREDENTIALS_DIRECTORY=/run/credentials/hostwarden.service" in env
    assert hook.token not in ns.journalctl("-u", SERVICE, "-o", "cat").stdout


def test_reload_applies_a_new_rule_in_the_same_process(ns: SystemdNamespace, hook: Hook):
    pid = main_pid(ns)
    write(ns, "/etc/hostwarden/test-rules/reload.yaml", rule_file(("SystemdTestReloaded", {})))
    cursor = journal_cursor(ns)
    ns.systemctl("reload", SERVICE, check=True)
    wait_for(lambda: metric(scrape(ns), "ALERTS", 'alertname="SystemdTestReloaded"'), 30,
             what="the reloaded rule to fire")
    assert main_pid(ns) == pid and ns.is_active(SERVICE)
    assert metric(scrape(ns), "hostwarden_config_last_reload_successful") == 1
    assert "configuration reloaded" in journal_since(ns, cursor)


def test_reload_with_a_broken_config_keeps_the_old_one_and_says_so(ns: SystemdNamespace, hook: Hook):
    pid = main_pid(ns)
    cursor = journal_cursor(ns)
    write(ns, "/etc/hostwarden/hostwarden.yaml", TEST_CONFIG + "bogus_section: 1\n", "0640")
    try:
        ns.systemctl("reload", SERVICE, check=True)
        wait_for(lambda: metric(scrape(ns), "hostwarden_config_last_reload_successful") == 0, 30,
                 what="the failed reload to show")
        assert ns.is_active(SERVICE) and main_pid(ns) == pid
        text = scrape(ns)
        assert metric(text, "ALERTS", 'alertname="SystemdTestReloaded"'), "the running rules were dropped"
        log = wait_for(lambda: (lambda j: j if "keeping the running configuration" in j else "")(
            journal_since(ns, cursor)), 15, what="the journal line")
        assert re.search(r"hostwarden\.yaml:\d+:\d+: .*bogus_section", log), log
    finally:
        write(ns, "/etc/hostwarden/hostwarden.yaml", TEST_CONFIG, "0640")
        ns.systemctl("reload", SERVICE, check=True)
    wait_for(lambda: metric(scrape(ns), "hostwarden_config_last_reload_successful") == 1, 30,
             what="the good config to reload")


def test_journal_priority_matches_each_lines_level(ns: SystemdNamespace, hook: Hook):
    entries = [e for e in ns.journal_json("-u", SERVICE) if e.get("SYSLOG_IDENTIFIER") == "hostwarden"]
    seen: dict[str, int] = {}
    for e in entries:
        message = e["MESSAGE"] if isinstance(e["MESSAGE"], str) else bytes(e["MESSAGE"]).decode()
        m = re.match(r"level=(\w+) ", message)
        assert m, f"not a logfmt line (or a <N> prefix leaked): {message!r}"
        assert e["PRIORITY"] == LEVEL_PRIORITY[m.group(1)], (e["PRIORITY"], message)
        seen[m.group(1)] = seen.get(m.group(1), 0) + 1
    assert seen.get("info") and seen.get("error"), seen  # the broken reload above logged errors


def test_sandbox_allows_writes_only_in_the_state_directory(ns: SystemdNamespace, hook: Hook):
    pid = main_pid(ns)
    status = ns.run(["cat", f"/proc/{pid}/status"], check=True).stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M) and re.search(r"^Seccomp:\s+2$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^CapBnd:\s+0+$", status, re.M)
    uid = ns.run(["id", "-u", "hostwarden"], check=True).stdout.strip()
    gid = ns.run(["id", "-g", "hostwarden"], check=True).stdout.strip()

    def write_in_service_namespace(path: str, *, as_root: bool) -> subprocess.CompletedProcess:
        ids = [] if as_root else ["-S", uid, "-G", gid]
        return ns.run(["nsenter", "-t", str(pid), "-m", *ids, "--", "sh", "-c", f"echo x > {path}"])

    # Even root, in the service's mount namespace, meets read-only mounts everywhere else.
    for path in ("/etc/hostwarden/probe", "/opt/hostwarden/probe", "/usr/local/bin/probe", "/var/lib/probe",
                 "/var/log/probe", "/home/probe", "/root/probe"):
        r = write_in_service_namespace(path, as_root=True)
        assert r.returncode != 0 and "Read-only file system" in r.stderr, (path, r.stderr)
    ok = write_in_service_namespace("/var/lib/hostwarden/probe", as_root=False)
    assert ok.returncode == 0, ok.stderr
    ns.run(["rm", "-f", "/var/lib/hostwarden/probe"])


def test_stop_drains_the_in_flight_delivery_within_timeout_stop_sec(ns: SystemdNamespace, hook: Hook):
    timeout_stop = float(ns.show(SERVICE, "TimeoutStopUSec")["TimeoutStopUSec"].rstrip("s"))
    hook.delay(4)
    try:
        write(ns, "/etc/hostwarden/test-rules/drain.yaml", rule_file(("SystemdTestDrain", {"sink": "hook"})))
        ns.systemctl("reload", SERVICE, check=True)
        arrived = wait_for(lambda: hook.for_alert("SystemdTestDrain"), 60, interval=0.05,
                           what="the delivery to be in flight")
        assert not hook.for_alert("SystemdTestDrain", "answered")
        t0 = time.time()
        ns.systemctl("stop", SERVICE, check=True, timeout=timeout_stop + 30)
        stopped = time.time() - t0
        print(f"stop: {stopped:.1f} s with a delivery in flight (TimeoutStopSec={timeout_stop:.0f}s)")
    finally:
        hook.delay(0)
    answered = hook.for_alert("SystemdTestDrain", "answered")
    assert answered, "the agent exited before the in-flight delivery was answered"
    assert answered[0]["t"] - arrived[0]["t"] >= 3.9
    assert stopped < timeout_stop, f"stop took {stopped:.1f} s (TimeoutStopSec {timeout_stop:.0f} s)"
    props = ns.show(SERVICE, "Result", "ExecMainStatus", "ActiveState")
    assert props == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}, props
    outbox = json.loads(cli(ns, "tickets", "outbox", "--format", "json").stdout)
    assert not [r for r in outbox if r["status"] == "pending"], outbox
    ns.systemctl("start", SERVICE, check=True)


def sigstop_until_restarted(ns: SystemdNamespace) -> float:
    """SIGSTOP the main process; the seconds until systemd runs a new one (asserting the watchdog did it)."""
    watchdog = float(ns.show(SERVICE, "WatchdogUSec")["WatchdogUSec"].rstrip("s"))
    before = ns.show(SERVICE, "MainPID", "NRestarts")
    pid = int(before["MainPID"])
    cursor = journal_cursor(ns)
    ns.run(["kill", "-STOP", str(pid)], check=True)
    t0 = time.monotonic()
    new_pid = wait_for(lambda: (lambda p: p if p not in (0, pid) else 0)(main_pid(ns)), 4 * watchdog,
                       interval=0.1, what="a new main process")
    restarted_after = time.monotonic() - t0
    print(f"watchdog: SIGSTOP to a new main process in {restarted_after:.1f} s (WatchdogSec={watchdog:.0f}s)")
    assert restarted_after <= 2 * watchdog, f"restarted after {restarted_after:.1f} s (WatchdogSec={watchdog}s)"
    assert ns.wait_active(SERVICE, 60)
    after = ns.show(SERVICE, "MainPID", "NRestarts")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)
    assert int(after["MainPID"]) == new_pid
    assert "Watchdog timeout" in ns.journalctl("-u", SERVICE, f"--after-cursor={cursor}", "-o", "cat").stdout
    return watchdog


def test_watchdog_kills_a_stopped_agent_and_systemd_restarts_it(ns: SystemdNamespace, hook: Hook):
    """With a drop-in lowering WatchdogSec to 3 s (RestartSec 1 s) to keep the test short."""
    dropin = f"/etc/systemd/system/{SERVICE}.d/20-test-watchdog.conf"
    write(ns, dropin, "[Service]\nWatchdogSec=3s\nRestartSec=1s\n")
    ns.systemctl("daemon-reload", check=True)
    ns.systemctl("restart", SERVICE, check=True)
    try:
        assert sigstop_until_restarted(ns) == 3
    finally:
        ns.run(["rm", "-f", dropin])
        ns.systemctl("daemon-reload")
        ns.systemctl("restart", SERVICE)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("HOSTWARDEN_SLOW") != "1", reason="~40 s; runs with HOSTWARDEN_SLOW=1")
def test_watchdog_with_the_shipped_unit_values_restarts_within_twice_watchdog_sec(ns: SystemdNamespace,
                                                                                  hook: Hook):
    """The shipped WatchdogSec=30s and RestartSec=5s (no drop-in): a new process within 60 s."""
    assert sigstop_until_restarted(ns) == 30


# -- 4. upgrade as a user with sudo ---------------------------------------------------------------------------
def test_second_run_as_a_sudo_user_upgrades_in_place_keeping_config_state_and_tickets(
        ns: SystemdNamespace, hook: Hook, source_tree: Path):
    if ns.run(["sh", "-c", "command -v sudo"]).returncode != 0:
        pytest.skip("sudo is not installed (tests/debian-packages.txt)")
    ns.run(["useradd", "--no-create-home", "--shell", "/bin/sh", "admin"], check=True)
    write(ns, "/etc/sudoers.d/admin", "admin ALL=(ALL:ALL) NOPASSWD: ALL\n", "0440")
    ns.run(["sh", "-c", "echo '# local edit: kept by upgrades' >> /etc/hostwarden/hostwarden.yaml"], check=True)
    tickets = wait_for(lambda: [t for t in json.loads(cli(ns, "tickets", "list", "--format", "json").stdout or "[]")
                                if "SystemdTestLocal" in json.dumps(t)], 30, what="a local ticket")
    state_db = ns.run(["sh", "-c", "ls /var/lib/hostwarden/*.db"], check=True).stdout.split()
    pid = main_pid(ns)

    r = run_install_sh(ns, source_tree, user="admin")
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "re-running with sudo" in r.stdout and "upgraded in /opt/hostwarden/venv" in r.stdout, r.stdout
    assert ns.is_active(SERVICE) and main_pid(ns) not in (0, pid)
    assert "# local edit: kept by upgrades" in ns.run(["cat", "/etc/hostwarden/hostwarden.yaml"]).stdout
    assert ns.run(["test", "-f", f"/etc/systemd/system/{SERVICE}.d/10-test-credential.conf"]).returncode == 0
    assert ns.run(["sh", "-c", "ls /var/lib/hostwarden/*.db"], check=True).stdout.split() == state_db
    after = json.loads(cli(ns, "tickets", "list", "--format", "json").stdout)
    ids = {t["id"] for t in after}
    assert {t["id"] for t in tickets} <= ids, (tickets, after)
    assert ns.run(["stat", "-c", "%U", "/opt/hostwarden/venv/bin/python3"]).stdout.strip() == "root"
    assert metric(scrape(ns), "hostwarden_build_info") == 1


# -- 5. uninstall, purge --------------------------------------------------------------------------------------
def test_uninstall_keeps_config_state_and_user_and_purge_removes_them(ns: SystemdNamespace, hook: Hook,
                                                                        source_tree: Path):
    r = run_install_sh(ns, source_tree, "--uninstall")
    assert r.returncode == 0, r.stderr
    assert not ns.is_active(SERVICE)
    assert ns.systemctl("cat", SERVICE).returncode != 0
    for gone in ("/opt/hostwarden", "/usr/local/bin/hostwarden", f"/etc/systemd/system/{SERVICE}",
                 f"/etc/systemd/system/multi-user.target.wants/{SERVICE}"):
        assert ns.run(["test", "-e", gone]).returncode != 0, gone
    assert "# local edit" in ns.run(["cat", "/etc/hostwarden/hostwarden.yaml"], check=True).stdout
    assert ns.run(["sh", "-c", "ls /var/lib/hostwarden/*.db"]).returncode == 0
    assert ns.run(["id", "hostwarden"]).returncode == 0

    r = run_install_sh(ns, source_tree, "--uninstall", "--purge")
    assert r.returncode == 0, r.stderr
    for gone in ("/etc/hostwarden", "/var/lib/hostwarden"):
        assert ns.run(["test", "-e", gone]).returncode != 0, gone
    assert ns.run(["id", "hostwarden"]).returncode != 0
