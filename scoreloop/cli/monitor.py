"""`scoreloop` monitor, retrain, feedback and simulate: thin wrappers over `monitoring` and `scoreloop.loop.retrain`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scoreloop.cli.app import app, console, fail, progress_bar, settings_of, show


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
        with progress_bar("monitoring") as progress:
            report = monitor_period(
                settings, parse_period(period), end=end, reference=window, spec=loaded, name=name, progress=progress
            )
    elif reference and current and spec:
        with progress_bar("monitoring") as progress:
            report = monitor_drift(settings, DatasetSpec.load(spec), reference, current, name=name, progress=progress)
    else:
        raise fail("give --period (scoring log) or all of --reference, --current and --spec (files)")
    show_report("monitoring", report, gate)


@app.command()
def retrain(
    ctx: typer.Context,
    window: Annotated[str, typer.Option(help="Train on the labelled records of the last WINDOW (90d, 12w).")] = "90d",
    end: Moment = None,
    ipw: Annotated[
        bool | None, typer.Option("--ipw/--no-ipw", help="Weight records by clipped 1/propensity [retrain.ipw].")
    ] = None,
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
    with progress_bar("retraining") as progress:
        result = run_retrain(
            settings, parse_period(window), end=end, ipw=ipw, basis=basis, spec=loaded, progress=progress
        )
    show(f"retrain: {result.outcome}", result.to_dict())
    if result.findings.gate and (notes := write_release_notes(settings, GateDecision(**result.findings.gate))):
        console.print(f"release notes: {notes}")


@app.command()
def feedback(ctx: typer.Context) -> None:
    """Feedback-loop report across model versions: label coverage, explored vs exploited, shift between versions."""
    from scoreloop.monitoring.feedback import feedback_report

    summary = feedback_report(settings_of(ctx))
    show("feedback loop", {"report": summary["report"], **summary["figures"]})


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0-9', '3' or '0,2,5' -> seeds; anything else is a clear error."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if match and int(match.group(1)) <= int(match.group(2)):
        return tuple(range(int(match.group(1)), int(match.group(2)) + 1))
    if re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", text):
        return tuple(int(part) for part in text.split(","))
    raise typer.BadParameter(f"{text!r} is not a seed list: use 0-9, 3 or 0,2,5")


@app.command()
def simulate(
    ctx: typer.Context,
    cycles: Annotated[int, typer.Option(min=1, help="Worked months after the pilot month.")] = 6,
    seeds: Annotated[str, typer.Option(help="Seeds: 0-9, 3 or 0,2,5; one world and pilot each.")] = "0",
    arm: Annotated[list[str] | None, typer.Option(help="explore, exploit, oracle, stale (repeatable).")] = None,
    rows: Annotated[int, typer.Option(min=200, help="Records a month (synthetic world).")] = 3000,
    window: Annotated[int, typer.Option(min=1, help="Retraining window in months.")] = 2,
    epsilon: Annotated[float | None, typer.Option(min=0, max=1, help="Exploration share of the capacity.")] = None,
    exploration: Annotated[str | None, typer.Option(help="uniform or proportional (below the top).")] = None,
    trials: Annotated[int, typer.Option(min=1)] = 1,
    monitor: Annotated[bool, typer.Option("--monitor/--no-monitor", help="A monitoring report every cycle.")] = True,
    data: Annotated[Path | None, typer.Option(help="Replay this labelled table.")] = None,
    spec: Annotated[Path | None, typer.Option(help="The spec of --data.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Every arm, seed and cycle as JSON.")] = None,
) -> None:
    """Run the feedback loop where the truth is known: every arm on every seed, each gate decision judged."""
    import json

    from scoreloop.core.spec import DatasetSpec
    from scoreloop.loop.simulate import ARMS, SimulationConfig, arm_summary, gate_judgement, run_simulation
    from scoreloop.training.train import load_rows

    settings = settings_of(ctx)
    chosen = tuple(arm or ARMS)
    unknown = sorted(set(chosen) - set(ARMS))
    if unknown:
        raise fail(f"--arm {unknown} unknown; allowed: {list(ARMS)}")
    if (data is None) != (spec is None):
        raise fail("--data and --spec go together: the spec says which column is the label and which the time")
    if exploration not in (None, "uniform", "proportional"):
        raise fail(f"--exploration {exploration!r} unknown; allowed: ['uniform', 'proportional']")
    settings.train.trials = trials
    if epsilon is not None:
        settings.policy.epsilon = epsilon
    if exploration is not None:
        settings.policy.exploration = exploration
    replay = None
    if data is not None and spec is not None:
        loaded = DatasetSpec.load(spec)
        replay = (load_rows(data, loaded)[0], loaded)
    config = SimulationConfig(cycles=cycles, rows=rows, seeds=parse_seeds(seeds), window=window, monitor=monitor,
                              arms=chosen)  # fmt: skip
    with progress_bar("simulating") as progress:
        records, report = run_simulation(settings, config, replay, progress)
    if json_out is not None:
        fields = ("arm", "seed", "cycle", "true_auc_champion", "true_auc_challenger", "promoted", "conversions",
                  "gate_estimate", "gate_low", "gate_high")  # fmt: skip
        rows_out = [{k: r.to_dict()[k] for k in fields} | r.to_dict() for r in records]  # named fields first
        json_out.write_text(json.dumps(rows_out, indent=1, default=float))
    table = Table(title=f"simulation (report: {report})", title_justify="left")
    summary = arm_summary(records)
    for column in ("arm", *summary.columns):
        table.add_column(column)
    for name, row in summary.iterrows():
        table.add_row(name, *(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    show("gate decisions against the truth", gate_judgement(records))
