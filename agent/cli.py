"""`hostwarden` command line. Each subcommand lives in the module that owns its subject and adds
itself through `add_commands(subparsers)`; this file only lists those modules.

Exit codes (borgmatic's): 0 ok, 1 runtime failure, 2 config or usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hostwarden.agent.core import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "hostwarden.agent.cmd_run",          # run, check-config
    "hostwarden.agent.cmd_rules",              # test-rules, rules export
    "hostwarden.agent.cmd_tickets",      # tickets ..., report
    "hostwarden.agent.cmd_silence",      # silence ..., incidents ...
    "hostwarden.agent.install",          # install
    "hostwarden.agent.cmd_status",       # status
    "hostwarden.agent.cmd_receive",      # receive
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hostwarden",
        description="Host monitoring and alerting agent: collectors, /metrics, alert rules, incident tickets.",
    )
    parser.add_argument("--version", action="version", version=f"hostwarden {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            continue
        mod.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
