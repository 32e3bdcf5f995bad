"""`scoreloop` record, movers and bands: thin wrappers over `serving.history`, `serving.movers` and
`monitoring.bands`, for the people who work the scores."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scoreloop.cli.app import app, console, fail, settings_of
from scoreloop.cli.monitor import parse_period
from scoreloop.core.settings import Settings

Output = Annotated[Path | None, typer.Option("-o", "--output", help="Also write the table (.csv, .parquet).")]


def version_loader(settings: Settings):
    """(model name, version) -> that registered version, each loaded once; None when it cannot be found."""
    from scoreloop.core.tracking import configure, load_version

    configure(settings)

    @cache
    def load(name: str, version: str):
        try:
            return load_version(name, version)
        except Exception:  # a deleted version or an unreachable registry: the entry is shown without reasons
            return None

    return load


def write_frame(frame, path: Path) -> None:
    """A result as CSV or Parquet, by the file's suffix."""
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


@app.command()
def record(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(metavar="ID", help="The id the record was scored with.")],
    top: Annotated[int, typer.Option(min=1, help="Reasons per score.")] = 3,
) -> None:
    """Every score, tier and model version of one record over time, its outcome if known, and the top reasons."""
    from scoreloop.core.coerce import id_problem
    from scoreloop.core.store import RecordStore
    from scoreloop.serving.history import record_history

    if problem := id_problem(record_id):
        raise fail(f"record id {problem}")
    settings = settings_of(ctx)
    entries = record_history(RecordStore(settings.record_store_url), record_id, version_loader(settings), top)
    if not entries:
        raise fail(f"record {record_id!r} was never scored")
    table = Table(title=f"record {record_id}", title_justify="left")
    for column in ("scored at (UTC)", "score", "tier", "version", "outcome", "top reasons"):
        table.add_column(column, overflow="fold")
    for e in entries:
        outcome = "-" if e["outcome"] is None else ("converted" if e["outcome"] else "not converted")
        reasons = "; ".join(r["text"] for r in e["reasons"]) if e["reasons"] is not None else "(version unavailable)"
        table.add_row(e["scored_at"][:19], str(e["score"]), e["tier"], e["version"], outcome, reasons)
    console.print(table)


@app.command()
def movers(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Latest scores within this period (12h, 1d, 2w) before now.")] = "1d",
    min_change: Annotated[int, typer.Option(min=0, max=100, help="Score points a move must reach.")] = 20,
    into: Annotated[str | None, typer.Option(help="Only records that entered this tier (A).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Largest moves listed (and explained).")] = 50,
    top: Annotated[int, typer.Option(min=1, help="Reasons per mover.")] = 3,
    output: Output = None,
) -> None:
    """The records whose score moved at least MIN_CHANGE points or changed tier since their previous score, largest
    moves first, with the features whose contributions changed most."""
    from scoreloop.core.store import RecordStore
    from scoreloop.serving.movers import explain_movers, find_movers

    settings = settings_of(ctx)
    store = RecordStore(settings.record_store_url)
    start = datetime.now(UTC).replace(tzinfo=None) - parse_period(since)
    found = find_movers(store.scores(features=False), start, min_change, into)
    listed = explain_movers(store, found.head(limit), version_loader(settings), top)
    table = Table(title=f"{len(found)} movers since {start:%Y-%m-%d %H:%M} UTC", title_justify="left")
    for column in ("record", "score", "change", "tier", "version", "what moved"):
        table.add_column(column, overflow="fold")
    for m in listed.itertuples(index=False):
        table.add_row(
            str(m.record_id),
            f"{m.previous_score} -> {m.score}",
            f"{m.change:+d}",
            f"{m.previous_tier} -> {m.tier}",
            m.version if m.version == m.previous_version else f"{m.previous_version} -> {m.version}",
            m.reasons,
        )
    console.print(table)
    if output is not None:
        write_frame(listed, output)
        console.print(f"written: {output}")


@app.command()
def bands(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="Cohorts of a 'week' or a 'month'.")] = "week",
    by: Annotated[str, typer.Option(help="'tier', or score 'band' (SCORELOOP_MONITOR__BAND_WIDTH points).")] = "tier",
    output: Output = None,
) -> None:
    """Of the records scored in each tier (or score band) each week or month, how many converted, by model version,
    with Wilson 95% intervals; cohorts too young for their outcomes are marked. Also written as a report page."""
    from scoreloop.monitoring.bands import bands as band_figures
    from scoreloop.monitoring.bands import publish_bands

    if period not in ("week", "month") or by not in ("tier", "band"):
        raise fail(f"--period must be week or month and --by tier or band, got {period!r} and {by!r}")
    settings = settings_of(ctx)
    figures = band_figures(settings, period, by, datetime.now(UTC).replace(tzinfo=None))  # type: ignore[arg-type]
    table = Table(title=f"conversion by {by}, {period}ly cohorts", title_justify="left")
    for column in ("cohort", by, "version", "records", "labelled", "converted", "rate (95%)", "IPW rate", ""):
        table.add_column(column)
    for r in figures.itertuples(index=False):
        table.add_row(
            f"{r.cohort:%Y-%m-%d}",
            str(getattr(r, by)),
            str(r.version),
            str(r.records),
            str(r.labelled),
            str(r.converted),
            "-" if r.labelled == 0 else f"{r.rate:.1%} ({r.low:.1%}-{r.high:.1%})",
            "-" if r.ipw_rate != r.ipw_rate else f"{r.ipw_rate:.1%}",
            "too young" if r.young else "",
        )
    console.print(table)
    console.print(f"report: {publish_bands(settings, figures, period, by)}")  # type: ignore[arg-type]
    if output is not None:
        write_frame(figures, output)
