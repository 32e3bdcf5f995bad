"""`scoreloop` spec, data and ingest: a dataset's spec, the synthetic world, and typed rows from an export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scoreloop.cli.app import app, data_app, settings_of, show, spec_app


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
    """Write a first dataset spec for DATA (CSV or Parquet), with its delimiter and number format; review and edit
    it before training."""
    from scoreloop.core.infer import infer_spec
    from scoreloop.core.ingest import read_raw, sniff_delimiter

    delimiter = sniff_delimiter(data)
    spec = infer_spec(
        read_raw(data, delimiter).frame,
        target,
        id_column=id_column,
        time_column=time_column,
        positive_label=positive,
        exclude=tuple(exclude or ()),
        name=data.name.split(".")[0],
        delimiter=delimiter,
    )
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
    from scoreloop.core.export import write_leads
    from scoreloop.core.synthetic import WorldConfig

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
    """Read DATA against SPEC; rejected rows go to OUTPUT's .quarantine.csv with a reason each."""
    from scoreloop.core.ingest import ingest_file
    from scoreloop.core.spec import DatasetSpec

    report = ingest_file(data, DatasetSpec.load(spec), output)
    show("ingested", report.to_dict())
