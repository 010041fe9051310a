"""A real mount whose statvfs blocks in the kernel (a FUSE filesystem that never answers STATFS, the way a
hard NFS mount behaves when its server is gone), under a real `hostwarden run`: scrapes and the other
mounts go on, the hung mount is flagged, it is not asked again while stuck, it recovers when the
filesystem answers, and SIGTERM stops the agent at once while a mount hangs.

A thread blocked in a FUSE (or hard NFS) request cannot be killed, even by SIGKILL: the agent's main
thread exits, the process stays a zombie until the filesystem answers, then its exit code is read.
node_exporter behaves the same way; what the agent controls is that nothing waits for that thread."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.agentprobe import Scraper, Series, named, parse_exposition, percentile, record, value
from tests.support.agent import AgentProcess, start_agent, wait_for, write_config
from tests.support.fusehang import HangingStatfsMount, available

pytestmark = pytest.mark.integration

HUNG_SECONDS = 8.0


def test_faults_statvfs_blocking_in_kernel_scrapes_and_other_mounts_go_on(tmp_path: Path) -> None:
    why = available()
    if why:
        pytest.skip(f"no FUSE here: {why}")
    mountpoint = tmp_path / "hung"
    labels = {"device": "hwhang", "fstype": "fuse.hwhang", "mountpoint": str(mountpoint)}
    mountpoint.mkdir()
    cfg = write_config(tmp_path, "collectors:\n  filesystem: {mount_timeout: 1s}\n")
    with HangingStatfsMount(mountpoint) as mount:
        agent = start_agent(cfg)
        stopped = False
        try:
            mp = str(mountpoint)
            wait_for(lambda: value(_series(agent), "hostwarden_filesystem_device_error", **labels) == 1.0,
                     15, what="the hung mount flagged device_error 1")
            scraper = Scraper(agent.url + "/metrics", interval=0.2, max_scrapes=200).start()
            time.sleep(HUNG_SECONDS)
            scrapes = scraper.stop()
            requests_while_hung = mount.statfs_requests.count(agent.proc.pid)  # other processes may look too
            last = scrapes[-1].series
            mount.release()
            recovered = wait_for(lambda: value(_series(agent), "node_filesystem_avail_bytes", **labels),
                                 15, what="the mount's figures once statfs answers")
            error_after = value(_series(agent), "hostwarden_filesystem_device_error", **labels)

            # hung again, then SIGTERM: the agent stops without waiting for the stuck thread
            mount.hold()
            wait_for(lambda: value(_series(agent), "hostwarden_filesystem_device_error", **labels) == 1.0,
                     15, what="the mount flagged again")
            agent.signal(signal.SIGTERM)
            stopped = wait_for(lambda: "hostwarden stopped" in agent.log_text(), 10, what="the agent's stop")
        finally:
            mount.release()  # lets the kernel finish the blocked thread, so the process can be reaped
            if stopped:  # it is exiting on the first SIGTERM: a second one (agent.stop) would race its exit
                with contextlib.suppress(subprocess.TimeoutExpired):
                    agent.proc.wait(20)
            code = agent.stop()

    ok = [s for s in scrapes if s.status == 200]
    other_mounts = {dict(lab)["mountpoint"] for lab in named(last, "node_filesystem_avail_bytes")}
    record("statvfs-fuse-agent", hung_seconds=HUNG_SECONDS, scrapes=len(scrapes), ok=len(ok),
           p99_ms=round(percentile([s.seconds for s in scrapes], 99) * 1000, 2),
           statfs_requests_while_hung=requests_while_hung, other_mounts=len(other_mounts))
    assert stopped and code == 0
    assert len(scrapes) >= 20 and len(ok) == len(scrapes)  # every scrape answered while the mount hung
    assert all(value(s.series, "hostwarden_filesystem_device_error", **labels) == 1.0 for s in ok)
    assert all(value(s.series, "hostwarden_collector_success", collector="filesystem") == 1.0 for s in ok)
    assert mp not in other_mounts and other_mounts  # the other mounts reported, the hung one not
    assert requests_while_hung == 1  # asked once; not again while that call is stuck
    assert recovered == 500 * 4096 and error_after == 0.0


def _series(agent: AgentProcess) -> Series:
    return parse_exposition(agent.scrape())
