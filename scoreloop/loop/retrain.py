"""Sliding-window retraining from the scoring log: labelled records of the window -> challenger -> gate.

The training set is what the scoring log stored for each record (the coerced features) joined with the outcomes
that have arrived; only labelled records train, and labels exist only for records the work policy chose. With
`ipw` (`RetrainSettings.ipw`, off by default), each labelled record is weighted by its inverse propensity
(clipped); unweighted, the model still learns the population's P(outcome | features), since who was worked depends
only on the features the model sees. Every retrain compares its window with the
previous one (feature drift between the training sets, label coverage, positive rate), records why it promoted
or refused in an MLflow run, and leaves a report under the home.

Collect (`_window_rows`), train and gate (the training stage, which records its own runs), compute
(`retrain_findings`: pure, a `RetrainFindings`), publish (`publish_retrain`: the retrain's run, page and index).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd
from catboost import CatBoostClassifier

from scoreloop.core.metrics import positive_rate
from scoreloop.core.model import ScoringModel
from scoreloop.core.pages import new_report_dir, table, write_index, write_report
from scoreloop.core.policy import EXPLORE, ipw_weights
from scoreloop.core.progress import Progress, silent, within
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import CHAMPION, configure, load_registered, version_by_alias
from scoreloop.monitoring.drift import DriftSummary, build_drift_report
from scoreloop.training.promote import GateDecision, attach_evaluation, promote, run_table
from scoreloop.training.split import Older
from scoreloop.training.tags import HOLDOUT_ARTIFACT, PROPENSITY
from scoreloop.training.train import TooLittleData, TrainResult, load_rows, train_rows

TimeBasis = Literal["scored_at", "record"]
TOO_LITTLE_DATA = "refused: too little data"
STATUS = {"promoted": "promoted", "refused": "refused", TOO_LITTLE_DATA: "refused"}  # outcome -> page status
RETRAIN_STEPS = 4


@dataclass(frozen=True)
class RetrainFindings:
    """What a retrain found and decided: `outcome` is promoted, refused (by the gate), refused: too little data
    (below the training floor: nothing trained) or not-trained, with the reason; the training window's bounds and
    rows, its comparison with the previous window (coverage, positive rate, exploration, drift between the training
    sets), and the gate's figures."""

    outcome: str
    reason: str
    window: dict[str, str]
    rows: int
    comparison: dict[str, Any]
    drifted: tuple[str, ...]
    ipw: bool
    params: dict[str, Any]
    train: TrainResult | None = None
    gate: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainResult:
    """A published retrain: its findings, the retrain's MLflow run and its report folder."""

    findings: RetrainFindings
    run_id: str
    report_dir: Path

    @property
    def outcome(self) -> str:
        return self.findings.outcome

    @property
    def reason(self) -> str:
        return self.findings.reason

    def to_dict(self) -> dict[str, Any]:
        found = self.findings
        return {
            "outcome": found.outcome,
            "reason": found.reason,
            "window": found.window,
            "rows": found.rows,
            "version": found.train.version if found.train else None,
            "run_id": self.run_id,
            "report": str(self.report_dir / "summary.html"),
            **{f"compare.{k}": v for k, v in found.comparison.items() if not isinstance(v, dict | list)},
        }


def logged_rows(log: pd.DataFrame, spec: DatasetSpec, basis: TimeBasis = "scored_at") -> pd.DataFrame:
    """A scoring-log extract as the spec's rows, worked or not: the outcome as the target (NaN when none arrived).

    `log` is `RecordStore.labelled` output (stored features expanded). A record scored more than once keeps its
    last scoring. The spec's time column (which orders the out-of-time split) is `scored_at`, or with
    `basis="record"` the record's own time column as stored in the log. `propensity` and `policy` are kept for
    weighting, off-policy evaluation and reporting.
    """
    logged = log.drop_duplicates("record_id", keep="last")
    rows = pd.DataFrame(index=logged.index)
    if spec.id_column:
        rows[spec.id_column] = logged["record_id"]
    if spec.time_column:
        rows[spec.time_column] = _times(logged, spec, basis)
    for name in spec.numeric:
        rows[name] = pd.to_numeric(logged.get(name), errors="coerce").astype(float)
    for name in [*spec.categorical, *spec.text]:
        values = logged[name] if name in logged else pd.Series(None, index=logged.index, dtype=object)
        rows[name] = values.astype(object).where(values.notna(), None)
    rows[spec.target] = logged["outcome"].astype(float)
    rows[PROPENSITY] = logged["propensity"].astype(float)
    rows["policy"] = logged["policy"]
    order = rows[spec.time_column] if spec.time_column else logged["scored_at"]
    return rows.loc[order.sort_values(kind="stable").index]


def training_rows(logged: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The labelled records of `logged_rows` output, the target as 0/1."""
    labelled = logged[logged[spec.target].notna()]
    return labelled.assign(**{spec.target: labelled[spec.target].astype("int8")})


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
        figures[f"{name}_positive_rate"] = positive_rate(rows[spec.target])
        figures[f"{name}_explored_share"] = float((rows["policy"] == EXPLORE).mean()) if len(rows) else float("nan")
    return figures


def retrain(
    settings: Settings,
    window: timedelta,
    *,
    end: datetime | None = None,
    ipw: bool | None = None,
    basis: TimeBasis = "scored_at",
    spec: DatasetSpec | None = None,
    store: RecordStore | None = None,
    study_name: str | None = None,
    progress: Progress = silent,
) -> RetrainResult:
    """Train a challenger on the labelled records of `[end - window, end)`, run the gate, record why.

    `end` defaults to just after the last scored record; `spec` to the champion's; `ipw` to `settings.retrain.ipw`.
    With `basis="record"` the window applies to the records' own time column instead of `scored_at`. `study_name`
    names the Optuna study. `progress` hears of the four steps (reading, drift report, training and gate with its
    trials, publishing).
    """
    settings.ensure_home()
    ipw = settings.retrain.ipw if ipw is None else ipw
    progress(0, RETRAIN_STEPS, "reading the scoring log")
    store = store or RecordStore(settings.record_store_url)
    champion = _champion(settings)
    spec = spec or (champion or load_registered(settings)).spec
    end = end or _after_last(store)
    window = pd.Timedelta(window).to_pytimedelta()  # datetime - pandas.Timedelta silently subtracts nothing
    start, previous_start = end - window, end - 2 * window
    logged, logged_before, scored = _window_rows(store, spec, basis, (previous_start, start, end))
    older = older_rows(settings, spec, champion, start, window)
    warm = _warm_start(settings, champion)
    current, previous = training_rows(logged, spec), training_rows(logged_before, spec)
    out_dir = new_report_dir(settings.reports_dir, "retrain")
    progress(1, RETRAIN_STEPS, "drift report of the window against the previous one")
    drift = build_drift_report(previous, current, spec, out_dir) if len(current) and len(previous) else None
    bounds = {"start": start.isoformat(), "end": end.isoformat(), "previous_start": previous_start.isoformat()}
    source = f"scoring log {start:%Y%m%dT%H%M%S} to {end:%Y%m%dT%H%M%S}"
    training = within(progress, 2, RETRAIN_STEPS, "training")
    trained, decision, failure, refused = _train_and_gate(
        settings, spec, logged, current, ipw, source, study_name, (older, warm), training
    )
    progress(3, RETRAIN_STEPS, "publishing the report")
    params = {
        "window": str(window),
        "basis": basis,
        "ipw": ipw,
        "ipw_clip": settings.policy.ipw_clip,
        "older_decay": settings.retrain.older_decay,
        "older_rows": 0 if older is None else len(older.rows),
        "warm_start": warm is not None,
        "champion_trees": None if champion is None else champion.classifier.tree_count_,
        **bounds,
    }
    findings = retrain_findings(
        current,
        previous,
        scored,
        spec,
        drift,
        window=bounds,
        params=params,
        ipw=ipw,
        trained=trained,
        decision=decision,
        failure=failure,
        too_little_data=refused,
    )
    result = publish_retrain(settings, out_dir, findings)
    progress(RETRAIN_STEPS, RETRAIN_STEPS, result.outcome)
    return result


def _train_and_gate(
    settings: Settings,
    spec: DatasetSpec,
    logged: pd.DataFrame,
    current: pd.DataFrame,
    ipw: bool,
    source: str,
    study_name: str | None,
    start: tuple[Older | None, CatBoostClassifier | None],
    progress: Progress = silent,
) -> tuple[TrainResult | None, GateDecision | None, str, bool]:
    """Train a challenger on the window's labelled rows (with `start`: the older rows and the champion to warm
    start from, each or both None), attach the logged decisions of its holdout span (every record scored there,
    worked or not) for the gate's off-policy figures, and run the gate; or say why nothing could be trained (and
    whether it was the data floor that refused). `current` is `logged`'s labelled rows."""
    weights = ipw_weights(current[PROPENSITY], settings.policy.ipw_clip) if ipw else None
    rows = current.drop(columns=[PROPENSITY, "policy"])
    older, warm = start
    training = settings.train.model_copy(update={"holdout_fraction": settings.gate_span})
    try:
        trained = train_rows(
            settings.model_copy(update={"train": training}),
            spec,
            rows,
            source=source,
            weights=weights,
            older=older,
            warm=warm,
            study_name=study_name,
            progress=progress,
        )
    except TooLittleData as exc:
        return None, None, str(exc), True
    except ValueError as exc:
        return None, None, f"not trained: {exc}", False
    evaluation = holdout_span(logged, spec, trained.run_id)
    if evaluation is not None:
        attach_evaluation(trained.run_id, evaluation)
    return trained, promote(settings), "", False


def _champion(settings: Settings) -> ScoringModel | None:
    configure(settings)
    return None if version_by_alias(settings.model_name, CHAMPION) is None else load_registered(settings)


def _warm_start(settings: Settings, champion: ScoringModel | None) -> CatBoostClassifier | None:
    """The champion to warm-start from: none when the setting is off or the champion has grown to
    `warm_max_trees` (every warm-started promotion adds trees, so this keeps the served model's size bounded)."""
    if champion is None or not settings.retrain.warm_start:
        return None
    return champion.classifier if champion.classifier.tree_count_ < settings.retrain.warm_max_trees else None


def older_rows(
    settings: Settings, spec: DatasetSpec, champion: ScoringModel | None, start: datetime, window: timedelta
) -> Older | None:
    """The fully labelled rows from before `start` that the champion's lineage names (the file its run trained
    on, or the older file its own retrain added), weighted `older_decay ** age` (`decayed_weights`). None when the
    decay is 0, the spec has no time column to age rows by, or the lineage names no file that still exists (a
    champion trained on the scoring log alone: its rows are policy-labelled, not fully labelled)."""
    decay = settings.retrain.older_decay
    if decay == 0 or champion is None or champion.card.run_id is None or not spec.time_column:
        return None
    params = mlflow.MlflowClient().get_run(champion.card.run_id).data.params
    path = Path(params.get("older_data") or params.get("data") or "")
    if not path.is_file():
        return None
    rows = load_rows(path, spec)[0]
    times = pd.to_datetime(rows[spec.time_column])
    kept = rows[rows[spec.target].notna() & (times < pd.Timestamp(start))]
    if kept.empty:
        return None
    return Older(kept, decayed_weights(times.loc[kept.index], start, window, decay), str(path))


def decayed_weights(times: pd.Series, start: datetime, window: timedelta, decay: float) -> pd.Series:
    """`decay ** age` per row, age in window lengths from the row's time back to the window's `start`: a row one
    window older than the window weighs `decay` against a window row's 1 (before inverse propensities)."""
    age = (pd.Timestamp(start) - pd.to_datetime(times)) / pd.Timedelta(window)
    return (decay**age).astype(float)


def holdout_span(logged: pd.DataFrame, spec: DatasetSpec, run_id: str) -> pd.DataFrame | None:
    """The logged rows of the run's holdout span: its labelled holdout rows and every unworked record scored from
    the holdout's start on (labelled rows the run trained on are left out, by id). None without a time column:
    the holdout is then a random sample, judged as it is."""
    if not spec.time_column:
        return None
    start = pd.Timestamp(mlflow.MlflowClient().get_run(run_id).data.params["window.holdout_start"])
    span = logged[logged[spec.time_column] >= start]
    if spec.id_column:
        held = set(run_table(run_id, HOLDOUT_ARTIFACT)[spec.id_column].astype(str))
        span = span[span[spec.target].isna() | span[spec.id_column].astype(str).isin(held)]
    return span.drop(columns="policy")


def retrain_findings(
    current: pd.DataFrame,
    previous: pd.DataFrame,
    scored: tuple[int, int],
    spec: DatasetSpec,
    drift: DriftSummary | None,
    *,
    window: dict[str, str],
    params: dict[str, Any],
    ipw: bool,
    trained: TrainResult | None,
    decision: GateDecision | None,
    failure: str = "",
    too_little_data: bool = False,
) -> RetrainFindings:
    """The window comparison (with the drift between the training sets, when both have rows) and the outcome: the
    gate's verdict and reason, or `refused: too little data` / `not-trained` with `failure`."""
    comparison = compare_windows(current, previous, scored, spec)
    drifted: tuple[str, ...] = ()
    if drift is not None:
        drifted = tuple(c.column for c in drift.columns if c.drifted)
        comparison |= {"drifted_columns": drift.drifted_columns, "share_drifted": drift.share_drifted}
        comparison["drift_score"] = {c.column: c.score for c in drift.columns}
    if trained is None or decision is None:
        outcome, reason, gate = TOO_LITTLE_DATA if too_little_data else "not-trained", failure, {}
    else:
        outcome, reason, gate = ("promoted" if decision.promoted else "refused"), decision.reason, decision.to_dict()
    return RetrainFindings(outcome, reason, window, len(current), comparison, drifted, ipw, params, trained, gate)


def _after_last(store: RecordStore) -> datetime:
    last = store.span()[1]
    if last is None:
        raise ValueError("the scoring log is empty: nothing to retrain on")
    return last + timedelta(microseconds=1)


def _window_rows(
    store: RecordStore, spec: DatasetSpec, basis: TimeBasis, bounds: tuple[datetime, datetime, datetime]
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[int, int]]:
    """Logged rows (worked or not) of the current and the previous window, and how many records each scored."""
    previous_start, start, end = bounds
    if basis == "scored_at":
        current = logged_rows(store.labelled(start, end), spec, basis)
        previous = logged_rows(store.labelled(previous_start, start), spec, basis)
        return current, previous, (store.count(start, end), store.count(previous_start, start))
    log = store.labelled()  # the record's own time is only in the stored features: read the whole log
    times = _times(log, spec, basis)
    parts = [log[(times >= a) & (times < b)] for a, b in ((start, end), (previous_start, start))]
    current, previous = (logged_rows(part, spec, basis) for part in parts)
    return current, previous, (len(parts[0]), len(parts[1]))


def publish_retrain(settings: Settings, out_dir: Path, findings: RetrainFindings) -> RetrainResult:
    """The retrain's own run in the training experiment, its summary page (listed on the index) as the run's
    artifacts."""
    run_id = _log_run(settings, out_dir, findings)
    summary, body = retrain_page(findings, run_id)
    write_report(out_dir, summary, body)
    configure(settings)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifacts(str(out_dir), "retrain")
    write_index(settings.reports_dir)
    return RetrainResult(findings, run_id, out_dir)


def _log_run(settings: Settings, out_dir: Path, findings: RetrainFindings) -> str:
    """Window comparison as metrics and JSON, outcome and reason as tags; returns the run id."""
    configure(settings)
    trained, comparison = findings.train, findings.comparison
    tags = {
        "scoreloop.role": "retrain",
        "scoreloop.model_version": trained.version if trained else "none",
        "retrain.outcome": findings.outcome,
        "retrain.reason": findings.reason[:5000],
        **({"scoreloop.study_run_id": trained.run_id} if trained else {}),
    }
    scalars = {f"window.{k}": float(v) for k, v in comparison.items() if isinstance(v, int | float) and v == v}
    drift = {f"window.drift_score.{k}": v for k, v in comparison.get("drift_score", {}).items()}
    with mlflow.start_run(run_name=out_dir.name, tags=tags) as run:
        mlflow.log_params(findings.params)
        mlflow.log_metrics({**scalars, **drift})
        mlflow.log_dict(comparison, "window_comparison.json")
    return run.info.run_id


def retrain_page(findings: RetrainFindings, run_id: str) -> tuple[dict[str, Any], str]:
    """The retrain's `summary.json` content and page body: outcome and reason, the two windows, the gate."""
    c = findings.comparison
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
    summary = {
        "kind": "retrain",
        "title": f"retrain on {findings.window['start'][:10]} .. {findings.window['end'][:10]}",
        "status": STATUS.get(findings.outcome, "info"),
        "model_version": findings.train.version if findings.train else "none",
        "headline": {
            "drifted": list(findings.drifted),
            "drifted_columns": c.get("drifted_columns"),
            "labelled": findings.rows,
            "roc_auc": findings.gate.get("challenger_value"),
        },
        "outcome": findings.outcome,
        "reason": findings.reason,
        "ipw": findings.ipw,
        "window": findings.window,
        "comparison": c,
        "gate": findings.gate,
        "run_id": run_id,
        "files": {"training-set drift (Evidently)": "drift.html"} if "drift_score" in c else {},
    }
    body = (
        f"<p><b>{html.escape(findings.outcome)}</b>: {html.escape(findings.reason)}</p>"
        f"<p>Trained on {findings.rows} labelled records"
        f"{' weighted by clipped inverse propensity' if findings.ipw else ''}; MLflow run {html.escape(run_id)}.</p>"
        "<h2>Training window vs the previous one</h2>"
        + table(rows)
        + f"<p>Features drifted between the training sets: {html.escape(', '.join(findings.drifted) or 'none')}.</p>"
        + "<h2>Gate</h2>"
        + table([{"figure": k, "value": v} for k, v in findings.gate.items()])
    )
    return summary, body
