from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostwarden.agent.core.samples import Sample
from hostwarden.agent.core.schema import Duration, Errors, Regex, build
from hostwarden.agent.core.yamlsrc import Loc
from hostwarden.collectors.filesystem import (
    TIMED_OUT,
    FilesystemCollector,
    FilesystemConfig,
    MountTable,
    StatRunner,
    parse_mountinfo,
)

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "proc" / "basic"
INCLUDED = {"/", "/boot", "/run", "/mnt/nfs", "/mnt/my disk", "/srv", "/media/ro-super"}


def fake_stat(blocks: int = 1000, bfree: int = 300, bavail: int = 250, files: int = 100, ffree: int = 25,
              frsize: int = 4096) -> os.statvfs_result:
    # (bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax)
    return os.statvfs_result((frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


def by_mount(samples: list[Sample]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for s in samples:
        labels = dict(s.labels)
        assert set(labels) == {"device", "fstype", "mountpoint"}
        out.setdefault(labels["mountpoint"], {})[s.name] = s.value
    return out


class Gate:
    """An injected statvfs: blocks on chosen paths until released, counts calls per path."""

    def __init__(self, blocked: set[str], *, errors: dict[str, int] | None = None,
                 delay: dict[str, float] | None = None) -> None:
        self.blocked = blocked
        self.errors = errors or {}
        self.delay = delay or {}
        self.release = threading.Event()
        self.calls: dict[str, int] = {}
        self.done: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, path: str) -> os.statvfs_result:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
        if path in self.blocked:
            self.release.wait(30)
        if path in self.delay:
            time.sleep(self.delay[path])
        with self.lock:
            self.done[path] = time.monotonic()
        if path in self.errors:
            raise OSError(self.errors[path], os.strerror(self.errors[path]), path)
        return fake_stat()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate(set())
    yield g
    g.release.set()  # never leave a worker blocked after the test


def test_filesystem_parse_mountinfo_unescapes_and_reads_ro_from_both_option_sets() -> None:
    mounts = parse_mountinfo(
        "1 0 8:1 / /mnt/a\\040b\\011c\\134d ro,relatime shared:1 - ext4 /dev/sd\\040x rw\n"
        "2 0 8:2 / /data rw,relatime - xfs /dev/sdb ro,attr2\n"
        "3 0 8:3 / /plain rw - ext4 /dev/sdc rw\n"
        "garbage line\n")
    assert [(m.mountpoint, m.device, m.fstype, m.readonly) for m in mounts] == [
        ("/mnt/a b\tc\\d", "/dev/sd x", "ext4", True), ("/data", "/dev/sdb", "xfs", True),
        ("/plain", "/dev/sdc", "ext4", False)]


def test_filesystem_fixture_default_excludes_pseudo_and_container_mounts_keeps_tmpfs() -> None:
    col = FilesystemCollector(FilesystemConfig(), proc_root=str(FIXTURE), statvfs=lambda p: fake_stat())
    mounts = by_mount(list(col.collect(1.0)))
    assert set(mounts) == INCLUDED
    labels = {dict(s.labels)["mountpoint"]: dict(s.labels) for s in col.collect(2.0)}
    assert labels["/run"] == {"device": "tmpfs", "fstype": "tmpfs", "mountpoint": "/run"}
    assert labels["/mnt/nfs"] == {"device": "server:/export", "fstype": "nfs4", "mountpoint": "/mnt/nfs"}


def test_filesystem_fixture_values_ratios_and_readonly_exact() -> None:
    col = FilesystemCollector(proc_root=str(FIXTURE), statvfs=lambda p: fake_stat())
    mounts = by_mount(list(col.collect(1.0)))
    root = mounts["/"]
    assert root == {
        "node_filesystem_readonly": 0.0,
        "node_filesystem_device_error": 0.0,
        "hostwarden_filesystem_device_error": 0.0,
        "node_filesystem_size_bytes": 1000 * 4096,
        "node_filesystem_free_bytes": 300 * 4096,
        "node_filesystem_avail_bytes": 250 * 4096,
        "node_filesystem_files": 100,
        "node_filesystem_files_free": 25,
        "hostwarden_filesystem_used_ratio": pytest.approx(700 / 950),  # df: used / (used + avail)
        "hostwarden_filesystem_inodes_used_ratio": pytest.approx(0.75),
    }
    assert mounts["/boot"]["node_filesystem_readonly"] == 1.0  # mount option ro
    assert mounts["/media/ro-super"]["node_filesystem_readonly"] == 1.0  # super-block option ro


def test_filesystem_same_mount_listed_twice_is_one_series() -> None:
    out = list(FilesystemCollector(proc_root=str(FIXTURE), statvfs=lambda p: fake_stat()).collect(1.0))
    srv = [s for s in out if s.name == "node_filesystem_size_bytes" and dict(s.labels)["mountpoint"] == "/srv"]
    assert len(srv) == 1


def test_filesystem_no_blocks_or_inodes_omits_ratios() -> None:
    col = FilesystemCollector(proc_root=str(FIXTURE), statvfs=lambda p: fake_stat(0, 0, 0, 0, 0))
    root = by_mount(list(col.collect(1.0)))["/"]
    assert root["node_filesystem_size_bytes"] == 0
    assert "hostwarden_filesystem_used_ratio" not in root
    assert "hostwarden_filesystem_inodes_used_ratio" not in root


def test_filesystem_configured_excludes_replace_defaults() -> None:
    cfg = FilesystemConfig(mount_points_exclude=Regex("^/(proc|sys|dev|mnt)($|/)"), fs_types_exclude=Regex("^tmpfs$"))
    mounts = by_mount(list(FilesystemCollector(cfg, proc_root=str(FIXTURE), statvfs=lambda p: fake_stat()).collect(1)))
    assert set(mounts) == {"/", "/boot", "/run/credentials/systemd-journald.service",
                           "/var/lib/docker/overlay2/abc/merged", "/snap/core/17200", "/srv", "/media/ro-super"}


def test_filesystem_config_keys_parse_from_yaml_values() -> None:
    errors = Errors()
    cfg = build(FilesystemConfig, {"mount_timeout": "2s", "fs_types_exclude": "^(tmpfs|nfs4?)$"}, errors,
                loc=Loc("test.yaml", 1, 1))
    assert not errors
    assert cfg.mount_timeout == Duration(2) and cfg.fs_types_exclude == "^(tmpfs|nfs4?)$"
    build(FilesystemConfig, {"mount_points_exclude": "^(unclosed"}, errors, loc=Loc("test.yaml", 1, 1))
    assert "invalid regular expression" in str(errors.issues[0])


def test_filesystem_statvfs_error_is_device_error_logged_once(gate: Gate, caplog: pytest.LogCaptureFixture) -> None:
    gate.errors["/mnt/nfs"] = errno.EACCES
    col = FilesystemCollector(proc_root=str(FIXTURE), statvfs=gate)
    with caplog.at_level(logging.WARNING, logger="hostwarden.collectors.filesystem"):
        for t in range(3):
            mounts = by_mount(list(col.collect(float(t))))
    assert mounts["/mnt/nfs"] == {"node_filesystem_readonly": 0.0, "node_filesystem_device_error": 1.0,
                                  "hostwarden_filesystem_device_error": 1.0}
    assert mounts["/"]["node_filesystem_device_error"] == 0.0
    assert len([r for r in caplog.records if "/mnt/nfs" in r.getMessage()]) == 1
    del gate.errors["/mnt/nfs"]
    with caplog.at_level(logging.INFO, logger="hostwarden.collectors.filesystem"):
        mounts = by_mount(list(col.collect(9.0)))
    assert mounts["/mnt/nfs"]["node_filesystem_device_error"] == 0.0
    assert any("available again" in r.getMessage() for r in caplog.records)


def test_filesystem_hung_statvfs_times_out_others_reported_not_retried_while_stuck(gate: Gate) -> None:
    gate.blocked.add("/mnt/nfs")
    col = FilesystemCollector(FilesystemConfig(mount_timeout=Duration(0.5)), proc_root=str(FIXTURE), statvfs=gate)
    start = time.monotonic()
    first = by_mount(list(col.collect(1.0)))
    took = time.monotonic() - start
    assert 0.5 <= took < 5.0  # waited for the timeout, not for the hung call
    assert first["/mnt/nfs"]["node_filesystem_device_error"] == 1.0
    assert first["/mnt/nfs"]["hostwarden_filesystem_device_error"] == 1.0
    assert "node_filesystem_size_bytes" not in first["/mnt/nfs"]
    assert set(first) == INCLUDED
    assert all(first[m]["node_filesystem_device_error"] == 0.0 for m in INCLUDED - {"/mnt/nfs"})
    assert col.runner.stuck() == {"/mnt/nfs"}

    for t in range(10):  # while stuck: reported as an error at once, never called again, no thread per cycle
        start = time.monotonic()
        again = by_mount(list(col.collect(2.0 + t)))
        assert time.monotonic() - start < 0.5
        assert again["/mnt/nfs"]["node_filesystem_device_error"] == 1.0
        assert again["/"]["node_filesystem_size_bytes"] == 1000 * 4096
    assert gate.calls["/mnt/nfs"] == 1
    assert gate.calls["/"] == 11
    assert col.runner.threads <= 3

    gate.release.set()  # the server answers again: the blocked call returns, the mount is checked next cycle
    deadline = time.monotonic() + 5
    while col.runner.stuck() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert col.runner.stuck() == set()
    gate.blocked.clear()
    recovered = by_mount(list(col.collect(20.0)))
    assert recovered["/mnt/nfs"]["node_filesystem_device_error"] == 0.0
    assert recovered["/mnt/nfs"]["node_filesystem_size_bytes"] == 1000 * 4096
    assert gate.calls["/mnt/nfs"] == 2


def test_filesystem_slow_mount_does_not_hold_back_the_others(gate: Gate) -> None:
    gate.delay["/boot"] = 0.6  # slow, but answers within the timeout
    col = FilesystemCollector(FilesystemConfig(mount_timeout=Duration(3)), proc_root=str(FIXTURE), statvfs=gate)
    mounts = by_mount(list(col.collect(1.0)))
    assert all(mounts[m]["node_filesystem_device_error"] == 0.0 for m in INCLUDED)
    assert col.runner.threads >= 2  # another worker took over the rest of the list
    assert all(gate.done[m] < gate.done["/boot"] for m in INCLUDED - {"/", "/boot"})


def test_stat_runner_timeout_results_and_errors() -> None:
    gate = Gate({"/hang"}, errors={"/denied": errno.EACCES})
    try:
        runner = StatRunner(gate)
        res = runner.run(["/ok", "/hang", "/denied", "/ok"], timeout=0.2)
        assert res["/hang"] is TIMED_OUT
        assert isinstance(res["/denied"], OSError) and res["/denied"].errno == errno.EACCES
        assert res["/ok"].f_blocks == 1000
        assert gate.calls["/ok"] == 1  # duplicates are stat'ed once
    finally:
        gate.release.set()


def test_filesystem_mount_table_falls_back_to_self_when_pid1_hidden(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    shutil.copy(FIXTURE / "1" / "mountinfo", tmp_path / "self" / "mountinfo")
    mounts = by_mount(list(FilesystemCollector(proc_root=str(tmp_path), statvfs=lambda p: fake_stat()).collect(1.0)))
    assert set(mounts) == INCLUDED


def test_filesystem_fixture_mount_change_is_seen_next_collect(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "proc")
    col = FilesystemCollector(proc_root=str(tmp_path / "proc"), statvfs=lambda p: fake_stat())
    assert "/mnt/new" not in by_mount(list(col.collect(1.0)))
    with open(tmp_path / "proc" / "1" / "mountinfo", "a") as f:
        f.write("99 27 254:9 / /mnt/new rw - ext4 /dev/vdz rw\n")
    assert "/mnt/new" in by_mount(list(col.collect(2.0)))


def test_filesystem_real_proc_root_matches_statvfs() -> None:
    col = FilesystemCollector()
    out = list(col.collect(1.0))
    mounts = by_mount(out)
    st = os.statvfs("/")
    assert mounts["/"]["node_filesystem_size_bytes"] == st.f_blocks * st.f_frsize
    assert mounts["/"]["node_filesystem_files"] == st.f_files
    assert 0.0 <= mounts["/"]["hostwarden_filesystem_used_ratio"] <= 1.0
    fstypes = {dict(s.labels)["fstype"] for s in out}
    assert not fstypes & {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs"}
    assert not any(m.startswith(("/proc", "/sys", "/dev")) for m in mounts)
    assert list(col.collect(2.0))  # the second collect reuses the unchanged mount table


_MOUNT_CHANGE_SCRIPT = textwrap.dedent("""
    import subprocess, sys, tempfile
    sys.path.insert(0, sys.argv[1])
    from hostwarden.collectors.filesystem import MountTable
    table = MountTable("/proc")
    table._paths = ["/proc/self/mountinfo"]  # this namespace's table, not pid 1's
    assert table.read() is not None
    assert table.read() is None, "unchanged table re-read"
    where = tempfile.mkdtemp()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hwtest", where], check=True)
    text = table.read()
    assert text is not None and where in text, "mount not noticed"
    assert table.read() is None
    subprocess.run(["umount", where], check=True)
    text = table.read()
    assert text is not None and where not in text, "umount not noticed"
    print("ok")
""")


def test_filesystem_mount_table_poll_notices_mounts_in_private_namespace() -> None:
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare(1) to mount a tmpfs in a private mount namespace")
    probe = subprocess.run([unshare, "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    run = subprocess.run([unshare, "-m", "--propagation", "private", sys.executable, "-c", _MOUNT_CHANGE_SCRIPT,
                          str(ROOT)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_filesystem_mount_table_reads_fixture_every_time() -> None:
    table = MountTable(str(FIXTURE))
    assert table.read() == table.read() == (FIXTURE / "1" / "mountinfo").read_text()
