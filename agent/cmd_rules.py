"""`hostwarden test-rules FILE...` and `hostwarden rules export`.

Exit codes: 0 ok; 1 a rule test failed (as promtool); 2 config or usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    test = sub.add_parser("test-rules", help="run rule unit tests written in `promtool test rules` format",
                          description="Run rule unit tests (promtool test rules format; hostwarden's rule "
                                      "extensions allowed). Exit 0 when every test passes, 1 otherwise.")
    test.add_argument("files", nargs="+", metavar="FILE", help="test files")
    test.add_argument("--promql-compat", type=int, choices=(2, 3), default=3,
                      help="PromQL semantics: 3 (default, what the agent evaluates) or 2 (Prometheus 2.x range "
                           "boundaries, to compare with promtool 2.x)")
    test.set_defaults(func=cmd_test_rules)

    rules = sub.add_parser("rules", help="rule utilities (export)")
    rsub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    export = rsub.add_parser("export", help="write the loaded rules as a Prometheus rule file",
                             description="Write the rules the agent loads as one Prometheus rule file: threshold "
                                         "extensions become equivalent PromQL alerts, the rest becomes comments.")
    export.add_argument("--config", "-c", dest="config", help="agent config (default: the installed one)")
    export.add_argument("-o", "--output", help="output file (default: standard output)")
    export.add_argument("rule_files", nargs="*", metavar="RULE_FILE",
                        help="export these rule files instead of the config's")
    export.set_defaults(func=cmd_rules_export)


def cmd_test_rules(args: argparse.Namespace) -> int:
    from hostwarden.rules.testing import run_test_files

    return run_test_files(list(args.files), promql_compat=args.promql_compat)


def cmd_rules_export(args: argparse.Namespace) -> int:
    from hostwarden.agent.core.schema import ConfigErrors, Errors
    from hostwarden.rules.export import export_groups
    from hostwarden.rules.loader import load_rule_files

    try:
        if args.rule_files:
            errors = Errors()
            groups = load_rule_files(list(args.rule_files), errors, default_interval=60.0)
            errors.raise_if_any()
            sources = list(args.rule_files)
        else:
            from hostwarden.agent.core.paths import default_config_path
            from hostwarden.agent.daemon import load_all

            path = args.config or default_config_path()
            config, groups = load_all(path)
            sources = config.rule_files
    except ConfigErrors as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        return 2
    text = export_groups(groups, sources=sources)
    if args.output and args.output != "-":
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            print(f"{args.output}: {e.strerror or e}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0
