"""`scoreloop` train, promote, runs, history, rollback and value: thin wrappers over `training` (and the release
notes of a promotion, `scoreloop.loop.release_notes`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scoreloop.cli.app import app, console, fail, progress_bar, settings_of, show
from scoreloop.core.settings import Settings


@app.command()
def train(
    ctx: typer.Context,
    spec: Annotated[Path | None, typer.Option(help="Dataset spec YAML.")] = None,
    data: Annotated[Path | None, typer.Option(help="Ingested Parquet (or a raw export, coerced on the fly).")] = None,
    trials: Annotated[int | None, typer.Option(min=1)] = None,
    study: Annotated[str | None, typer.Option(help="Optuna study name; an existing one is continued.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Tuning processes on the one study.")] = None,
    resume_logging: Annotated[
        bool, typer.Option("--resume-logging", help="Log and register the runs kept on disk when the store was down.")
    ] = False,
) -> None:
    """Tune CatBoost on an out-of-time split and register the best model as `challenger`."""
    settings = settings_of(ctx)
    if resume_logging:
        _resume_logging(settings)
        return
    if spec is None or data is None:
        raise fail("--spec and --data are required (or --resume-logging)")
    from scoreloop.core.spec import DatasetSpec
    from scoreloop.core.tracking import configure, runs_page
    from scoreloop.training.train import train as train_model

    if trials:
        settings.train.trials = trials
    if workers:
        settings.train.workers = workers
    with progress_bar(f"training {settings.train.trials} trials") as progress:
        result = train_model(settings, DatasetSpec.load(spec), data, study, progress)
    show("trained", result.__dict__)
    console.print(f"runs: {runs_page(settings, configure(settings))}", soft_wrap=True)


def _resume_logging(settings: Settings) -> None:
    from scoreloop.training.pending import kept_runs, log_pending

    kept = kept_runs(settings)
    if not kept:
        console.print(f"nothing to log: no kept runs under {settings.home.resolve() / 'pending'}")
    for directory in kept:
        show(f"logged {directory.name}", log_pending(settings, directory).__dict__)


@app.command()
def promote(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Promote past a failing monitoring report (recorded).")
    ] = False,
) -> None:
    """Move `champion` to the challenger when the lower end of its gain interval clears the gate's margin and it is
    not worse calibrated; a failing monitoring report blocks it unless --force. A promotion writes release notes."""
    from scoreloop.loop.release_notes import write_release_notes
    from scoreloop.training.promote import promote as run_gate

    settings = settings_of(ctx)
    decision = run_gate(settings, force=force)
    show("promoted" if decision.promoted else "not promoted", decision.to_dict())
    if notes := write_release_notes(settings, decision):
        console.print(f"release notes: {notes}")


runs_app = typer.Typer(help="Training runs: studies with their best trials; `runs compare A B`.")
app.add_typer(runs_app, name="runs")


def _figure(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@runs_app.callback(invoke_without_command=True)
def runs(ctx: typer.Context, limit: Annotated[int, typer.Option(min=1)] = 20) -> None:
    """List the newest studies: trials, best trial and parameters, holdout and baseline figures, registry state."""
    from datetime import UTC, datetime

    from scoreloop.training.runs import list_studies

    if ctx.invoked_subcommand is not None:
        return
    table = Table(title="studies (newest first)", title_justify="left")
    for column in (
        "study",
        "run",
        "started (UTC)",
        "trials c/p (study)",
        "best",
        "valid AUC",
        "holdout AUC",
        "ECE",
        "HGB AUC",
        "version",
        "best params",
    ):
        table.add_column(column, overflow="fold")
    for row in list_studies(settings_of(ctx), limit):
        trials = row["trials"]
        table.add_row(
            row["study"],
            row["run_id"][:8],
            f"{datetime.fromtimestamp(row['started'] / 1000, UTC):%Y-%m-%d %H:%M}",
            f"{trials.get('complete', 0)}/{trials.get('pruned', 0)} ({row['study_trials']})",
            f"#{row['best_trial']}" if row["best_trial"] else "",
            _figure(row["best_valid_roc_auc"]),
            _figure(row["holdout_roc_auc"]),
            _figure(row["holdout_ece"]),
            _figure(row["baseline_hgb_roc_auc"]),
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
    from scoreloop.training.runs import compare_runs

    comparison = compare_runs(settings_of(ctx), a, b)
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
    from scoreloop.training.promote import history as read_history

    table = Table(title="champion history (oldest first)", title_justify="left")
    for column in ("#", "at (UTC)", "action", "champion", "challenger", "metric", "ECE", "by", "reason"):
        table.add_column(column, overflow="fold")
    for entry in read_history(settings_of(ctx)):
        before, after = entry.get("champion_before") or "-", entry.get("champion_after") or "-"
        values = [entry.get(k) for k in ("challenger_value", "champion_value", "challenger_ece", "champion_ece")]
        table.add_row(
            str(entry["seq"]),
            entry["at"][:19],
            entry["action"],
            before if before == after else f"{before} -> {after}",
            entry.get("challenger", ""),
            f"{_figure(values[0])} vs {_figure(values[1])}" if values[0] else "",
            f"{_figure(values[2])} vs {_figure(values[3])}" if values[2] else "",
            entry.get("by", ""),
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
    from scoreloop.training.promote import rollback as run_rollback

    entry = run_rollback(settings_of(ctx), to, reason)
    show(f"champion is version {entry['champion_after']} again", entry)


@app.command()
def value(ctx: typer.Context) -> None:
    """The champion against random working and the simple approach (a few thresholds), in business terms."""
    from scoreloop.core.value import verdict
    from scoreloop.training.value_report import champion_value, write_value_report

    settings = settings_of(ctx)
    value = champion_value(settings)
    table = Table(title=f"value of version {value.version} on its holdout", title_justify="left")
    for column in ("approach", *value.table.columns):
        table.add_column(column)
    for name, row in value.table.iterrows():
        table.add_row(str(name), *(f"{v:.2f}" for v in row))
    console.print(table)
    console.print(verdict(value.table, settings.value.margin)[1], soft_wrap=True)
    console.print(f"report: {write_value_report(settings, value)}")
