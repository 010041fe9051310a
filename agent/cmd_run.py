"""`hostwarden run` and `hostwarden check-config`."""

from __future__ import annotations

import argparse
import logging
import sys

from hostwarden.agent.core.paths import default_config_path

log = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the agent (collect, serve /metrics, evaluate rules, open tickets)")
    run.add_argument("--config", default=None, help="agent config file (default: /etc/hostwarden/hostwarden.yaml "
                                                    "when present, else the shipped config/hostwarden.yaml)")
    run.add_argument("--web.listen-address", dest="listen_address", default=None,
                     help="HOST:PORT for /metrics (overrides web.listen_address; default 127.0.0.1:19842)")
    run.add_argument("--web.config.file", dest="web_config_file", default=None,
                     help="exporter-toolkit web config file (TLS, basic auth)")
    run.add_argument("--web.enable-lifecycle", dest="enable_lifecycle", action="store_true",
                     help="enable reloading the configuration via HTTP POST /-/reload (as in Prometheus)")
    run.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warn", "error"])
    run.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])
    run.add_argument("--drain-timeout", dest="drain_timeout", type=float, default=10.0,
                     help="seconds to keep delivering queued ticket operations on SIGTERM (default 10)")
    run.add_argument("--dry-run", dest="dry_run", action="store_true",
                     help="remediation: record on the ticket what would have run, run nothing (docs/remediation.md)")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate the agent config and every rule file it loads")
    check.add_argument("file", nargs="?", default=None, help="config file (default: as for run)")
    check.add_argument("--config", dest="config_opt", default=None, help=argparse.SUPPRESS)
    check.set_defaults(func=cmd_check_config)


def _setup_logging(level: str, fmt: str) -> None:
    from hostwarden.agent.core.logsetup import setup_logging

    setup_logging(level, fmt)


def cmd_run(args: argparse.Namespace) -> int:
    from hostwarden.agent.core.schema import ConfigErrors
    from hostwarden.agent.daemon import Agent, load_all

    _setup_logging(args.log_level, args.log_format)
    path = args.config or default_config_path()
    try:
        config, groups = load_all(path)
    except ConfigErrors as e:
        for issue in e.issues:
            log.error("%s", issue)
        print(f"hostwarden: {len(e.issues)} configuration problem(s) in {path}; not starting", file=sys.stderr)
        return 2
    from hostwarden.agent.core.secrets import SecretError
    from hostwarden.agent.core.sqlitefile import SchemaTooNew
    from hostwarden.agent.incidents.outbox import BackendInitError

    try:
        agent = Agent(config, groups, listen_address=args.listen_address, web_config_file=args.web_config_file,
                      drain_timeout=args.drain_timeout, dry_run=args.dry_run,
                      enable_lifecycle=args.enable_lifecycle)
    except ConfigErrors as e:
        for issue in e.issues:
            log.error("%s", issue)
        return 2
    except (BackendInitError, SecretError) as e:  # e.g. a token's environment variable is not set
        log.error("cannot start: %s", e)
        return 2
    except SchemaTooNew as e:
        log.error("cannot start: %s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1
    return agent.run_forever()


def cmd_check_config(args: argparse.Namespace) -> int:
    """Every problem of every file in one run: the config, every rule file it names (even when the config
    has problems of its own), the ticket backends and the collectors."""
    from hostwarden.agent.config import load_config, tickets_config_of
    from hostwarden.agent.core.schema import ConfigErrors
    from hostwarden.agent.daemon import build_collectors, load_all

    path = args.file or args.config_opt or default_config_path()
    issues: list[str] = []
    config, groups, tickets = None, [], None
    try:
        config, groups = load_all(path)
    except ConfigErrors as e:
        issues += [str(i) for i in e.issues]
        try:  # only the rule files failed: the config's backends and collectors are checked too
            config = load_config(path)
        except (ConfigErrors, OSError):
            config = None
    problems = []
    if config is not None:
        try:
            tickets = tickets_config_of(config)
        except ConfigErrors as e:
            issues += [str(i) for i in e.issues]
    if tickets is not None and config is not None:
        try:
            from hostwarden.agent.incidents.outbox import build_backends

            build_backends(tickets, state_dir=config.state_dir, check_only=True)
        except TypeError:
            pass
        except Exception as e:  # a backend whose secret cannot be resolved, etc.
            problems.append(f"{path}: tickets: {e}")
    if config is not None:
        try:
            build_collectors(config)
        except Exception as e:
            problems.append(f"{path}: collectors: {e}")
    if issues or problems:
        for line in [*issues, *problems]:
            print(line)
        print(f"{path}: {len(issues) + len(problems)} problem(s) found", file=sys.stderr)
        return 2
    assert config is not None and tickets is not None
    n_rules = sum(len(g.rules) for g in groups)
    n_backends = len(getattr(tickets, "backends", []) or [])
    enabled = [n for n, c in config.collectors.items() if getattr(c, "enabled", True)]
    _print_remediation(config, groups)
    print(f"{path}: OK: {len(enabled)} collectors, {len(config.checks)} checks, {len(config.rule_files)} rule files, "
          f"{len(groups)} rule groups, {n_rules} rules, {n_backends} ticket backends")
    return 0


def _print_remediation(config: object, groups: list) -> None:
    """check-config lists every action each rule and check may take (docs/remediation.md)."""
    from hostwarden.agent.core.remedy import file_trust_problem
    from hostwarden.agent.incidents.remediator import PlanIndex, describe_plans

    plans = PlanIndex.build(groups, config.checks)  # type: ignore[attr-defined]
    if not plans:
        return
    settings = config.remediation  # type: ignore[attr-defined]
    state = "disabled (remediation: {enabled: false})" if not settings.enabled else \
        "dry run (remediation: {dry_run: true})" if settings.dry_run else "enabled"
    print(f"remediation: {state}")
    for line in describe_plans(plans):
        print(f"  {line}")
    for f in sorted(plans.files()):
        problem = file_trust_problem(f)
        if problem:
            print(f"  REFUSED: actions declared in {f} will not run: {problem}")
