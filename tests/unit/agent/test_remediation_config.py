"""`remediate:` on rules and checks, the `remediation:` section, and the file-trust rule."""

from __future__ import annotations

import os

from hostwarden.agent.core.remedy import (
    DEFAULT_AFTER,
    DEFAULT_MAX,
    DEFAULT_VERIFY_WITHIN,
    DEFAULT_WITHIN,
    Action,
    file_trust_problem,
    parse_plan,
)
from hostwarden.agent.core.schema import Errors
from hostwarden.agent.core.yamlsrc import load_yaml
from hostwarden.rules.loader import load_rule_files


def _plan(text: str):
    errors = Errors()
    node = load_yaml(text, "r.yaml")
    plan = parse_plan(node["remediate"], errors, node.key_loc("remediate"))
    return plan, [str(i) for i in errors.issues]


def test_parse_plan_list_form_has_documented_defaults():
    plan, errors = _plan("remediate:\n  - restart_unit: nginx.service\n  - run: [/usr/local/sbin/rotate-logs, --now]\n")
    assert errors == []
    assert plan.actions == (Action("restart_unit", unit="nginx.service"),
                            Action("run", argv=("/usr/local/sbin/rotate-logs", "--now")))
    assert (plan.after, plan.severity, plan.max_attempts, plan.within, plan.verify_within) == (
        DEFAULT_AFTER, "critical", DEFAULT_MAX, DEFAULT_WITHIN, DEFAULT_VERIFY_WITHIN) == (120.0, "critical", 3,
                                                                                           1800.0, 120.0)
    assert plan.source == "r.yaml:1"
    assert plan.actions[0].timeout == 30.0


def test_parse_plan_mapping_form_options():
    plan, errors = _plan("""remediate:
  after: 30s
  severity: any
  max: 2 within 10m
  verify_within: 1m
  actions:
    - reload_unit: $labels.name
      timeout: 5s
    - run: [/usr/local/sbin/rotate-logs, $labels.path]
      user: nobody
""")
    assert errors == []
    assert (plan.after, plan.severity, plan.max_attempts, plan.within, plan.verify_within) == (30.0, "any", 2, 600.0,
                                                                                               60.0)
    assert plan.actions[0] == Action("reload_unit", unit="$labels.name", timeout=5.0)
    assert plan.actions[1].user == "nobody"


def test_parse_plan_errors_are_located_and_complete():
    plan, errors = _plan("""remediate:
  max: three
  severity: warning
  aftr: 1m
  actions:
    - restart_unit: "nginx.service; rm -rf /"
    - run: [rotate-logs]
    - run: [/bin/echo, "prefix-$labels.x"]
    - restart_unit: a.service
      run: [/bin/true]
    - start_unit: a.service
      user: root
    - bogus: 1
""")
    assert plan is None
    text = "\n".join(errors)
    assert "r.yaml:2:8: remediate.max: expected a count" in text
    assert "r.yaml:3:13: remediate.severity: must be 'critical' or 'any'" in text
    assert "r.yaml:4:3: unknown key 'remediate.aftr' (did you mean 'after'?)" in text
    assert "r.yaml:6:21: remediate[0].restart_unit: expected a unit name" in text
    assert "remediate[1].run[0]: the program must be an absolute path" in text
    assert "remediate[2].run[1]: a $labels.x placeholder must be the whole argument" in text
    assert "remediate[3]: exactly one of" in text
    assert "remediate[4].user: only a run: action runs as another user" in text
    assert "unknown key 'remediate[5].bogus'" in text


def test_rule_loader_reads_remediate_extension(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("""groups:
  - name: web
    rules:
      - alert: NginxDown
        expr: hostwarden_check_up{check="nginx"} == 0
        remediate:
          - restart_unit: nginx.service
      - record: x:y
        expr: vector(1)
        remediate: [{restart_unit: a.service}]
""")
    errors = Errors()
    load_rule_files([str(path)], errors, default_interval=10.0)
    assert [str(i).replace(str(path), "r.yaml") for i in errors.issues] == [
        "r.yaml:10:9: 'remediate' is only valid on alerting rules"]
    path.write_text(path.read_text().rsplit("      - record", 1)[0])
    errors = Errors()
    (group,) = load_rule_files([str(path)], errors, default_interval=10.0)
    assert not errors
    assert group.rules[0].remediate.actions == (Action("restart_unit", unit="nginx.service"),)
    assert group.rules[0].remediate.source == f"{path}:6"


def test_check_config_reads_remediate(tmp_path):
    from hostwarden.agent.config import load_config

    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text("""checks:
  - name: nginx
    type: systemd
    unit: nginx.service
    remediate: [{restart_unit: nginx.service}]
remediation:
  dry_run: true
""")
    config = load_config(str(cfg))
    assert config.checks[0].remediate.actions == (Action("restart_unit", unit="nginx.service"),)
    assert config.remediation.enabled is True and config.remediation.dry_run is True
    cfg.write_text("checks:\n  - {name: n, type: systemd, unit: a.service, remediate: [{run: [x]}]}\n"
                   "remediation: {enabled: maybe}\n")
    try:
        load_config(str(cfg))
    except Exception as e:
        text = str(e)
    assert "checks[0].remediate[0].run[0]: the program must be an absolute path" in text
    assert "remediation.enabled: expected true or false" in text


def test_file_trust_problem_owner_and_mode(tmp_path):
    f = tmp_path / "rules.yaml"
    f.write_text("groups: []\n")
    os.chmod(f, 0o644)
    uid = os.stat(f).st_uid
    assert file_trust_problem(str(f), owner_uid=uid) is None
    os.chmod(f, 0o664)
    assert "group- or world-writable (mode 0664)" in file_trust_problem(str(f), owner_uid=uid)
    os.chmod(f, 0o646)
    assert "group- or world-writable" in file_trust_problem(str(f), owner_uid=uid)
    os.chmod(f, 0o644)
    assert f"owned by uid {uid}, not by root (uid {uid + 1})" in file_trust_problem(str(f), owner_uid=uid + 1)
    assert "cannot stat" in file_trust_problem(str(tmp_path / "missing.yaml"))


def test_check_config_lists_check_actions_and_the_switch(tmp_path):
    from tests.support.agent import run_cli

    cfg = tmp_path / "hostwarden.yaml"
    cfg.write_text(f"""global: {{state_dir: {tmp_path / 'state'}}}
checks:
  - name: nginx
    type: systemd
    unit: nginx.service
    remediate:
      max: 2
      actions:
        - reload_unit: nginx.service
        - run: [/usr/local/sbin/collect-debug, nginx.service]
          timeout: 1m
          user: nobody
remediation: {{enabled: false}}
""")
    os.chmod(cfg, 0o644)
    res = run_cli("check-config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[:4] == [
        "remediation: disabled (remediation: {enabled: false})",
        f"  check nginx ({cfg}:6): after 2m, severity critical, max 2 within 30m, verify within 2m",
        "    1. reload_unit nginx.service (timeout 30s)",
        "    2. run /usr/local/sbin/collect-debug nginx.service (as nobody) (timeout 1m)",
    ]
    if os.geteuid() == 0:
        assert "REFUSED" not in res.stdout
        os.chmod(cfg, 0o666)
        res = run_cli("check-config", str(cfg))
        assert f"REFUSED: actions declared in {cfg} will not run: {cfg} is group- or world-writable (mode 0666)" \
            in res.stdout
