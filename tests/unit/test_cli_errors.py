"""The CLI's one-line errors: never wrapped, and the message's own brackets are text, not rich markup."""

from __future__ import annotations

from scoreloop.cli import app as cli


def test_an_error_is_one_line_with_its_brackets_intact() -> None:
    message = "records[0].employees: cannot read 'many' [/] as a number " + "x" * 200
    width = cli.console.width
    cli.console.width = 40
    try:
        with cli.console.capture() as captured:
            cli.print_error(message)
    finally:
        cli.console.width = width
    assert captured.get() == f"error: {message}\n"
