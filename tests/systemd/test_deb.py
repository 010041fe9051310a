"""`make deb` and the package's life under a real systemd: apt-get install, upgrade, purge.

Two packages are built from the same sources (a fresh-clone copy) with `make deb`: the version of
pyproject.toml and a `+test2` version repackaging the same virtualenv (DEB_REUSE_VENV=1; gzip instead of xz
to save build time). The namespace (tests/support/systemdns.py) starts with no hostwarden at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.systemdns import SystemdNamespace
from tests.systemd.conftest import (
    WORK,
    allow_service_starts,
    boot,
    fresh_host,
    main_pid,
    metric,
    scrape,
    wait_for,
)

pytestmark = pytest.mark.integration

SERVICE = "hostwarden.service"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def project_version(source: Path) -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', (source / "pyproject.toml").read_text(), re.M)
    assert m
    return m.group(1)


@pytest.fixture(scope="module")
def debs(source_tree: Path, wheelhouse: Path) -> tuple[Path, Path]:
    out = WORK / "debs"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    version = project_version(source_tree)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "DEB_OUTDIR": str(out),
           "DEB_COMPRESS": "gzip"}
    built = []
    for extra in ({}, {"DEB_VERSION": f"{version}+test2", "DEB_REUSE_VENV": "1"}):
        r = subprocess.run(["make", "-s", "deb"], cwd=source_tree, env={**env, **extra}, capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, f"make deb failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        deb = out / f"hostwarden_{extra.get('DEB_VERSION', version)}_{arch}.deb"
        assert r.stdout.strip().endswith(str(deb)) and deb.is_file(), r.stdout
        built.append(deb)
    return built[0], built[1]


@pytest.fixture(scope="module")
def ns():
    booted = boot("deb")
    try:
        fresh_host(booted)
        allow_service_starts(booted)
        yield booted
    finally:
        booted.stop()


def apt(ns: SystemdNamespace, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    script = ("cd \"$1\" && shift; " if cwd else "shift; ") + 'exec apt-get -y "$@"'
    return ns.run(["sh", "-c", script, "sh", str(cwd or "/"), *args], env=APT_ENV, timeout=600)


def test_make_deb_relocates_the_virtualenv_and_declares_conffiles(debs: tuple[Path, Path], tmp_path: Path,
                                                                   source_tree: Path):
    first, _ = debs
    info = subprocess.run(["dpkg-deb", "-f", str(first)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Depends: python3\.\d+, libc6 \(>= 2\.\d+\), systemd \| ", info, re.M), info
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(first)], capture_output=True, check=True).stdout
    assert b"conffiles" in conffiles
    listing = subprocess.run(["dpkg-deb", "-c", str(first)], capture_output=True, text=True, check=True).stdout
    for path in ("./lib/systemd/system/hostwarden.service", "./usr/lib/sysusers.d/hostwarden.conf",
                 "./etc/hostwarden/hostwarden.yaml", "./opt/hostwarden/venv/bin/hostwarden",
                 "./usr/bin/hostwarden -> /opt/hostwarden/venv/bin/hostwarden", "./usr/share/doc/hostwarden/copyright"):
        assert path in listing, path
    assert "__pycache__" not in listing and ".pyc" not in listing
    subprocess.run(["dpkg-deb", "-x", str(first), str(tmp_path)], check=True)
    venv = tmp_path / "opt/hostwarden/venv"
    assert (venv / "bin/hostwarden").read_text().splitlines()[0].startswith("#!/opt/hostwarden/venv/bin/python3")
    assert "command = /usr/bin/python3." in (venv / "pyvenv.cfg").read_text()
    assert os.readlink(venv / "bin/python3").startswith("python3.") or os.readlink(venv / "bin/python3").startswith(
        "/usr/bin/python3")
    staging = str(source_tree / "build" / "deb" / "root")
    stray = subprocess.run(["grep", "-rl", staging, str(tmp_path)], capture_output=True, text=True).stdout
    assert stray == "", f"staging paths left in: {stray}"


def test_deb_refuses_to_install_over_an_install_sh_virtualenv(ns: SystemdNamespace, debs):
    ns.run(["sh", "-c", "mkdir -p /opt/hostwarden/venv && touch /opt/hostwarden/venv/pyvenv.cfg"], check=True)
    try:
        r = apt(ns, "install", f"./{debs[0].name}", cwd=debs[0].parent)
        assert r.returncode != 0
        assert "install.sh --uninstall" in r.stdout + r.stderr
    finally:
        ns.run(["rm", "-rf", "/opt/hostwarden"])
        ns.run(["dpkg", "--purge", "hostwarden"], timeout=120)


def test_apt_get_install_deb_starts_the_service(ns: SystemdNamespace, debs):
    r = apt(ns, "install", f"./{debs[0].name}", cwd=debs[0].parent)
    assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    props = ns.show(SERVICE, "ActiveState", "SubState", "Type", "StatusText", "UnitFileState", "FragmentPath")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    assert props["Type"] == "notify" and props["UnitFileState"] == "enabled", props
    assert props["FragmentPath"] == "/lib/systemd/system/hostwarden.service"
    assert "collectors" in props["StatusText"]
    assert metric(scrape(ns), "hostwarden_build_info") == 1
    # The user came from sysusers.d; the state directory from StateDirectory=.
    passwd = ns.run(["getent", "passwd", "hostwarden"], check=True).stdout.strip().split(":")
    assert passwd[5:] == ["/var/lib/hostwarden", "/usr/sbin/nologin"], passwd
    assert ns.run(["stat", "-c", "%U %a", "/var/lib/hostwarden"]).stdout.split() == ["hostwarden", "750"]
    conffiles = ns.run(["dpkg-query", "-W", "-f=${Conffiles}", "hostwarden"], check=True).stdout
    assert "/etc/hostwarden/hostwarden.yaml" in conffiles
    assert ns.run(["runuser", "-u", "hostwarden", "--", "hostwarden", "--version"], check=True).stdout.startswith(
        "hostwarden ")
    compiled = ns.run(["sh", "-c", "find /opt/hostwarden/venv -name '*.pyc' | head -1"]).stdout
    assert compiled.strip(), "postinst did not byte-compile the virtualenv"


def test_security_exposure_of_the_running_unit_is_ok(ns: SystemdNamespace, debs):
    r = ns.run(["systemd-analyze", "security", "--no-pager", SERVICE])
    m = re.search(r"Overall exposure level for hostwarden\.service: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    print(f"systemd-analyze security hostwarden: {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= 2.0 and m.group(2) == "OK", m.group(0)


PK_UNIT = """[Unit]
Description=hostwarden polkit test: a service the unprivileged agent may restart only if polkit says so
[Service]
ExecStart=/bin/sleep infinity
"""
PK_CHECKS = "checks:\n" + "".join(
    f"  - name: {name}\n    type: systemd\n    unit: e2e-{name}.service\n    interval: 1s\n    timeout: 1s\n"
    f"    remediate:\n      after: 1s\n      verify_within: 5s\n      max: {n} within 10m\n"
    f"      actions:\n        - restart_unit: e2e-{name}.service\n" for name, n in (("pk", 3), ("pk-other", 2)))
PK_RULES = """groups:
  - name: e2e-pk
    interval: 1s
    rules:
      - alert: PkDown
        expr: hostwarden_check_up{check=~"pk|pk-other"} == 0
        labels: {severity: critical}
"""


def documented_polkit_rule(unit: str) -> str:
    """The polkit rule docs/remediation.md tells operators to write, for `unit`."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "remediation.md").read_text()
    m = re.search(r"```js\n(.*?)```", text, re.S)
    assert m and '"nginx.service"' in m.group(1), "docs/remediation.md has no polkit rule for nginx.service"
    return "\n".join(line.strip() for line in m.group(1).replace('"nginx.service"', f'"{unit}"').splitlines())


def test_unprivileged_agent_restarts_only_the_unit_the_documented_polkit_rule_grants(ns: SystemdNamespace, debs):
    """The shipped unit runs as `hostwarden` with no capabilities, so systemd asks polkit. With the rule
    docs/remediation.md gives for e2e-pk.service, that unit is restarted and its ticket says "resolved after
    remediation"; e2e-pk-other.service, not in the rule, is refused by polkit: the refusal and the escalation are
    on its ticket at once (not after tickets.update_interval), and it stays down."""
    for name in ("pk", "pk-other"):
        ns.run(["sh", "-c", f"cat > /etc/systemd/system/e2e-{name}.service"], input=PK_UNIT, check=True)
    ns.systemctl("daemon-reload", check=True)
    ns.systemctl("start", "e2e-pk.service", "e2e-pk-other.service", check=True)
    ns.run(["sh", "-c", "mkdir -p /etc/polkit-1/rules.d && cat > /etc/polkit-1/rules.d/50-hostwarden.rules"],
           input=documented_polkit_rule("e2e-pk.service"), check=True)
    ns.run(["sh", "-c", "cat > /etc/hostwarden/rules/e2e-pk.yaml"], input=PK_RULES, check=True)
    ns.run(["sed", "-i", "s/^checks: \\[\\]$/# checks: [] (replaced by the polkit test)/",
            "/etc/hostwarden/hostwarden.yaml"], check=True)
    ns.run(["sh", "-c", "cat >> /etc/hostwarden/hostwarden.yaml"], input=PK_CHECKS, check=True)
    ns.systemctl("reload", SERVICE, check=True)

    def timeline(check: str) -> str:
        r = ns.run(["hostwarden", "tickets", "list", "--format", "json", "--config",
                    "/etc/hostwarden/hostwarden.yaml"])
        ids = [t["id"] for t in json.loads(r.stdout or "[]") if t["labels"].get("check") == check] \
            if r.returncode == 0 else []
        if not ids:
            return ""
        r = ns.run(["hostwarden", "tickets", "show", str(ids[0]), "--format", "json", "--config",
                    "/etc/hostwarden/hostwarden.yaml"])
        return "\n".join(e["text"] for e in json.loads(r.stdout)["events"]) if r.returncode == 0 else ""

    def waited(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
        try:
            return wait_for(predicate, timeout, what=what)
        except AssertionError as e:
            journal = ns.journalctl("-u", SERVICE, "-o", "cat", "-n", "40").stdout
            raise AssertionError(f"{e}\npk:\n{timeline('pk')}\npk-other:\n{timeline('pk-other')}\n"
                                 f"agent journal:\n{journal}") from None

    try:
        waited(lambda: all(metric(scrape(ns), "hostwarden_check_up", f'check="{c}"') == 1
                           for c in ("pk", "pk-other")), 30, what="both checks up")
        pid_before = main_pid(ns, "e2e-pk.service")
        ns.systemctl("kill", "--signal=KILL", "e2e-pk.service", "e2e-pk-other.service", check=True)
        body = waited(lambda: "Cause: resolved after remediation" in (t := timeline("pk")) and t, 60,
                      what="e2e-pk.service restarted with polkit's consent, its alert resolved")
        assert "restart_unit e2e-pk.service: ok after" in body, body
        assert ns.is_active("e2e-pk.service") and main_pid(ns, "e2e-pk.service") not in (0, pid_before)
        other = waited(lambda: "Remediation exhausted" in (t := timeline("pk-other")) and t, 60,
                       what="e2e-pk-other.service refused by polkit, remediation exhausted")
        assert other.count("restart_unit e2e-pk-other.service: failed: D-Bus error") == 2, other
        assert "priority P2 → P1" in other, other
        assert not ns.is_active("e2e-pk-other.service")
        print("polkit: " + " | ".join(line for line in (body + "\n" + other).splitlines() if "restart_unit" in line))
    finally:
        ns.run(["sh", "-c", "rm -f /etc/hostwarden/rules/e2e-pk.yaml /etc/polkit-1/rules.d/50-hostwarden.rules; "
                "sed -i '/^checks:$/,$d; s/^# checks: \\[\\] (replaced by the polkit test)$/checks: []/' "
                "/etc/hostwarden/hostwarden.yaml"])
        ns.systemctl("reload", SERVICE)
        ns.systemctl("stop", "e2e-pk.service", "e2e-pk-other.service")


def test_apt_get_upgrade_restarts_the_agent_and_keeps_conffile_edits_and_state(ns: SystemdNamespace, debs):
    ns.run(["sh", "-c", "echo '# local edit: kept by upgrades' >> /etc/hostwarden/hostwarden.yaml"], check=True)
    ns.run(["runuser", "-u", "hostwarden", "--", "sh", "-c", "echo kept > /var/lib/hostwarden/marker"], check=True)
    pid = main_pid(ns)
    r = apt(ns, "install", f"./{debs[1].name}", cwd=debs[1].parent)
    assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert "Unpacking hostwarden" in r.stdout and "over (" in r.stdout
    version = ns.run(["dpkg-query", "-W", "-f=${Version}", "hostwarden"], check=True).stdout
    assert version.endswith("+test2")
    assert ns.wait_active(SERVICE, 60) and main_pid(ns) not in (0, pid)
    assert "# local edit: kept by upgrades" in ns.run(["cat", "/etc/hostwarden/hostwarden.yaml"]).stdout
    assert ns.run(["cat", "/var/lib/hostwarden/marker"]).stdout == "kept\n"
    assert metric(scrape(ns), "hostwarden_build_info") == 1


def test_apt_get_purge_removes_program_config_and_state(ns: SystemdNamespace, debs):
    r = apt(ns, "purge", "hostwarden")
    assert r.returncode == 0, r.stderr
    assert ns.show(SERVICE, "LoadState")["LoadState"] == "not-found"
    assert ns.run(["dpkg-query", "-W", "hostwarden"]).returncode != 0
    for gone in ("/opt/hostwarden", "/etc/hostwarden", "/var/lib/hostwarden", "/usr/bin/hostwarden",
                 f"/etc/systemd/system/multi-user.target.wants/{SERVICE}"):
        assert ns.run(["test", "-e", gone]).returncode != 0, gone
    assert ns.http_get("http://127.0.0.1:19842/metrics", timeout=2)[0] == 0
