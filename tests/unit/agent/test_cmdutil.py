"""What every operator command shares: untrusted text reaching a terminal, error exits."""

from __future__ import annotations

import argparse

from hostwarden.agent.cmdutil import EXIT_USAGE, CommandError, one_line, run_command, safe, table


def test_safe_keeps_lines_and_strips_escapes_and_bidi_overrides() -> None:
    text = "disk /data\n\tfull \x1b]0;pwned\x07 \u202eevil\u2066"
    assert safe(text) == "disk /data\n\tfull ?]0;pwned? ?evil?"
    assert one_line(text) == "disk /data??full ?]0;pwned? ?evil?"


def test_run_command_turns_command_error_into_message_and_code(capsys) -> None:  # type: ignore[no-untyped-def]
    def fails(args: argparse.Namespace) -> int:
        raise CommandError("no such ticket 7", EXIT_USAGE)

    assert run_command(fails)(argparse.Namespace()) == EXIT_USAGE
    assert capsys.readouterr().err == "hostwarden: no such ticket 7\n"


def test_table_pads_columns_to_the_widest_cell() -> None:
    assert table([["1", "open"], ["12", "closed"]], ["ID", "STATUS"]) == "ID  STATUS\n1   open\n12  closed"
