"""The 1 s remediation step is scheduled only while remediation has something to do: an agent without any
`remediate:` pays nothing for it, and a reload that adds or removes plans adds or removes the step."""

from __future__ import annotations

from pathlib import Path

from hostwarden.agent.core.sdnotify import Notifier
from hostwarden.agent.daemon import Agent, load_all

CHECK = ("checks:\n  - name: api\n    type: tcp\n    address: '127.0.0.1:9'\n    interval: 10s\n"
         "{remediate}")
PLAN = ("    remediate:\n      after: 1m\n      verify_within: 1m\n      max: 3 within 30m\n"
        "      actions:\n        - restart_unit: api.service\n")


def write(cfg: Path, tmp_path: Path, remediate: str) -> None:
    cfg.write_text(f"global: {{interval: 10s, state_dir: {tmp_path / 'state'}, hostname: web-01}}\n"
                   "web: {listen_address: '127.0.0.1:0'}\ncollectors: {load: {}}\nrule_files: []\n"
                   + CHECK.format(remediate=remediate))
    cfg.chmod(0o644)  # plans are read only from files nobody else may write


def test_remediation_step_follows_the_plans_across_reloads(tmp_path: Path) -> None:
    cfg = tmp_path / "hostwarden.yaml"
    write(cfg, tmp_path, "")
    config, groups = load_all(str(cfg))
    agent = Agent(config, groups, notifier=Notifier(""))
    try:
        agent._schedule()
        jobs = {j.id for j in agent.scheduler.get_jobs()}
        assert "remediation" not in jobs and {"incidents", "heartbeat"} <= jobs
        write(cfg, tmp_path, PLAN)
        assert agent.reload()
        assert agent.scheduler.get_job("remediation") is not None
        write(cfg, tmp_path, "")
        assert agent.reload()
        assert agent.scheduler.get_job("remediation") is None
        assert agent.scheduler.get_job("heartbeat") is not None
    finally:
        agent.outbox.stop(drain_timeout=0.0)
        if agent.checks is not None:
            agent.checks.close()
        agent.state.close()
