"""Interface counters the kernel gives only over rtnetlink (rx_nohandler has no /proc/net/dev column and
no sysfs file on every driver): one RTM_GETLINK dump per call, IFLA_STATS64 per interface.
node_exporter 1.5 reads its netdev counters the same way (--collector.netdev.netlink, the default).
"""

from __future__ import annotations

import os
import socket
import struct

RTM_NEWLINK, RTM_GETLINK = 16, 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME, IFLA_STATS64 = 3, 23
STATS64_FIELDS = 24  # up to rx_nohandler (kernel 4.6); newer kernels append more
RX_NOHANDLER = 23
_HDR = struct.Struct("=IHHII")  # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg
_RTA = struct.Struct("=HH")


def link_stats64(timeout: float = 2.0) -> dict[str, tuple[int, ...]]:
    """Interface name → rtnl_link_stats64 (the first 24 counters). Raises OSError when netlink is refused."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(timeout)
        seq = os.getpid() & 0xFFFF
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.send(_HDR.pack(_HDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        out: dict[str, tuple[int, ...]] = {}
        while True:
            data = sock.recv(1 << 16)
            off = 0
            while off + _HDR.size <= len(data):
                length, kind, _, msg_seq, _ = _HDR.unpack_from(data, off)
                if length < _HDR.size:
                    return out
                if msg_seq == seq:
                    if kind == NLMSG_DONE:
                        return out
                    if kind == NLMSG_ERROR:
                        (err,) = struct.unpack_from("=i", data, off + _HDR.size)
                        if err:
                            raise OSError(-err, os.strerror(-err))
                    elif kind == RTM_NEWLINK:
                        _parse_link(data, off + _HDR.size + _IFINFO.size, off + length, out)
                off += (length + 3) & ~3


def _parse_link(data: bytes, off: int, end: int, out: dict[str, tuple[int, ...]]) -> None:
    name = ""
    stats: tuple[int, ...] | None = None
    while off + _RTA.size <= end:
        rta_len, rta_type = _RTA.unpack_from(data, off)
        if rta_len < _RTA.size:
            break
        payload = data[off + _RTA.size: off + rta_len]
        if rta_type == IFLA_IFNAME:
            name = payload.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif rta_type == IFLA_STATS64 and len(payload) >= 8 * STATS64_FIELDS:
            stats = struct.unpack_from(f"={STATS64_FIELDS}Q", payload)
        off += (rta_len + 3) & ~3
    if name and stats is not None:
        out[name] = stats
