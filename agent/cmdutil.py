"""What the operator's commands share: exit codes, error reporting, loading the agent's config, and printing
untrusted text (labels, annotations, ticket comments) to a terminal.

Exit codes, for every command: 0 ok, 1 runtime failure, 2 config or usage error.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from hostwarden.agent.core.paths import default_config_path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# C0/C1 controls, line/paragraph separators and bidirectional overrides: a label value must not move the
# cursor, clear the screen or reorder what an operator reads
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNPRINTABLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class CommandError(Exception):
    """Ends a command with `hostwarden: MESSAGE` on stderr and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def run_command(fn: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int]:
    """A subcommand's entry: CommandError → message + code; a reader gone away (`| head`) → no traceback."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            code = int(fn(args) or 0)
            sys.stdout.flush()  # a closed pipe (`| head`) shows here, not at interpreter exit
            return code
        except CommandError as e:
            print(f"hostwarden: {e}", file=sys.stderr)
            return e.code
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
            return EXIT_FAILURE

    return wrapper


def load_agent_config(args: argparse.Namespace) -> Any:
    """The config `--config` names (default: the one `hostwarden run` uses); every problem on stderr."""
    from hostwarden.agent.config import load_config
    from hostwarden.agent.core.schema import ConfigErrors

    path = args.config or default_config_path()
    try:
        return load_config(path)
    except ConfigErrors as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        raise CommandError(f"{len(e.issues)} configuration problem(s) in {path}", EXIT_USAGE) from None
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}", EXIT_USAGE) from None


def safe(text: object) -> str:
    """Untrusted text with every control character but tab and newline replaced by `?`."""
    return _UNPRINTABLE.sub("?", str(text))


def one_line(text: object) -> str:
    """Untrusted text for one line of a table: tabs and newlines replaced by `?` too."""
    return _UNPRINTABLE_LINE.sub("?", str(text))


def local_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts is not None else "-"


def iso_time(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts is not None else None


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def who(args: argparse.Namespace) -> str:
    """`--by`, else the invoking user (the one behind sudo first)."""
    if args.by:
        return str(args.by)
    for var in ("SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
