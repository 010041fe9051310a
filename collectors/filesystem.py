"""Filesystem space and inodes per mount (node_exporter's `filesystem` collector), safe against hung mounts.

Mounts come from `<proc_root>/1/mountinfo` (the host's view, as node_exporter reads it, so a
sandboxed service still sees the real read-only flags), falling back to `<proc_root>/self/mountinfo`
when pid 1's is hidden. Pseudo and container filesystems are excluded with node_exporter's default
patterns (tmpfs is kept). `node_filesystem_readonly` comes from the mount and super-block options.

`statvfs` runs on worker threads (`StatRunner`) so a hung NFS mount cannot hang the collector: a
mount that does not answer within `mount_timeout` is reported with `node_filesystem_device_error` =
`hostwarden_filesystem_device_error` = 1 and is not stat'ed again until the stuck call returns, so a
dead server costs one blocked thread per mount, not one per cycle. statvfs errors (EACCES, ENOENT)
are device errors too, logged once per change.

`hostwarden_filesystem_used_ratio` is df's Use%: used / (used + avail) with used = size - free, so
it reads 1.0 exactly when unprivileged writes start failing and matches what `df` shows on the host
(blocks reserved for root count neither as used nor as available). `hostwarden_filesystem_inodes_used_ratio`
is df -i's IUse%: 1 - files_free / files. Both are left out where the filesystem reports no blocks
or no inodes (btrfs has no inode limit).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hostwarden.agent.core.samples import Labels, MetricDef, Sample, metric_defs
from hostwarden.agent.core.schema import Duration, Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.procfs import read_text

log = logging.getLogger(__name__)

DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|"
    r"overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)

StatFn = Callable[[str], Any]  # os.statvfs or anything returning an object with its f_* fields

_OCTAL = re.compile(r"\\([0-7]{3})")


class _TimedOut:
    def __repr__(self) -> str:
        return "TIMED_OUT"


TIMED_OUT: Any = _TimedOut()


@dataclass(frozen=True)
class FilesystemConfig(CollectorConfig):
    mount_points_exclude: Regex = Regex(DEFAULT_MOUNT_POINTS_EXCLUDE)
    fs_types_exclude: Regex = Regex(DEFAULT_FS_TYPES_EXCLUDE)
    mount_timeout: Duration = Duration(5)


@dataclass(frozen=True, slots=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    readonly: bool


def _unescape(s: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), s) if "\\" in s else s


def parse_mountinfo(text: str) -> list[Mount]:
    out: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        opts = fields[5].split(",")
        super_opts = tail[2].split(",") if len(tail) > 2 else []
        out.append(Mount(device=_unescape(tail[1]), mountpoint=_unescape(fields[4]), fstype=tail[0],
                         readonly="ro" in opts or "ro" in super_opts))
    return out


class _Job:
    """One collect's stat calls, shared by however many workers the runner puts on it."""

    __slots__ = ("cursor", "paths", "pending", "progress", "results", "running")

    def __init__(self, paths: list[str], now: float) -> None:
        self.paths = paths
        self.cursor = 0
        self.pending = len(paths)
        self.progress = now
        self.running: dict[str, float] = {}
        self.results: dict[str, Any] = {}


class StatRunner:
    """statvfs on worker threads with a per-call timeout.

    Workers are kept and reused (a thread start costs more than a whole filesystem collect). One
    worker walks the list; when nothing has moved for `slow_after` seconds another worker joins, so
    a slow mount delays the others by at most that much. A call that exceeds the timeout marks its
    path stuck: `run` reports TIMED_OUT for it without calling again until the blocked call returns.
    """

    IDLE_EXIT_SECONDS = 60.0

    def __init__(self, statvfs: StatFn = os.statvfs, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._statvfs = statvfs
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idle = 0  # waiting workers not yet promised a job
        self._stuck: dict[str, float] = {}  # path -> start of the call still blocked
        self.threads = 0  # live workers (for tests and diagnostics)

    def stuck(self) -> set[str]:
        with self._cond:
            return set(self._stuck)

    def run(self, paths: Iterable[str], timeout: float) -> dict[str, Any]:
        """path -> statvfs result, the OSError it raised, or TIMED_OUT."""
        results: dict[str, Any] = {}
        with self._cond:
            todo = []
            for p in dict.fromkeys(paths):
                if p in self._stuck:
                    results[p] = TIMED_OUT
                else:
                    todo.append(p)
            if not todo:
                return results
            slow_after = min(0.1, timeout / 10)
            job = _Job(todo, self._clock())
            self._dispatch(job)
            while job.pending:
                now = self._clock()
                next_deadline = math.inf
                for path, started in list(job.running.items()):
                    if now - started >= timeout:
                        del job.running[path]
                        job.results[path] = TIMED_OUT
                        job.pending -= 1
                        self._stuck[path] = started
                        log.warning("filesystem %s: statvfs did not return within %gs; not checked again until it "
                                    "does", path, timeout)
                    else:
                        next_deadline = min(next_deadline, started + timeout)
                if not job.pending:
                    break
                wait = next_deadline - now
                if job.cursor < len(job.paths):  # unclaimed paths queue behind a slow one: add a worker
                    still = now - job.progress
                    if still >= slow_after:
                        self._dispatch(job)
                        job.progress, still = now, 0.0
                    wait = min(wait, slow_after - still)
                self._cond.wait(max(wait, 0.001))
            results.update(job.results)
        return results

    def _dispatch(self, job: _Job) -> None:  # called with the lock held
        if self._idle > 0:
            self._idle -= 1
            self._queue.put(job)
        else:
            self.threads += 1
            threading.Thread(target=self._worker, args=(job,), name="hostwarden-statvfs", daemon=True).start()

    def _worker(self, job: _Job) -> None:
        while True:
            self._work(job)
            with self._cond:
                self._idle += 1
            while True:
                try:
                    job = self._queue.get(timeout=self.IDLE_EXIT_SECONDS)
                    break
                except queue.Empty:
                    with self._cond:
                        if self._idle > 0:  # no job was promised to a waiting worker: this one can go
                            self._idle -= 1
                            self.threads -= 1
                            return

    def _work(self, job: _Job) -> None:
        statvfs, cond, clock = self._statvfs, self._cond, self._clock
        while True:
            with cond:
                if job.cursor >= len(job.paths):
                    return
                path = job.paths[job.cursor]
                job.cursor += 1
                started = job.progress = clock()
                job.running[path] = started
            try:
                result: Any = statvfs(path)
            except Exception as e:  # OSError from the kernel; anything an injected function raises
                result = e
            with cond:
                if self._stuck.get(path) == started:
                    del self._stuck[path]
                    log.warning("filesystem %s: statvfs returned again after %.1fs", path, clock() - started)
                elif path in job.running:
                    del job.running[path]
                    job.results[path] = result
                    job.pending -= 1
                    job.progress = clock()
                    if not job.pending:
                        cond.notify_all()


class MountTable:
    """The mount list of `<proc_root>/1/mountinfo`, or `self/mountinfo` when pid 1's is hidden.

    On the real /proc the file stays open and is re-read only when poll() reports a mount change
    (POLLPRI, as `findmnt --poll` does), which saves most of a filesystem collect; any other root
    (test fixtures) is read every time.
    """

    def __init__(self, proc_root: str = "/proc") -> None:
        self._paths = [os.path.join(proc_root, "1", "mountinfo"), os.path.join(proc_root, "self", "mountinfo")]
        self._watch = os.path.realpath(proc_root) == "/proc"
        self._fd: int | None = None
        self._poll: select.poll | None = None
        self._finalizer: weakref.finalize | None = None

    def read(self) -> str | None:
        """The table's text, or None when it is known not to have changed since the last call."""
        if self._fd is not None and self._poll is not None:
            if not self._poll.poll(0):
                return None
            os.lseek(self._fd, 0, os.SEEK_SET)
            return _read_fd(self._fd)
        while True:
            path = self._paths[0]
            try:
                if not self._watch:
                    return read_text(path)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                break
            except OSError as e:
                if len(self._paths) == 1:
                    raise
                log.info("cannot read %s (%s); reading %s instead", path, e, self._paths[1])
                self._paths = self._paths[1:]
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        self._fd, self._poll = fd, poller
        self._finalizer = weakref.finalize(self, os.close, fd)
        return _read_fd(fd)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._fd = self._poll = self._finalizer = None


def _read_fd(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


_FS_LABELS = ("device", "fstype", "mountpoint")


@register("filesystem")
class FilesystemCollector:
    Config = FilesystemConfig
    metrics = metric_defs(
        MetricDef("node_filesystem_size_bytes", "gauge", "Filesystem size in bytes.", _FS_LABELS),
        MetricDef("node_filesystem_free_bytes", "gauge", "Filesystem free space in bytes.", _FS_LABELS),
        MetricDef("node_filesystem_avail_bytes", "gauge", "Filesystem space available to non-root users in bytes.",
                  _FS_LABELS),
        MetricDef("node_filesystem_files", "gauge", "Filesystem total file nodes.", _FS_LABELS),
        MetricDef("node_filesystem_files_free", "gauge", "Filesystem total free file nodes.", _FS_LABELS),
        MetricDef("node_filesystem_readonly", "gauge", "Filesystem read-only status.", _FS_LABELS),
        MetricDef("node_filesystem_device_error", "gauge",
                  "Whether an error occurred while getting statistics for the given device.", _FS_LABELS),
        MetricDef("hostwarden_filesystem_device_error", "gauge",
                  "1 if statvfs failed or did not return within mount_timeout (a hung mount), else 0.", _FS_LABELS),
        MetricDef("hostwarden_filesystem_used_ratio", "gauge",
                  "Fraction of space used as df shows it: (size - free) / (size - free + avail).", _FS_LABELS),
        MetricDef("hostwarden_filesystem_inodes_used_ratio", "gauge",
                  "Fraction of inodes used: 1 - files_free / files.", _FS_LABELS),
    )

    def __init__(self, config: FilesystemConfig | None = None, *, proc_root: str = "/proc",
                 statvfs: StatFn = os.statvfs) -> None:
        self.config = config or FilesystemConfig()
        self.mount_table = MountTable(proc_root)
        self._mp_exclude = re.compile(self.config.mount_points_exclude)
        self._fs_exclude = re.compile(self.config.fs_types_exclude)
        self.runner = StatRunner(statvfs)
        self._mount_text: str | None = None
        self._mounts: list[tuple[Mount, Labels]] = []
        self._errors: dict[str, str] = {}  # mountpoint -> last error logged

    def _read_mounts(self) -> list[tuple[Mount, Labels]]:
        text = self.mount_table.read()
        if text is None or text == self._mount_text:
            return self._mounts
        seen: set[Labels] = set()
        mounts = []
        for m in parse_mountinfo(text):
            if self._mp_exclude.search(m.mountpoint) or self._fs_exclude.search(m.fstype):
                continue
            labels = (("device", m.device), ("fstype", m.fstype), ("mountpoint", m.mountpoint))
            if labels in seen:  # the same mount twice (bind mounts, propagation): one series
                continue
            seen.add(labels)
            mounts.append((m, labels))
        self._mount_text, self._mounts = text, mounts
        return mounts

    def collect(self, now: float) -> Iterable[Sample]:
        mounts = self._read_mounts()
        results = self.runner.run((m.mountpoint for m, _ in mounts), float(self.config.mount_timeout))
        out: list[Sample] = []
        errors = self._errors
        for m, lab in mounts:
            st = results[m.mountpoint]
            out.append(Sample("node_filesystem_readonly", lab, 1.0 if m.readonly else 0.0, now))
            if st is TIMED_OUT or isinstance(st, BaseException):
                msg = f"statvfs timed out after {self.config.mount_timeout:g}s" if st is TIMED_OUT else str(st)
                if errors.get(m.mountpoint) != msg:
                    if st is not TIMED_OUT:  # the runner already logged the timeout
                        log.warning("filesystem %s: %s", m.mountpoint, msg)
                    errors[m.mountpoint] = msg
                out.append(Sample("node_filesystem_device_error", lab, 1.0, now))
                out.append(Sample("hostwarden_filesystem_device_error", lab, 1.0, now))
                continue
            if m.mountpoint in errors:
                del errors[m.mountpoint]
                log.info("filesystem %s: statistics available again", m.mountpoint)
            frsize = st.f_frsize or st.f_bsize
            size, free, avail = st.f_blocks * frsize, st.f_bfree * frsize, st.f_bavail * frsize
            files, files_free = float(st.f_files), float(st.f_ffree)
            out.append(Sample("node_filesystem_device_error", lab, 0.0, now))
            out.append(Sample("hostwarden_filesystem_device_error", lab, 0.0, now))
            out.append(Sample("node_filesystem_size_bytes", lab, float(size), now))
            out.append(Sample("node_filesystem_free_bytes", lab, float(free), now))
            out.append(Sample("node_filesystem_avail_bytes", lab, float(avail), now))
            out.append(Sample("node_filesystem_files", lab, files, now))
            out.append(Sample("node_filesystem_files_free", lab, files_free, now))
            used = size - free
            if used + avail > 0:
                out.append(Sample("hostwarden_filesystem_used_ratio", lab, _clamp(used / (used + avail)), now))
            if files > 0:
                inodes_used = _clamp(1.0 - files_free / files)
                out.append(Sample("hostwarden_filesystem_inodes_used_ratio", lab, inodes_used, now))
        return out


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
