"""A real systemd as PID 1 of a new PID + mount (+ cgroup, + network) namespace, for tests.

    from tests.support.systemdns import SystemdNamespace, systemd_ns   # systemd_ns: a pytest fixture

    with SystemdNamespace(name="mytest") as ns:          # boots; waits for running/degraded (<= 60 s)
        ns.run(["/bin/sh", "-c", "echo hi"])            # CompletedProcess (text, captured), inside the namespace
        ns.systemctl("start", "foo.service")            # `systemctl --no-pager ARGS` inside
        ns.journalctl("-u", "foo", "-o", "json")        # `journalctl --no-pager ARGS` inside
        ns.journal_json("-u", "foo")                    # the same, parsed: one dict per entry
        ns.is_active("foo.service")                     # bool
        ns.wait_active("foo.service", timeout=30)       # True once active; False at the timeout
        ns.show("foo.service", "MainPID", "NRestarts")  # {"MainPID": "123", "NRestarts": "0"}
        ns.http_get("http://127.0.0.1:19842/metrics")   # (status, body) fetched from inside the namespace
        proc = ns.popen(["python3", "server.py"])       # a background process inside (killed with nsenter)
        ns.shared                                       # a directory with the same path inside and outside
    # leaving: `systemctl poweroff --force` through nsenter, SIGKILL of PID 1 if that does not end it
    # within 20 s, then the cgroup and the overlay directories are removed.

Stable API (other tests rely on it): the constructor's keyword arguments, `start()`, `stop()`, `pid`,
`shared`, `run()`, `systemctl()`, `journalctl()`, `journal_json()`, `is_active()`, `wait_active()`, `show()`,
`http_get()`, `popen()`, `boot_log()`, `refusal_reason()`, and the `systemd_ns` fixture (module-scoped;
skips only where the kernel or the user may not create the namespaces, with unshare's own error as the
reason). Make the fixture available to a test directory with
`from tests.support.systemdns import systemd_ns  # noqa: F401` in its conftest.py. tests/systemd/conftest.py adds what
installing hostwarden inside needs (an offline wheelhouse, a fresh-clone copy, a clean host).

What the namespace is, exactly (the boot script is `_BOOT` below):
- `unshare --pid --fork --mount --mount-proc --cgroup --propagation private`, then inside: a tmpfs on
  `/run` and on `/tmp` (systemd-tmpfiles-setup's `D /tmp` would otherwise empty the host's /tmp), then
  `exec /lib/systemd/systemd --system --unit=basic.target`.
- cgroups: the boot shell first moves itself into a fresh cgroup v2 directory
  `<cgroup2 mount>/hostwarden-systemdns-<pid>` and then unshares the cgroup namespace, and mounts cgroup2
  on /sys/fs/cgroup inside: systemd manages only that subtree (unified mode), so two namespaces booted at
  once (two developers, two test sessions) never touch each other's units or the host's cgroups.
- `overlay=("/etc", "/opt", "/usr", "/var")` (the default): each directory gets an overlayfs whose upper
  layer lives in the state directory, so installing software inside (install.sh, dpkg/apt, useradd,
  /usr/local/bin links) changes nothing on the host; pass `overlay=()` to work on the host's files.
- `private_network=True` (the default): a new network namespace with only `lo` up, so 127.0.0.1 ports
  (19842, ...) do not collide with the host or another namespace; nothing inside can reach the internet
  (build virtualenvs/wheels before, on the host). `False` shares the host's network.
- All mounts are made shared (`mount --make-rshared /`, private to the namespace), as on a real host:
  systemd skips that when it detects a container (this host has /.dockerenv), and credentials
  (`LoadCredential=`) are mounted by a helper whose mount must propagate back.
- Masked for the namespace (kernel-global or pointless side effects): udev, remount-fs, sysctl,
  modules-load, binfmt, journal-flush (the journal stays volatile under /run/log/journal) and
  timers.target (no apt-daily etc.).
- Files shared with the namespace live in `shared` (default: `<repo>/build/systemdns/<name>-<pid>/shared`),
  outside /tmp and outside the overlaid trees, with the same path on both sides.
- If the test process dies without `stop()`, the boot shell (PDEATHSIG) and with it unshare and
  (`--kill-child=SIGKILL`) PID 1 are killed: no namespace outlives its test run.
- Commands run through `nsenter -t PID -m -p [-n] -- env -i PATH=... LANG=C.UTF-8 HOME=/root ARGV` with a
  clean environment plus `env=`; working directory `/`.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = "/lib/systemd/systemd"
DEFAULT_OVERLAY = ("/etc", "/opt", "/usr", "/var")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MASKED = ("systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
          "systemd-udev-trigger.service", "systemd-udev-settle.service", "systemd-remount-fs.service",
          "systemd-sysctl.service", "systemd-modules-load.service", "systemd-binfmt.service",
          "proc-sys-fs-binfmt_misc.automount", "systemd-journal-flush.service", "timers.target")

# $1 = cgroup directory to create and enter ("" = none), $2 = "1" for a private network,
# $3 = units to mask (space separated), then triples LOWER UPPER WORK, one per overlay.
_BOOT = r"""
set -e
if [ -n "$1" ]; then mkdir -p "$1"; echo $$ > "$1/cgroup.procs"; cg=--cgroup; else cg=; fi
net=; [ "$2" = 1 ] && net=--net
exec unshare --pid --fork --kill-child=SIGKILL --mount --mount-proc $cg $net --propagation private sh -c '
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
if [ -n "$1" ]; then mount -t cgroup2 cgroup2 /sys/fs/cgroup; fi
if [ "$2" = 1 ]; then ip link set lo up; fi
mkdir -p /run/systemd/system
for u in $3; do ln -sf /dev/null "/run/systemd/system/$u"; done
shift 3
while [ $# -ge 3 ]; do
    mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$1"
    shift 3
done
# Shared propagation, as systemd sets it up on a real host (it skips that when it thinks it is in a
# container): LoadCredential= and other per-unit mounts propagate back from its helper processes.
mount --make-rshared /
exec /lib/systemd/systemd --system --unit=basic.target
' boot "$@"
"""


def _die_with_parent() -> None:
    """In the boot shell (kept across its exec of unshare): SIGKILL when the test process dies, so a killed
    pytest leaves no namespace behind (unshare --kill-child then takes PID 1 and with it the namespace)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _cgroup2_base() -> Path | None:
    """The host's cgroup v2 mount (hybrid: /sys/fs/cgroup/unified; unified: /sys/fs/cgroup)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def _rmdir_tree(top: Path, timeout: float) -> bool:
    """rmdir a cgroup directory bottom-up (only empty cgroups go); True once it is gone."""
    deadline = time.monotonic() + timeout
    while top.exists():
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        try:
            for d in [*dirs, top]:
                d.rmdir()
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
    return True


def _reap_stale_cgroups(base: Path) -> None:
    """Empty cgroups of namespaces whose test process died without stop() (named after its pid)."""
    for d in base.glob("hostwarden-systemdns-*"):
        pid = d.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _rmdir_tree(d, timeout=0)


def refusal_reason() -> str | None:
    """Why this host cannot boot a namespaced systemd (None when it can): a missing binary, not root, or
    unshare's own error."""
    if not Path(SYSTEMD).exists():
        return f"{SYSTEMD} is missing (apt-get install systemd)"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (util-linux)"
    if os.geteuid() != 0:
        return "unshare --pid --mount needs root (run the tests as root, e.g. through ./test.sh)"
    try:
        probe = subprocess.run(["unshare", "--pid", "--fork", "--mount", "--cgroup", "--net",
                                "--propagation", "private", "true"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unshare refused: {e}"
    if probe.returncode != 0:
        return f"unshare refused: {probe.stderr.strip() or f'exit {probe.returncode}'}"
    return None


class SystemdNamespace:
    """systemd --system as PID 1 of new namespaces; see the module docstring for the API."""

    def __init__(self, *, name: str = "ns", workdir: Path | None = None,
                 overlay: Sequence[str] = DEFAULT_OVERLAY, private_network: bool = True,
                 boot_timeout: float = 60, keep: bool = False) -> None:
        self.name = name
        self.workdir = Path(workdir) if workdir else ROOT / "build" / "systemdns" / f"{name}-{os.getpid()}"
        self.shared = self.workdir / "shared"
        self.overlay = tuple(overlay)
        self.private_network = private_network
        self.boot_timeout = boot_timeout
        self.keep = keep
        self.pid = 0
        self._proc: subprocess.Popen | None = None
        self._cgroup: Path | None = None
        self._log = self.workdir / "boot.log"

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> SystemdNamespace:
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.shared.mkdir(parents=True)
        self.shared.chmod(0o755)
        layers: list[str] = []
        for lower in self.overlay:
            base = self.workdir / "overlay" / lower.strip("/").replace("/", "_")
            (base / "upper").mkdir(parents=True)
            (base / "work").mkdir()
            layers += [lower, str(base / "upper"), str(base / "work")]
        cg2 = _cgroup2_base()
        if cg2 is not None:
            _reap_stale_cgroups(cg2)
        self._cgroup = cg2 / f"hostwarden-systemdns-{os.getpid()}-{self.name}" if cg2 else None
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                ["sh", "-c", _BOOT, "boot", str(self._cgroup or ""), "1" if self.private_network else "0",
                 " ".join(MASKED), *layers],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}, preexec_fn=_die_with_parent)
        try:
            self.pid = self._find_pid1(deadline=time.monotonic() + 15)
            self._wait_running(deadline=time.monotonic() + self.boot_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _find_pid1(self, deadline: float) -> int:
        assert self._proc is not None
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"namespace boot failed (exit {self._proc.returncode}): {self.boot_log()}")
            try:
                kids = children.read_text().split()
                if kids and Path(f"/proc/{kids[0]}/comm").read_text().strip() == "systemd":
                    return int(kids[0])
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"systemd did not start within 15 s: {self.boot_log()}")

    def _wait_running(self, deadline: float) -> None:
        state = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"systemd exited during boot: {self.boot_log()}")
            r = self.run(["systemctl", "is-system-running"], timeout=10)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"systemd in the namespace is {state!r} after {self.boot_timeout:.0f} s; "
                           f"failed units: {self.systemctl('--failed', '--plain').stdout}")

    def boot_log(self) -> str:
        return self._log.read_text(errors="replace")[-4000:] if self._log.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        """Power the namespace off (`systemctl poweroff --force`), SIGKILL its PID 1 as the fallback."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if self.pid:
                try:
                    self.run(["systemctl", "poweroff", "--force"], timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in (self.pid, proc.pid):
                    try:
                        if pid:
                            os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait(10)
        self._proc = None
        self.pid = 0
        self._remove_cgroup()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _remove_cgroup(self) -> None:
        if self._cgroup is not None:
            _rmdir_tree(self._cgroup, timeout=5)

    def __enter__(self) -> SystemdNamespace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- commands inside ------------------------------------------------------------------------------
    def _argv(self, argv: Sequence[str], env: Mapping[str, str] | None, kill_child: bool = False) -> list[str]:
        if not self.pid:
            raise RuntimeError("the namespace is not running")
        ns = ["nsenter", "-t", str(self.pid), "-m", "-p", *(["-n"] if self.private_network else []), "--wd=/"]
        clean = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root", "SYSTEMD_PAGER": "", "TERM": "dumb",
                 **(env or {})}
        # nsenter forks the command (new PID namespace): with PDEATHSIG it gets SIGTERM when nsenter dies.
        reaper = ["setpriv", "--pdeathsig", "SIGTERM", "--"] if kill_child else []
        return [*ns, "--", *reaper, "env", "-i", *(f"{k}={v}" for k, v in clean.items()), *argv]

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60,
            check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        """Run `argv` inside (text mode, output captured). `check=True` raises with stdout/stderr shown."""
        r = subprocess.run(self._argv(argv, env), capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {r.returncode}\nstdout: {r.stdout[-3000:]}\n"
                                 f"stderr: {r.stderr[-3000:]}")
        return r

    def popen(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """Start `argv` inside in the background; terminating the returned process (nsenter) SIGTERMs the
        command (PDEATHSIG; cleared if the command changes its uid)."""
        return subprocess.Popen(self._argv(argv, env, kill_child=True), **kwargs)

    def systemctl(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def journalctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run(["journalctl", "--no-pager", *args], timeout=timeout)

    def journal_json(self, *args: str) -> list[dict]:
        """`journalctl -o json ARGS` parsed, one dict per entry."""
        out = self.journalctl("-o", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def is_active(self, unit: str) -> bool:
        return self.systemctl("is-active", "--quiet", unit).returncode == 0

    def wait_active(self, unit: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_active(unit):
                return True
            time.sleep(0.2)
        return False

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def http_get(self, url: str, *, headers: Mapping[str, str] | None = None,
                 timeout: float = 10) -> tuple[int, str]:
        """GET `url` from inside the namespace with /usr/bin/python3: (status, body); (0, error) when no
        connection could be made."""
        code = ("import json, sys, urllib.request, urllib.error\n"
                "req = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))\n"
                "try:\n"
                "    r = urllib.request.urlopen(req, timeout=float(sys.argv[3])); s, b = r.status, r.read()\n"
                "except urllib.error.HTTPError as e:\n"
                "    s, b = e.code, e.read()\n"
                "except OSError as e:\n"
                "    s, b = 0, str(e).encode()\n"
                "sys.stdout.write(str(s) + '\\n' + b.decode('utf-8', 'replace'))\n")
        r = self.run(["/usr/bin/python3", "-c", code, url, json.dumps(dict(headers or {})), str(timeout)],
                     timeout=timeout + 30)
        status, _, body = r.stdout.partition("\n")
        return (int(status) if status.isdigit() else 0), (body if status.isdigit() else r.stderr)


@pytest.fixture(scope="module")
def systemd_ns(request: pytest.FixtureRequest) -> Iterator[SystemdNamespace]:
    """One booted namespace per test module (defaults above); skipped only where unshare is refused."""
    reason = refusal_reason()
    if reason is not None:
        pytest.skip(f"no namespaced systemd here: {reason}")
    name = Path(str(request.module.__name__)).name.rsplit(".", 1)[-1]
    ns = SystemdNamespace(name=name)
    ns.start()
    try:
        yield ns
    finally:
        ns.stop()
