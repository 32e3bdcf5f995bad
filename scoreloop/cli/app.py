"""What every `scoreloop` command shares: the Typer app, the console (the only place that prints) and the settings
object built once per invocation. The commands live in sibling modules; `scoreloop.cli.main` registers them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scoreloop.core.progress import Progress
from scoreloop.core.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Experiment-tracked scoring models, end to end.")
spec_app = typer.Typer(no_args_is_help=True, help="Dataset specs.")
data_app = typer.Typer(no_args_is_help=True, help="The embedded synthetic lead world.")
app.add_typer(spec_app, name="spec")
app.add_typer(data_app, name="data")
console = Console()

Home = Annotated[Path | None, typer.Option("--home", help="State folder (default: $SCORELOOP_HOME or ./.scoreloop).")]


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.obj


@app.callback()
def main(ctx: typer.Context, home: Home = None) -> None:
    """Build the one settings object every command receives."""
    ctx.obj = Settings(home=home) if home else Settings()


def show(title: str, values: dict) -> None:
    """Print a two-column table of a result."""
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in values.items():
        table.add_row(str(key), value if isinstance(value, str) else json.dumps(value, default=str))
    console.print(table)


def print_error(message: str) -> None:
    """One `error:` line, never wrapped to the terminal's width (logs and tests can search it)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def fail(message: str) -> typer.Exit:
    print_error(message)
    return typer.Exit(code=2)


@contextmanager
def progress_bar(title: str) -> Iterator[Progress]:
    """A live bar for a long operation's `Progress` (title, bar, share, time left, the operation's note), erased when
    done; nothing at all when the console is not a terminal (logs, pipes, CI), where the result lines suffice."""
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as LiveBar

    columns = (
        TextColumn(title),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    with LiveBar(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("", total=None)
        yield lambda done, total, note: bar.update(task, completed=done, total=total, description=note, refresh=True)
