"""The `scoreloop` command line: thin wrappers over the stage functions, and the only place that prints."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scoreloop.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Experiment-tracked scoring models, end to end.")
spec_app = typer.Typer(no_args_is_help=True, help="Dataset specs.")
data_app = typer.Typer(no_args_is_help=True, help="The embedded synthetic lead world.")
app.add_typer(spec_app, name="spec")
app.add_typer(data_app, name="data")
console = Console()

Home = Annotated[Path | None, typer.Option("--home", help="State folder (default: $SCORELOOP_HOME or ./.scoreloop).")]


def _settings(ctx: typer.Context) -> Settings:
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
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
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
    output = output or _settings(ctx).ensure_home() / "data" / ("leads-messy.csv" if messy else "leads.csv")
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


@app.command()
def train(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Option(help="Dataset spec YAML.")],
    data: Annotated[Path, typer.Option(help="Ingested Parquet (or a raw export, coerced on the fly).")],
    trials: Annotated[int | None, typer.Option(min=1)] = None,
    study: Annotated[str | None, typer.Option(help="Optuna study name; an existing one is continued.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Tuning processes on the one study.")] = None,
) -> None:
    """Tune CatBoost on an out-of-time split and register the best model as `challenger`."""
    from scoreloop.spec import DatasetSpec
    from training.train import train as train_model

    settings = _settings(ctx)
    if trials:
        settings.train.trials = trials
    if workers:
        settings.train.workers = workers
    try:
        result = train_model(settings, DatasetSpec.load(spec), data, study)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    show("trained", result.__dict__)


@app.command()
def promote(ctx: typer.Context) -> None:
    """Move `champion` to the challenger if it wins by the gate's margin and is not worse calibrated."""
    from training.promote import promote as run_gate

    try:
        decision = run_gate(_settings(ctx))
    except LookupError as exc:
        raise fail(str(exc)) from exc
    show("promoted" if decision.promoted else "not promoted", decision.to_dict())


runs_app = typer.Typer(help="Training runs: studies with their best trials; `runs compare A B`.")
app.add_typer(runs_app, name="runs")


def _figure(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@runs_app.callback(invoke_without_command=True)
def runs(ctx: typer.Context, limit: Annotated[int, typer.Option(min=1)] = 20) -> None:
    """List the newest studies: trials, best trial and parameters, holdout and baseline figures, registry state."""
    from datetime import UTC, datetime

    from training.runs import list_studies

    if ctx.invoked_subcommand is not None:
        return
    table = Table(title="studies (newest first)", title_justify="left")
    for column in ("study", "run", "started (UTC)", "trials c/p (study)", "best", "valid AUC", "holdout AUC",
                   "ECE", "HGB AUC", "version", "best params"):
        table.add_column(column, overflow="fold")
    for row in list_studies(_settings(ctx), limit):
        trials = row["trials"]
        table.add_row(
            row["study"], row["run_id"][:8], f"{datetime.fromtimestamp(row['started'] / 1000, UTC):%Y-%m-%d %H:%M}",
            f"{trials.get('complete', 0)}/{trials.get('pruned', 0)} ({row['study_trials']})",
            f"#{row['best_trial']}" if row["best_trial"] else "", _figure(row["best_valid_roc_auc"]),
            _figure(row["holdout_roc_auc"]), _figure(row["holdout_ece"]), _figure(row["baseline_hgb_roc_auc"]),
            " ".join([f"v{row['version']}" if row["version"] else "", *row["aliases"]]),
            " ".join(f"{k}={_short(v)}" for k, v in row["best_params"].items()),
        )
    console.print(table)


def _short(value: str) -> str:
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


@runs_app.command("compare")
def runs_compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Run id, alias (champion), version (v3) or study name.")],
    b: Annotated[str, typer.Argument(help="The run to compare with A.")],
    all_params: Annotated[bool, typer.Option("--all", help="Also list parameters that are equal.")] = False,
) -> None:
    """Two runs' parameters and metrics side by side, with the difference B - A."""
    from training.runs import compare_runs

    try:
        comparison = compare_runs(_settings(ctx), a, b)
    except LookupError as exc:
        raise fail(str(exc)) from exc
    label_a, label_b = (f"{ref} ({run.info.run_name}, {run.info.run_id[:8]})" for ref, run in comparison.refs)
    params = Table("parameter", f"A: {label_a}", f"B: {label_b}", title="parameters", title_justify="left")
    for key, (left, right) in comparison.params.items():
        if all_params or left != right:
            params.add_row(key, left or "", right or "", style=None if left == right else "yellow")
    metrics = Table("metric", "A", "B", "B - A", title="metrics", title_justify="left")
    for key, (left, right, diff) in comparison.metrics.items():
        metrics.add_row(key, _figure(left), _figure(right), "" if diff is None else f"{diff:+.4f}")
    console.print(params, metrics)


@app.command()
def history(ctx: typer.Context) -> None:
    """Every gate decision and rollback: which version was champion when, and why."""
    from training.promote import history as read_history

    table = Table(title="champion history (oldest first)", title_justify="left")
    for column in ("#", "at (UTC)", "action", "champion", "challenger", "metric", "ECE", "by", "reason"):
        table.add_column(column, overflow="fold")
    for entry in read_history(_settings(ctx)):
        before, after = entry.get("champion_before") or "-", entry.get("champion_after") or "-"
        values = [entry.get(k) for k in ("challenger_value", "champion_value", "challenger_ece", "champion_ece")]
        table.add_row(
            str(entry["seq"]), entry["at"][:19], entry["action"], before if before == after else f"{before} -> {after}",
            entry.get("challenger", ""), f"{_figure(values[0])} vs {_figure(values[1])}" if values[0] else "",
            f"{_figure(values[2])} vs {_figure(values[3])}" if values[2] else "", entry.get("by", ""),
            entry.get("reason", ""),
        )
    console.print(table)


@app.command()
def rollback(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="Version to restore (default: the previous champion).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
) -> None:
    """Give `champion` back to the previous champion; the demoted version cannot be promoted again."""
    from training.promote import rollback as run_rollback

    try:
        entry = run_rollback(_settings(ctx), to, reason)
    except LookupError as exc:
        raise fail(str(exc)) from exc
    show(f"champion is version {entry['champion_after']} again", entry)


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 3000,
    host: str = "127.0.0.1",
) -> None:
    """Serve the champion with BentoML (POST /score)."""
    from serving.bento import serve as run_server

    console.print(f"serving the champion on http://{host}:{port}")
    try:
        raise typer.Exit(run_server(_settings(ctx), host, port))
    except LookupError as exc:
        raise fail(str(exc)) from exc


@app.command()
def bento(ctx: typer.Context) -> None:
    """Build a bento holding the champion (`bentoml serve scoreloop:latest` serves it)."""
    from serving.bento import build

    try:
        raise typer.Exit(build(_settings(ctx)))
    except LookupError as exc:
        raise fail(str(exc)) from exc


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
    from monitoring.checks import MonitoringGateError, enforce

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
) -> None:
    """Evidently reports (HTML + JSON) under the home, judged against SCORELOOP_MONITOR__* and logged to MLflow.

    Files mode (--reference, --current, --spec): data drift and data quality. Period mode (--period): the scoring
    log joined with outcomes, [END - PERIOD, END) against the period before (or --reference-start/--reference-end):
    feature drift, data quality, score PSI, quality and calibration on labelled records by tier.
    """
    from monitoring.monitor import Window, monitor_drift, monitor_period
    from scoreloop.spec import DatasetSpec

    settings = _settings(ctx)
    try:
        if period is not None:
            if (reference_start is None) != (reference_end is None):
                raise fail("give both --reference-start and --reference-end, or neither (the previous period)")
            window = Window(reference_start, reference_end) if reference_start and reference_end else None
            loaded = DatasetSpec.load(spec) if spec else None
            report = monitor_period(settings, parse_period(period), end=end, reference=window, spec=loaded)
        elif reference and current and spec:
            report = monitor_drift(settings, DatasetSpec.load(spec), reference, current)
        else:
            raise fail("give --period (scoring log) or all of --reference, --current and --spec (files)")
    except ValueError as exc:
        raise fail(str(exc)) from exc
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
    from scoreloop.spec import DatasetSpec
    from training.retrain import retrain as run_retrain

    if time not in ("scored_at", "record"):
        raise fail(f"--time must be 'scored_at' or 'record', got {time!r}")
    settings = _settings(ctx)
    if trials:
        settings.train.trials = trials
    try:
        loaded = DatasetSpec.load(spec) if spec else None
        basis = "record" if time == "record" else "scored_at"
        result = run_retrain(settings, parse_period(window), end=end, ipw=ipw, basis=basis, spec=loaded)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from exc
    show(f"retrain: {result.outcome}", result.to_dict())


@app.command()
def feedback(ctx: typer.Context) -> None:
    """Feedback-loop report across model versions: label coverage, explored vs exploited, shift between versions."""
    from monitoring.feedback import feedback_report

    try:
        summary = feedback_report(_settings(ctx))
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from exc
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
) -> None:
    """Run the feedback loop on the synthetic world: score, work, observe, retrain, repeat, with drift on."""
    from monitoring.simulate import POLICIES, SimulationConfig, run_simulation

    settings = _settings(ctx)
    chosen = policy or list(POLICIES)
    unknown = sorted(set(chosen) - set(POLICIES))
    if unknown:
        raise fail(f"--policy {unknown} unknown; allowed: {list(POLICIES)}")
    settings.train.trials = trials
    if epsilon is not None:
        settings.policy.epsilon = epsilon
    config = SimulationConfig(cycles=cycles, rows=rows, seed=seed, window=window, monitor=monitor)
    results, report = run_simulation(settings, [(p, ipw) for p in chosen], config)
    table = Table(title=f"simulation (report: {report})", title_justify="left")
    columns = ("policy", "cycle", "model_version", "worked", "explored", "conversions", "true_auc", "retrain")
    for column in columns:
        table.add_column(column)
    for r in results:
        values = r.to_dict()
        table.add_row(*(f"{values[c]:.4f}" if isinstance(values[c], float) else str(values[c]) for c in columns))
    console.print(table)
