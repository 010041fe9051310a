"""web.external_url / web.runbook_base_url: validation and the defaults the agent derives from `web:`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostwarden.agent.config import load_config
from hostwarden.agent.core.schema import ConfigErrors
from hostwarden.agent.incidents.runbooks import agent_urls


def config(tmp_path: Path, web: str) -> object:
    path = tmp_path / "hostwarden.yaml"
    path.write_text(f"global: {{state_dir: {tmp_path}, hostname: web-01}}\nweb:\n{web}rule_files: []\n")
    return load_config(str(path))


def test_defaults_agent_url_from_hostname_and_port_runbooks_resolved_there(tmp_path: Path) -> None:
    cfg = config(tmp_path, "  listen_address: 0.0.0.0:19850\n")
    assert agent_urls(cfg, tls=False) == ("http://web-01:19850/", "http://web-01:19850/")
    assert agent_urls(cfg, tls=True)[0] == "https://web-01:19850/"


def test_configured_urls_win_external_gets_a_trailing_slash(tmp_path: Path) -> None:
    cfg = config(tmp_path, "  external_url: https://mon.example.org/web-01\n"
                           "  runbook_base_url: https://wiki.example.org/runbooks/\n")
    assert agent_urls(cfg, tls=False) == ("https://mon.example.org/web-01/", "https://wiki.example.org/runbooks/")


@pytest.mark.parametrize("key", ["external_url", "runbook_base_url"])
@pytest.mark.parametrize("value", ["runbooks/", "ftp://x/", "javascript:alert(1)", "http://"])
def test_urls_must_be_absolute_http(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        config(tmp_path, f"  {key}: '{value}'\n")
    assert f"web.{key}" in str(e.value)


def _agent(tmp_path: Path, rule_files: dict[str, str], series: str):  # type: ignore[no-untyped-def]
    from hostwarden.agent.core.sdnotify import Notifier
    from hostwarden.agent.daemon import Agent, load_all

    for name, text in rule_files.items():
        (tmp_path / name).write_text(text)
    textfile = tmp_path / "state" / "textfile"
    textfile.mkdir(parents=True)
    (textfile / "t.prom").write_text(series)
    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"global: {{interval: 10s, state_dir: {tmp_path / 'state'}, hostname: web-01}}\n"
                   f"web: {{listen_address: '127.0.0.1:0'}}\ncollectors: {{textfile: {{}}}}\n"
                   f"rule_files: [{', '.join(rule_files)}]\n")
    config, groups = load_all(str(cfg))
    return Agent(config, groups, notifier=Notifier(""))


def test_webview_summary_charts_each_alert_from_its_own_rule(tmp_path: Path) -> None:
    from hostwarden.agent.webview import AgentWebView

    rules = {"a.yaml": "groups:\n  - name: g\n    rules:\n"
                       "      - {alert: Busy, expr: 't_value > 10', labels: {severity: critical}}\n"
                       "      - {alert: Level, expr: t_value, warning: '> 5', critical: '> 40'}\n",
             "b.yaml": "groups:\n  - name: h\n    rules:\n      - {alert: Other, expr: 't_other < 100'}\n"}
    agent = _agent(tmp_path, rules, 't_value{k="x"} 50\nt_other 3\n')
    try:
        view = AgentWebView(agent)
        start = agent.clock.now()
        for i in range(3):  # three collection + evaluation cycles, 10 s apart in the store's time
            now = start + 10 * i
            agent._run_collector("textfile", agent.collectors["textfile"], now)
            for g in agent.rules.groups:
                agent.incidents.handle(agent.rules.evaluate(g, agent.store, now), now)
        assert agent.outbox.run_once(agent.outbox.clock()) == 3  # the tickets, opened in the local store
        s = view.summary()
        by_name = {a.name: a for a in s.alerts}
        assert set(by_name) == {"Busy", "Level", "Other"}
        assert [t.value for t in by_name["Busy"].chart.thresholds] == [10.0]
        assert [(t.label, t.value) for t in by_name["Level"].chart.thresholds] == [("warning", 5.0),
                                                                                  ("critical", 40.0)]
        assert [t.label for t in by_name["Other"].chart.thresholds] == ["< 100"]
        (busy,) = by_name["Busy"].chart.series
        assert busy.labels == (("k", "x"),) and {v for _t, v in busy.points} == {50.0}
        assert all(a.ticket is not None and a.ticket.url.startswith("/tickets/local/") for a in s.alerts)
        assert [c.name for c in s.health.collectors] == ["textfile"] and s.health.outbox[0].backend == "local"
        assert len(s.incidents) == 3
        silences = hasattr(agent.incidents, "suppress")  # a build with `hostwarden silence`
        assert s.silences is silences
        assert all(a.silenced == ("" if silences else None) for a in s.alerts)  # nothing silenced
        assert view.local_ticket("local", 1)["id"] == 1 and view.local_ticket("nope", 1) is None
    finally:
        agent.stop()
