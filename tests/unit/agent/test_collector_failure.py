"""A collector that fails: /metrics drops its series as node_exporter does (no stale values shown as current),
says so in node_scrape_collector_success, keeps every other collector's series; rules keep its last values for
the store's lookback, so one failed read does not resolve an alert."""

from __future__ import annotations

from pathlib import Path

from hostwarden.agent.core.sdnotify import Notifier
from hostwarden.agent.daemon import Agent, load_all
from hostwarden.collectors.load import LoadCollector

from tests.reliability.agentprobe import parse_exposition, value


def test_failed_collector_series_leave_metrics_but_not_the_rules_lookback(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "loadavg").write_text("0.50 0.40 0.30 1/100 4242\n")
    (tmp_path / "rules.yaml").write_text("groups:\n  - name: load\n    rules:\n"
                                         "      - {alert: Busy, expr: 'node_load1 > 0.1'}\n")
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global: {{interval: 10s, state_dir: {tmp_path / 'state'}, hostname: web-01}}\n"
                   "web: {listen_address: '127.0.0.1:0'}\ncollectors: {load: {}, uptime: {}}\n"
                   f"rule_files: [{tmp_path / 'rules.yaml'}]\n")
    config, groups = load_all(str(cfg))
    agent = Agent(config, groups, notifier=Notifier(""))
    try:
        agent.collectors["load"] = LoadCollector(proc_root=str(proc), cpu_count=lambda: 2)
        t0 = agent.clock.now()

        def cycle(now: float) -> dict:
            agent._run_collector("load", agent.collectors["load"], now)
            agent._run_collector("uptime", agent.collectors["uptime"], now)
            agent.evaluate_group("load")
            agent.render()
            return parse_exposition(agent.exposition.current().text.decode())

        got = cycle(t0)
        assert value(got, "node_load1") == 0.5
        assert value(got, "ALERTS", alertname="Busy", alertstate="firing") == 1
        assert value(got, "node_scrape_collector_success", collector="load") == 1
        (proc / "loadavg").write_text("garbage\n")
        got = cycle(t0 + 10)
        assert value(got, "node_load1") is None and value(got, "hostwarden_load1_per_cpu") is None
        assert value(got, "node_scrape_collector_success", collector="load") == 0
        assert value(got, "node_scrape_collector_success", collector="uptime") == 1
        assert value(got, "node_boot_time_seconds") is not None
        # rules see the last value for the lookback: one failed read does not resolve the alert
        assert value(got, "ALERTS", alertname="Busy", alertstate="firing") == 1
        (proc / "loadavg").write_text("0.70 0.40 0.30 1/100 4242\n")
        got = cycle(t0 + 20)
        assert value(got, "node_load1") == 0.7
        assert value(got, "node_scrape_collector_success", collector="load") == 1
    finally:
        agent.state.close()
