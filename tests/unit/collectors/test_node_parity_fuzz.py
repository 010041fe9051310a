"""Parity collectors over mangled /proc and /sys files: they return finite samples or raise ValueError
(the scheduler counts that as a failed run, as node_exporter fails the collector); nothing else escapes."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from hostwarden.collectors import base
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "nodeparity"
# collector -> (root argument, files under that root it reads)
SOURCES = {
    "arp": ("proc", ["net/arp"]),
    "conntrack": ("proc", ["sys/net/netfilter/nf_conntrack_count", "sys/net/netfilter/nf_conntrack_max",
                           "net/stat/nf_conntrack"]),
    "entropy": ("proc", ["sys/kernel/random/entropy_avail", "sys/kernel/random/poolsize"]),
    "filefd": ("proc", ["sys/fs/file-nr"]),
    "netclass": ("sys", ["class/net/eth0/mtu", "class/net/eth0/flags", "class/net/eth0/speed",
                         "class/net/eth0/operstate", "class/net/eth0/ifindex"]),
    "netstat": ("proc", ["net/netstat", "net/snmp", "net/snmp6"]),
    "os": ("root", ["etc/os-release"]),
    "pressure": ("proc", ["pressure/cpu", "pressure/io", "pressure/memory"]),
    "sockstat": ("proc", ["net/sockstat", "net/sockstat6"]),
    "softnet": ("proc", ["net/softnet_stat"]),
    "stat": ("proc", ["stat"]),
    "time": ("sys", ["devices/system/clocksource/clocksource0/available_clocksource"]),
    "udp_queues": ("proc", ["net/udp", "net/udp6"]),
    "vmstat": ("proc", ["vmstat"]),
}
KWARG = {"proc": "proc_root", "sys": "sys_root", "root": "root"}
JUNK = st.lists(st.sampled_from([*"0123456789abcdefx:=- \t\n\x00é", "total=", "0x", "-1", "\n\n", "nan", "inf"]),
                max_size=20).map("".join)


@st.composite
def mangled(draw: st.DrawFn, text: str) -> str:
    """The fixture text cut, with junk spliced in somewhere."""
    cut = draw(st.integers(0, len(text)))
    at = draw(st.integers(0, cut))
    return text[:at] + draw(JUNK) + text[at:cut]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_parity_collector_mangled_sources_raise_only_value_error(name: str, tmp_path_factory: pytest.TempPathFactory
                                                                 ) -> None:
    root_kind, files = SOURCES[name]
    src = FIXTURE if root_kind == "root" else FIXTURE / root_kind
    originals = {f: (src / f).read_text() for f in files}
    cls = base.registry()[name]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({f: mangled(t) for f, t in originals.items()}))
    def run(contents: dict[str, str]) -> None:
        root = tmp_path_factory.mktemp(name)
        for f, text in contents.items():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            (root / f).write_text(text)
        col = cls(**{KWARG[root_kind]: str(root)})
        try:
            out = list(col.collect(1.0))
        except ValueError:
            return
        finally:
            shutil.rmtree(root)
        for s in out:
            assert isinstance(s.value, float), s
            if name not in ("vmstat", "netstat"):  # node_exporter parses those as floats: NaN passes there too
                assert not math.isnan(s.value) and not math.isinf(s.value), s
            assert s.name in col.metrics, s.name

    run()
