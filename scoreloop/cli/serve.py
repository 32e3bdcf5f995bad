"""`scoreloop` serve, bento and score: thin wrappers over `serving.bento` and `serving.batch`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scoreloop.cli.app import app, console, fail, progress_bar, settings_of, show


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind; any but loopback needs SCORELOOP_SERVE__API_KEY.")] = (
        "127.0.0.1"
    ),
    open_feedback: Annotated[
        bool,
        typer.Option(
            "--open-feedback",
            help="Serve a non-loopback --host without an API key: anyone who reaches it may write /feedback, which "
            "steers the next model (SCORELOOP_SERVE__OPEN_FEEDBACK=true).",
        ),
    ] = False,
) -> None:
    """Serve the champion with BentoML (POST /score), following `models:/NAME@champion` as it moves."""
    from scoreloop.serving.bento import check_bind, check_store
    from scoreloop.serving.bento import serve as run_server

    settings = settings_of(ctx)
    if open_feedback:
        settings.serve.open_feedback = True
    check_bind(settings, host)
    check_store(settings)
    console.print(f"serving the champion on http://{host}:{port}")
    raise typer.Exit(run_server(settings, host, port))


@app.command()
def bento(ctx: typer.Context) -> None:
    """Build a bento holding the champion (`bentoml serve scoreloop:latest` serves it)."""
    from scoreloop.serving.bento import build

    raise typer.Exit(build(settings_of(ctx)))


@app.command()
def score(
    ctx: typer.Context,
    data: Path,
    output: Annotated[Path, typer.Option("-o", "--output", help="Scored rows: .csv or .parquet.")],
    chunk_rows: Annotated[int, typer.Option(min=1, help="Records read and scored at a time.")] = 50_000,
    work: Annotated[
        bool,
        typer.Option(
            "--work/--no-work",
            help="The file is a worklist: the work policy (SCORELOOP_POLICY__*) decides over the whole file which "
            "leads are worked; the output is the queue (by probability, worked leads with queue position and "
            "reasons), and every scored row is logged with its propensity, for outcomes and `retrain --ipw`.",
        ),
    ] = False,
    capacity: Annotated[
        int | None, typer.Option(min=1, help="With --work: leads worked in the file (or per day with --per-day).")
    ] = None,
    per_day: Annotated[
        bool, typer.Option("--per-day", help="With --work: a queue per day of the spec's time column.")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="'local': chunks in this process; 'spark': the registered pyfunc on Spark, OUTPUT and its "
            "quarantine written as Spark datasets (directories of part files)."
        ),
    ] = "local",
    master: Annotated[
        str | None,
        typer.Option(
            help="With --engine spark: local[2], spark://host:7077, yarn... (default: spark-submit's, or local[*])."
        ),
    ] = None,
) -> None:
    """Score DATA (CSV or Parquet, any size) with the champion, as /score does; refused rows go to OUTPUT's
    .quarantine.csv with a reason each. Rows in = rows scored + rows quarantined."""
    from scoreloop.core.store import RecordStore
    from scoreloop.core.tracking import load_registered
    from scoreloop.serving.batch import Worklist, file_kind, score_file, total_work

    file_kind(output)  # refuse an unknown output type before loading anything
    if engine not in ("local", "spark"):
        raise fail(f"--engine must be local or spark, got {engine!r}")
    if master and engine != "spark":
        raise fail("--master says where Spark runs: add --engine spark")
    if engine == "spark" and work:
        raise fail("--work decides over the whole file in one process: use --engine local")
    settings = settings_of(ctx)
    model = load_registered(settings)
    if (capacity is not None or per_day) and not work:
        raise fail("--capacity and --per-day shape the worklist: add --work")
    if per_day and model.spec.time_column is None:
        raise fail("--per-day needs a time column in the model's spec; it has none")
    if engine == "spark":
        from scoreloop.serving.spark import score_with_spark, session

        with session(master, chunk_rows) as spark:
            report = score_with_spark(spark, model, str(data), str(output))
        show("scored", report.to_dict())
        return
    store = RecordStore(settings.record_store_url) if work else None
    worklist = Worklist(settings.policy, store, capacity, per_day, settings.serve.explain_top) if store else None
    total = total_work(data)
    with progress_bar(f"scoring {data.name}") as progress:
        report = score_file(
            model,
            data,
            output,
            chunk_rows=chunk_rows,
            on_chunk=lambda done: progress(done, total, ""),
            worklist=worklist,
        )
    show("scored", report.to_dict())
