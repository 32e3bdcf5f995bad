"""`scoreloop` monitor, retrain, feedback and simulate: thin wrappers over `monitoring` and `scoreloop.loop.retrain`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scoreloop.cli.app import app, console, fail, settings_of, show


def parse_period(text: str) -> timedelta:
    """'30d', '12h', '2w' -> a timedelta; anything else is a clear error."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text.lower())
    if not match or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r} is not a period: use a positive number of hours, days or weeks (30d)")
    unit = {"h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


Moment = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])]


def show_report(title: str, report, gate: bool) -> None:
    """Print a monitoring report's checks and where it is; with `gate`, a failed check exits 1 naming the figures."""
    from scoreloop.monitoring.checks import MonitoringGateError, enforce

    show(title, {"status": report.status, "report": str(report.html_path), **report.summary["headline"]})
    for check in report.checks:
        console.print(f"  {'[red]FAIL[/]' if check.passed is False else '[green]ok[/]  '} {check.describe()}")
    if gate:
        try:
            enforce(list(report.checks))
        except MonitoringGateError as exc:
            console.print(f"[bold red]monitoring gate failed:[/] {exc}")
            raise typer.Exit(code=1) from exc


@app.command()
def monitor(
    ctx: typer.Context,
    reference: Annotated[Path | None, typer.Option(help="Files mode: reference records (CSV or Parquet).")] = None,
    current: Annotated[Path | None, typer.Option(help="Files mode: current records (CSV or Parquet).")] = None,
    spec: Annotated[Path | None, typer.Option(help="Dataset spec YAML (period mode: overrides the card's).")] = None,
    period: Annotated[str | None, typer.Option(help="Period mode: the scoring log's last PERIOD (30d, 2w).")] = None,
    end: Moment = None,
    reference_start: Moment = None,
    reference_end: Moment = None,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Exit 1 when a check fails (for schedulers).")] = False,
    name: Annotated[str, typer.Option(help="Label of the report folder (letters, digits, . _ - kept).")] = "",
) -> None:
    """Evidently reports (HTML + JSON) under the home, judged against SCORELOOP_MONITOR__* and logged to MLflow.

    Files mode (--reference, --current, --spec): data drift and data quality. Period mode (--period): the scoring
    log joined with outcomes, [END - PERIOD, END) against the period before (or --reference-start/--reference-end):
    feature drift, data quality, score PSI, quality and calibration on labelled records by tier.
    """
    from scoreloop.core.spec import DatasetSpec
    from scoreloop.monitoring.monitor import Window, monitor_drift, monitor_period

    settings = settings_of(ctx)
    if period is not None:
        if (reference_start is None) != (reference_end is None):
            raise fail("give both --reference-start and --reference-end, or neither (the previous period)")
        window = Window(reference_start, reference_end) if reference_start and reference_end else None
        loaded = DatasetSpec.load(spec) if spec else None
        report = monitor_period(settings, parse_period(period), end=end, reference=window, spec=loaded, name=name)
    elif reference and current and spec:
        report = monitor_drift(settings, DatasetSpec.load(spec), reference, current, name=name)
    else:
        raise fail("give --period (scoring log) or all of --reference, --current and --spec (files)")
    show_report("monitoring", report, gate)


@app.command()
def retrain(
    ctx: typer.Context,
    window: Annotated[str, typer.Option(help="Train on the labelled records of the last WINDOW (90d, 12w).")] = "90d",
    end: Moment = None,
    ipw: Annotated[bool, typer.Option("--ipw/--no-ipw", help="Weight records by clipped 1/propensity.")] = False,
    time: Annotated[str, typer.Option(help="Window on 'scored_at' or the record's own time ('record').")] = "scored_at",
    spec: Annotated[Path | None, typer.Option(help="Dataset spec YAML (default: the champion's).")] = None,
    trials: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Sliding-window retrain from the scoring log + outcomes: challenger, gate, and why it promoted or refused."""
    from scoreloop.core.spec import DatasetSpec
    from scoreloop.loop.release_notes import write_release_notes
    from scoreloop.loop.retrain import retrain as run_retrain
    from scoreloop.training.promote import GateDecision

    if time not in ("scored_at", "record"):
        raise fail(f"--time must be 'scored_at' or 'record', got {time!r}")
    settings = settings_of(ctx)
    if trials:
        settings.train.trials = trials
    loaded = DatasetSpec.load(spec) if spec else None
    basis = "record" if time == "record" else "scored_at"
    result = run_retrain(settings, parse_period(window), end=end, ipw=ipw, basis=basis, spec=loaded)
    show(f"retrain: {result.outcome}", result.to_dict())
    if result.findings.gate and (notes := write_release_notes(settings, GateDecision(**result.findings.gate))):
        console.print(f"release notes: {notes}")


@app.command()
def feedback(ctx: typer.Context) -> None:
    """Feedback-loop report across model versions: label coverage, explored vs exploited, shift between versions."""
    from scoreloop.monitoring.feedback import feedback_report

    summary = feedback_report(settings_of(ctx))
    show("feedback loop", {"report": summary["report"], **summary["figures"]})


@app.command()
def simulate(
    ctx: typer.Context,
    cycles: Annotated[int, typer.Option(min=1, help="Months after the pilot month.")] = 4,
    policy: Annotated[list[str] | None, typer.Option(help="exploit or explore (repeatable; default both).")] = None,
    ipw: Annotated[bool, typer.Option("--ipw/--no-ipw", help="Retrain with inverse-propensity weights.")] = False,
    rows: Annotated[int, typer.Option(min=200, help="Leads a month.")] = 2000,
    seed: int = 0,
    window: Annotated[int, typer.Option(min=1, help="Retraining window in months.")] = 2,
    epsilon: Annotated[float | None, typer.Option(min=0, max=1, help="Exploration share of the capacity.")] = None,
    trials: Annotated[int, typer.Option(min=1)] = 1,
    monitor: Annotated[bool, typer.Option("--monitor/--no-monitor", help="A monitoring report every cycle.")] = True,
    gate: Annotated[
        bool, typer.Option("--gate/--no-gate", help="Deploy a retrain only when the gate passes (default: always).")
    ] = False,
) -> None:
    """Run the feedback loop on the synthetic world: score, work, observe, retrain, repeat, with drift on."""
    from scoreloop.loop.simulate import POLICIES, SimulationConfig, policy_totals, run_simulation

    settings = settings_of(ctx)
    chosen = policy or list(POLICIES)
    unknown = sorted(set(chosen) - set(POLICIES))
    if unknown:
        raise fail(f"--policy {unknown} unknown; allowed: {list(POLICIES)}")
    settings.train.trials = trials
    if epsilon is not None:
        settings.policy.epsilon = epsilon
    config = SimulationConfig(cycles=cycles, rows=rows, seed=seed, window=window, monitor=monitor, gate=gate)
    results, report = run_simulation(settings, [(p, ipw) for p in chosen], config)
    table = Table(title=f"simulation (report: {report})", title_justify="left")
    columns = ("policy", "cycle", "model_version", "worked", "explored", "conversions", "true_auc", "retrain")
    for column in columns:
        table.add_column(column)
    for r in results:
        values = r.to_dict()
        table.add_row(*(f"{values[c]:.4f}" if isinstance(values[c], float) else str(values[c]) for c in columns))
    console.print(table)
    totals = policy_totals(results)
    show("per policy", {p: {k: round(float(v), 4) for k, v in row.items()} for p, row in totals.iterrows()})
