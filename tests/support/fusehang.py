"""A real filesystem whose `statfs` blocks: a minimal FUSE server speaking the kernel protocol on /dev/fuse.

The mount is visible machine-wide while it exists (the agent lists mounts from /proc/1/mountinfo, as
node_exporter does, so a private mount namespace would hide it), so keep it short-lived; if the test
process dies, the kernel aborts the connection and the mount answers ENOTCONN instead of blocking.

It stands in for a hard NFS mount whose server is gone: `statvfs()` on the mount point blocks in the
kernel until the test releases it (then it answers) or the connection is closed (then it fails with
ENOTCONN). Needs root, /dev/fuse and the `fuse` filesystem; `available()` says why not otherwise.

Only the requests the tests cause are answered: INIT, GETATTR of the root, STATFS, DESTROY; anything
else gets ENOSYS. Protocol structures: include/uapi/linux/fuse.h.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
from pathlib import Path

FUSE_GETATTR, FUSE_FORGET, FUSE_STATFS, FUSE_INIT = 3, 2, 17, 26
FUSE_INTERRUPT, FUSE_DESTROY, FUSE_BATCH_FORGET = 36, 38, 42
NO_REPLY = {FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT}
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
BLOCKS, BLOCK_SIZE = 1000, 4096
MNT_DETACH = 2


def available() -> str:
    """Empty when a FUSE mount can be made here, else the reason."""
    if os.geteuid() != 0:
        return "mounting a FUSE filesystem needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent"
    if "fuse" not in Path("/proc/filesystems").read_text().split():
        return "the kernel has no fuse filesystem"
    return ""


def _init_out(minor: int) -> bytes:
    # major, minor, max_readahead, flags, max_background, congestion_threshold, max_write, time_gran,
    # max_pages, map_alignment, flags2, unused[7]
    return struct.pack("<IIIIHHIIHHI28x", 7, min(minor, 31), 0, 0, 16, 12, 128 * 1024, 1, 32, 0, 0)


def _attr_out() -> bytes:
    # attr_valid, attr_valid_nsec, dummy; fuse_attr: ino, size, blocks, atime, mtime, ctime, atimensec,
    # mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags
    return struct.pack("<QII6Q10I", 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, BLOCK_SIZE, 0)


def _statfs_out() -> bytes:
    # blocks, bfree, bavail, files, ffree, bsize, namelen, frsize, padding, spare[6]
    return struct.pack("<5Q4I24x", BLOCKS, BLOCKS // 2, BLOCKS // 2, 100, 50, BLOCK_SIZE, 255, BLOCK_SIZE, 0)


def _tgid(tid: int) -> int:
    try:
        for line in Path(f"/proc/{tid}/status").read_text().splitlines():
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return tid


class HangingStatfsMount:
    """Mounted at `mountpoint` as type `fuse.hwhang`; statfs requests wait until `release()`."""

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        self.statfs_requests: list[int] = []  # the process (tgid) of each STATFS request, answered or not
        self._released = threading.Event()
        self._stop = threading.Event()
        self._held: list[int] = []  # unique ids of statfs requests not answered yet
        self._lock = threading.Lock()
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = os.open("/dev/fuse", os.O_RDWR)
        opts = f"fd={self._fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if self._libc.mount(b"hwhang", str(mountpoint).encode(), b"fuse.hwhang", 0, opts) != 0:
            err = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(err, f"mount fuse at {mountpoint}: {os.strerror(err)}")
        self._thread = threading.Thread(target=self._serve, name="fusehang", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Answer the held statfs requests and every later one at once."""
        with self._lock:
            self._released.set()
            held, self._held = self._held, []
        for unique in held:
            self._reply(unique, 0, _statfs_out())

    def hold(self) -> None:
        """Hold statfs requests again (after `release()`)."""
        with self._lock:
            self._released.clear()

    def close(self) -> None:
        """Abort the connection (blocked callers get ENOTCONN) and detach the mount."""
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)
        self._libc.umount2(str(self.mountpoint).encode(), MNT_DETACH)

    def __enter__(self) -> HangingStatfsMount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reply(self, unique: int, error: int, payload: bytes = b"") -> None:
        try:
            os.write(self._fd, OUT_HEADER.pack(OUT_HEADER.size + len(payload), error, unique) + payload)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):  # request interrupted / connection gone
                raise

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            try:
                buf = os.read(self._fd, 256 * 1024)
            except OSError as e:
                if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue
                return  # ENODEV: unmounted
            _, opcode, unique, _, _, _, tid, _, _ = IN_HEADER.unpack_from(buf)
            body = buf[IN_HEADER.size:]
            if opcode in NO_REPLY:
                continue
            if opcode == FUSE_INIT:
                _major, minor = struct.unpack_from("<II", body)
                self._reply(unique, 0, _init_out(minor))
            elif opcode == FUSE_GETATTR:
                self._reply(unique, 0, _attr_out())
            elif opcode == FUSE_STATFS:
                with self._lock:
                    self.statfs_requests.append(_tgid(tid))
                    if not self._released.is_set():
                        self._held.append(unique)
                        continue
                self._reply(unique, 0, _statfs_out())
            elif opcode == FUSE_DESTROY:
                self._reply(unique, 0)
                return
            else:
                self._reply(unique, -errno.ENOSYS)

