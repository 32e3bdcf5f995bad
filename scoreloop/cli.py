"""The `scoreloop` command line: thin wrappers over the stage functions, and the only place that prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scoreloop.settings import Settings

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


def run() -> None:
    """Console entry point: an expected failure (bad input, missing model, refused credentials, unreachable
    store) prints one clear line and exits 2 instead of a traceback."""
    try:
        app()
    except (ValueError, LookupError, PermissionError, ConnectionError) as exc:
        print_error(str(exc))
        raise SystemExit(2) from None


def print_error(message: str) -> None:
    """One `error:` line, never wrapped to the terminal's width (logs and tests can search it)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def fail(message: str) -> typer.Exit:
    print_error(message)
    return typer.Exit(code=2)


@spec_app.command("infer")
def spec_infer(
    data: Path,
    target: Annotated[str, typer.Option(help="Target column.")],
    id_column: Annotated[str | None, typer.Option("--id", help="Id column (guessed when omitted).")] = None,
    time_column: Annotated[str | None, typer.Option("--time", help="Event-time column (guessed when omitted).")] = None,
    positive: Annotated[str | None, typer.Option(help="Positive target label (guessed when omitted).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Columns to leave out (repeatable).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("spec.yaml"),
) -> None:
    """Write a first dataset spec for DATA (CSV or Parquet); review and edit it before training."""
    from scoreloop.infer import infer_spec
    from scoreloop.ingest import read_raw

    try:
        spec = infer_spec(
            read_raw(data).frame,
            target,
            id_column=id_column,
            time_column=time_column,
            positive_label=positive,
            exclude=tuple(exclude or ()),
            name=data.name.split(".")[0],
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    spec.save(output)
    show(f"spec written to {output}", spec.model_dump(exclude={"allowed_values", "ranges"}))


@data_app.command("generate")
def data_generate(
    ctx: typer.Context,
    rows: Annotated[int, typer.Option(min=100)] = 20_000,
    seed: int = 0,
    months: Annotated[int, typer.Option(min=1)] = 12,
    messy: Annotated[bool, typer.Option(help="Write it the way a CRM exports it.")] = False,
    covariate_drift: Annotated[float, typer.Option(min=0, max=1)] = 0.0,
    concept_drift: Annotated[float, typer.Option(min=0, max=1)] = 0.0,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
) -> None:
    """Generate synthetic leads (CSV or Parquet by suffix); the hidden true probabilities go to a .truth file."""
    from scoreloop.export import write_leads
    from scoreloop.synthetic import WorldConfig

    config = WorldConfig(
        rows=rows, seed=seed, months=months, covariate_drift=covariate_drift, concept_drift=concept_drift
    )
    output = output or settings_of(ctx).ensure_home() / "data" / ("leads-messy.csv" if messy else "leads.csv")
    show("generated", write_leads(config, output, messy=messy))


@app.command()
def ingest(
    data: Path,
    spec: Annotated[Path, typer.Option(help="Dataset spec YAML.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Typed Parquet output.")],
) -> None:
    """Coerce DATA against SPEC; rejected rows go to OUTPUT's .quarantine.csv with a reason each."""
    from scoreloop.ingest import ingest_file
    from scoreloop.spec import DatasetSpec

    try:
        report = ingest_file(data, DatasetSpec.load(spec), output)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    show("ingested", report.to_dict())


# The stage commands register themselves on `app`; imported last because they import it from here.
from scoreloop import cli_monitor, cli_serve, cli_train  # noqa: E402, F401
