"""Protocol counters from /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6, as node_exporter's `netstat`.

Each counter is `node_netstat_<Protocol>_<Name>` (untyped, as in node_exporter), selected by `fields`:
a regular expression searched in `<Protocol>_<Name>`, by default node_exporter 1.5's
`--collector.netstat.fields`. netstat and snmp come in header/value line pairs ("Tcp: ActiveOpens …"
then "Tcp: 12 …"); snmp6 has one "Ip6InOctets 123" per line, the protocol ending at its "6".
A missing file (snmp6 with IPv6 disabled) contributes nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hostwarden.agent.core.samples import MetricDef, Sample
from hostwarden.agent.core.schema import Regex
from hostwarden.collectors.base import CollectorConfig, register
from hostwarden.collectors.readers import read_optional

DEFAULT_FIELDS = (r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
                  r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)"
                  r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
                  r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$")


@dataclass(frozen=True)
class NetstatConfig(CollectorConfig):
    fields: Regex = Regex(DEFAULT_FIELDS)


@register("netstat")
class NetstatCollector:
    Config = NetstatConfig

    def __init__(self, config: NetstatConfig | None = None, *, proc_root: str = "/proc") -> None:
        self.config = config or NetstatConfig()
        net = os.path.join(proc_root, "net")
        self._paired = (os.path.join(net, "netstat"), os.path.join(net, "snmp"))
        self._snmp6 = os.path.join(net, "snmp6")
        self._fields = re.compile(self.config.fields)
        self._names: dict[tuple[str, str], str | None] = {}  # (protocol, counter) -> metric, None: not selected
        self.metrics: dict[str, MetricDef] = {}

    def _name(self, proto: str, key: str) -> str | None:
        name = None
        if self._fields.search(f"{proto}_{key}"):
            name = f"node_netstat_{proto}_{key}"
            self.metrics = {**self.metrics, name: MetricDef(name, "untyped", f"Statistic {proto}{key}.")}
        self._names[(proto, key)] = name
        return name

    def collect(self, now: float) -> Iterable[Sample]:
        names = self._names
        out: list[Sample] = []
        for path in self._paired:
            text = read_optional(path)
            if text is None:
                continue
            lines = text.splitlines()
            for header, values in zip(lines[0::2], lines[1::2], strict=False):
                keys, vals = header.split(), values.split()
                if not keys or keys[0] != vals[0]:
                    continue  # not a header/value pair
                proto = keys[0][:-1]
                for key, val in zip(keys[1:], vals[1:], strict=False):
                    nk = (proto, key)
                    name = names[nk] if nk in names else self._name(proto, key)
                    if name is not None:
                        out.append(Sample(name, (), float(val), now))
        text = read_optional(self._snmp6)
        if text is not None:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) != 2:
                    continue
                six = parts[0].find("6")
                if six < 0:
                    continue
                nk = (parts[0][:six + 1], parts[0][six + 1:])
                name = names[nk] if nk in names else self._name(*nk)
                if name is not None:
                    out.append(Sample(name, (), float(parts[1]), now))
        return out
