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
        # header line -> selected (column, metric name): the header text repeats every read, so it keys the parse
        self._columns: dict[str, tuple[tuple[int, str], ...]] = {}
        self._snmp6_names: dict[str, str] = {}
        self._snmp6_pick: re.Pattern[str] | None = None
        self.metrics: dict[str, MetricDef] = {}

    def _metric(self, proto: str, key: str) -> str | None:
        if not self._fields.search(f"{proto}_{key}"):
            return None
        name = f"node_netstat_{proto}_{key}"
        if name not in self.metrics:
            self.metrics = {**self.metrics, name: MetricDef(name, "untyped", f"Statistic {proto}{key}.")}
        return name

    def _header(self, header: str) -> tuple[tuple[int, str], ...]:
        keys = header.split()
        proto = keys[0][:-1]
        cols = tuple((i, name) for i, key in enumerate(keys) if i and (name := self._metric(proto, key)))
        if len(self._columns) < 64:  # a handful of protocols; bounded whatever the file holds
            self._columns[header] = cols
        return cols

    def _select_snmp6(self, text: str) -> re.Pattern[str]:
        for line in text.splitlines():
            parts = line.split()
            six = parts[0].find("6") if len(parts) == 2 else -1
            if six >= 0 and (name := self._metric(parts[0][:six + 1], parts[0][six + 1:])):
                self._snmp6_names[parts[0]] = name
        alternatives = "|".join(map(re.escape, self._snmp6_names)) or r"(?!)"
        self._snmp6_pick = re.compile(rf"^({alternatives})\s+(\S+)$", re.M)
        return self._snmp6_pick

    def collect(self, now: float) -> Iterable[Sample]:
        out: list[Sample] = []
        columns = self._columns
        for path in self._paired:
            text = read_optional(path)
            if text is None:
                continue
            lines = text.splitlines()
            for header, values in zip(lines[0::2], lines[1::2], strict=False):
                proto = header.partition(" ")[0]
                if not proto.endswith(":") or proto != values.partition(" ")[0]:
                    continue  # not a header/value pair
                cols = columns.get(header)
                if cols is None:
                    cols = self._header(header)
                if cols:
                    vals = values.split()
                    out.extend(Sample(name, (), float(vals[i]), now) for i, name in cols if i < len(vals))
        text = read_optional(self._snmp6)
        if text is not None:
            pick = self._snmp6_pick or self._select_snmp6(text)
            names = self._snmp6_names
            out.extend(Sample(names[k], (), float(v), now) for k, v in pick.findall(text))
        return out
