"""Sliding-window retraining from the scoring log: labelled records of the window -> challenger -> gate.

The training set is what the scoring log stored for each record (the coerced features) joined with the outcomes
that have arrived; only labelled records train, and labels exist only for records the work policy chose. With
`ipw`, each labelled record is weighted by its inverse propensity (clipped), so the model learns about the
population rather than only about what the previous model picked. Every retrain compares its window with the
previous one (feature drift between the training sets, label coverage, positive rate), records why it promoted
or refused in an MLflow run, and leaves a report under the home.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd

from scoreloop.core.pages import new_report_dir, table, write_index, write_report
from scoreloop.core.policy import EXPLORE, ipw_weights
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import configure, load_registered
from scoreloop.monitoring.drift import build_drift_report
from scoreloop.training.promote import promote
from scoreloop.training.train import TrainResult, train_rows

TimeBasis = Literal["scored_at", "record"]


@dataclass(frozen=True)
class RetrainResult:
    """What a retrain did: `outcome` is promoted, refused (by the gate) or not-trained, with the reason."""

    outcome: str
    reason: str
    window: dict[str, str]
    rows: int
    comparison: dict[str, Any]
    run_id: str
    report_dir: Path
    train: TrainResult | None = None
    gate: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "window": self.window,
            "rows": self.rows,
            "version": self.train.version if self.train else None,
            "run_id": self.run_id,
            "report": str(self.report_dir / "summary.html"),
            **{f"compare.{k}": v for k, v in self.comparison.items() if not isinstance(v, dict | list)},
        }


def training_rows(log: pd.DataFrame, spec: DatasetSpec, basis: TimeBasis = "scored_at") -> pd.DataFrame:
    """Labelled records of a scoring-log extract as training rows: the spec's columns, the outcome as the target.

    `log` is `RecordStore.labelled` output (stored features expanded). A record scored more than once keeps its
    last scoring. The spec's time column (which orders the out-of-time split) is `scored_at`, or with
    `basis="record"` the record's own time column as stored in the log. `propensity` and `policy` are kept for
    weighting and reporting.
    """
    labelled = log[log["outcome"].notna()].drop_duplicates("record_id", keep="last")
    rows = pd.DataFrame(index=labelled.index)
    if spec.id_column:
        rows[spec.id_column] = labelled["record_id"]
    if spec.time_column:
        rows[spec.time_column] = _times(labelled, spec, basis)
    for name in spec.numeric:
        rows[name] = pd.to_numeric(labelled.get(name), errors="coerce").astype(float)
    for name in [*spec.categorical, *spec.text]:
        values = labelled[name] if name in labelled else pd.Series(None, index=labelled.index, dtype=object)
        rows[name] = values.astype(object).where(values.notna(), None)
    rows[spec.target] = labelled["outcome"].astype("int8")
    rows["propensity"] = labelled["propensity"].astype(float)
    rows["policy"] = labelled["policy"]
    order = rows[spec.time_column] if spec.time_column else labelled["scored_at"]
    return rows.loc[order.sort_values(kind="stable").index]


def _times(labelled: pd.DataFrame, spec: DatasetSpec, basis: TimeBasis) -> pd.Series:
    if basis == "scored_at":
        return pd.to_datetime(labelled["scored_at"])
    if spec.time_column not in labelled:
        raise ValueError(f"the scoring log does not store the record time column {spec.time_column!r}: use scored_at")
    return pd.to_datetime(labelled[spec.time_column], format="ISO8601")


def compare_windows(
    current: pd.DataFrame, previous: pd.DataFrame, scored: tuple[int, int], spec: DatasetSpec
) -> dict[str, Any]:
    """Label coverage, positive rate and explored share of two training windows (`scored`: records scored in each)."""
    figures: dict[str, Any] = {}
    for name, rows, count in (("current", current, scored[0]), ("previous", previous, scored[1])):
        figures[f"{name}_scored"] = count
        figures[f"{name}_labelled"] = len(rows)
        figures[f"{name}_label_coverage"] = len(rows) / count if count else float("nan")
        figures[f"{name}_positive_rate"] = float(rows[spec.target].mean()) if len(rows) else float("nan")
        figures[f"{name}_explored_share"] = float((rows["policy"] == EXPLORE).mean()) if len(rows) else float("nan")
    return figures


def retrain(
    settings: Settings,
    window: timedelta,
    *,
    end: datetime | None = None,
    ipw: bool = False,
    basis: TimeBasis = "scored_at",
    spec: DatasetSpec | None = None,
    store: RecordStore | None = None,
    study_name: str | None = None,
) -> RetrainResult:
    """Train a challenger on the labelled records of `[end - window, end)`, run the gate, record why.

    `end` defaults to just after the last scored record; `spec` to the champion's. With `basis="record"` the
    window applies to the records' own time column instead of `scored_at`. `study_name` names the Optuna study.
    """
    settings.ensure_home()
    store = store or RecordStore(settings.record_store_url)
    spec = spec or load_registered(settings).spec
    end = end or _after_last(store)
    window = pd.Timedelta(window).to_pytimedelta()  # datetime - pandas.Timedelta silently subtracts nothing
    start, previous_start = end - window, end - 2 * window
    current, previous, scored = _window_rows(store, spec, basis, (previous_start, start, end))
    out_dir = new_report_dir(settings.reports_dir, "retrain")
    comparison = compare_windows(current, previous, scored, spec)
    drifted: list[str] = []
    if len(current) and len(previous):
        drift = build_drift_report(previous, current, spec, out_dir)
        drifted = [c.column for c in drift.columns if c.drifted]
        comparison |= {"drifted_columns": drift.drifted_columns, "share_drifted": drift.share_drifted}
        comparison["drift_score"] = {c.column: c.score for c in drift.columns}
    bounds = {"start": start.isoformat(), "end": end.isoformat(), "previous_start": previous_start.isoformat()}
    weights = ipw_weights(current["propensity"], settings.policy.ipw_clip) if ipw else None
    trained, gate, outcome, reason = None, {}, "not-trained", ""
    try:
        trained = train_rows(
            settings,
            spec,
            current.drop(columns=["propensity", "policy"]),
            source=f"scoring log {start:%Y%m%dT%H%M%S} to {end:%Y%m%dT%H%M%S}",
            weights=weights,
            study_name=study_name,
        )
    except ValueError as exc:
        reason = f"not trained: {exc}"
    if trained is not None:
        decision = promote(settings)
        gate = decision.to_dict()
        outcome, reason = ("promoted" if decision.promoted else "refused"), decision.reason
    params = {"window": str(window), "basis": basis, "ipw": ipw, "ipw_clip": settings.policy.ipw_clip, **bounds}
    run_id = _log_run(settings, out_dir, outcome, reason, params, comparison, trained)
    result = RetrainResult(outcome, reason, bounds, len(current), comparison, run_id, out_dir, trained, gate)
    _write_report(settings, result, drifted, ipw)
    return result


def _after_last(store: RecordStore) -> datetime:
    last = store.span()[1]
    if last is None:
        raise ValueError("the scoring log is empty: nothing to retrain on")
    return last + timedelta(microseconds=1)


def _window_rows(
    store: RecordStore, spec: DatasetSpec, basis: TimeBasis, bounds: tuple[datetime, datetime, datetime]
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[int, int]]:
    """Training rows of the current and the previous window, and how many records each window scored."""
    previous_start, start, end = bounds
    if basis == "scored_at":
        current = training_rows(store.labelled(start, end), spec, basis)
        previous = training_rows(store.labelled(previous_start, start), spec, basis)
        return current, previous, (store.count(start, end), store.count(previous_start, start))
    log = store.labelled()  # the record's own time is only in the stored features: read the whole log
    times = _times(log, spec, basis)
    parts = [log[(times >= a) & (times < b)] for a, b in ((start, end), (previous_start, start))]
    current, previous = (training_rows(part, spec, basis) for part in parts)
    return current, previous, (len(parts[0]), len(parts[1]))


def _log_run(
    settings: Settings,
    out_dir: Path,
    outcome: str,
    reason: str,
    params: dict[str, Any],
    comparison: dict[str, Any],
    trained: TrainResult | None,
) -> str:
    """The retrain's own run in the training experiment: window comparison, outcome and reason, report folder."""
    configure(settings)
    tags = {
        "scoreloop.role": "retrain",
        "scoreloop.model_version": trained.version if trained else "none",
        "retrain.outcome": outcome,
        "retrain.reason": reason[:5000],
        **({"scoreloop.study_run_id": trained.run_id} if trained else {}),
    }
    scalars = {f"window.{k}": float(v) for k, v in comparison.items() if isinstance(v, int | float) and v == v}
    drift = {f"window.drift_score.{k}": v for k, v in comparison.get("drift_score", {}).items()}
    with mlflow.start_run(run_name=out_dir.name, tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({**scalars, **drift})
        mlflow.log_dict(comparison, "window_comparison.json")
    return run.info.run_id


def _write_report(settings: Settings, result: RetrainResult, drifted: list[str], ipw: bool) -> None:
    """The retrain's summary page (listed on the index) and its artifacts in the retrain run."""
    c = result.comparison
    rows = [
        {
            "window": name,
            "scored": c[f"{name}_scored"],
            "labelled": c[f"{name}_labelled"],
            "label coverage": c[f"{name}_label_coverage"],
            "positive rate": c[f"{name}_positive_rate"],
            "explored share": c[f"{name}_explored_share"],
        }
        for name in ("current", "previous")
    ]
    files = {"training-set drift (Evidently)": "drift.html"} if (result.report_dir / "drift.html").exists() else {}
    summary = {
        "kind": "retrain",
        "title": f"retrain on {result.window['start'][:10]} .. {result.window['end'][:10]}",
        "status": {"promoted": "promoted", "refused": "refused"}.get(result.outcome, "info"),
        "model_version": result.train.version if result.train else "none",
        "headline": {
            "drifted": drifted,
            "drifted_columns": c.get("drifted_columns"),
            "labelled": result.rows,
            "roc_auc": result.gate.get("challenger_value"),
        },
        "outcome": result.outcome,
        "reason": result.reason,
        "ipw": ipw,
        "window": result.window,
        "comparison": c,
        "gate": result.gate,
        "run_id": result.run_id,
        "files": files,
    }
    body = (
        f"<p><b>{html.escape(result.outcome)}</b>: {html.escape(result.reason)}</p>"
        f"<p>Trained on {result.rows} labelled records"
        f"{' weighted by clipped inverse propensity' if ipw else ''}; MLflow run {html.escape(result.run_id)}.</p>"
        "<h2>Training window vs the previous one</h2>"
        + table(rows)
        + f"<p>Features drifted between the training sets: {html.escape(', '.join(drifted) or 'none')}.</p>"
        + "<h2>Gate</h2>"
        + table([{"figure": k, "value": v} for k, v in result.gate.items()])
    )
    write_report(result.report_dir, summary, body)
    configure(settings)
    with mlflow.start_run(run_id=result.run_id):
        mlflow.log_artifacts(str(result.report_dir), "retrain")
    write_index(settings.reports_dir)
