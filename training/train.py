"""Training orchestrator: check the data floor, split, tune, select, refit, calibrate, evaluate on the holdout,
log and register the challenger.

Everything an engineer compares runs by lands on the study's parent run: settings and search space, lineage,
tuning summary, the selection (every candidate's figure and the winner), holdout metrics (ranking, calibration
before and after, top-k precision and lift, deciles), baselines on the same holdout, and diagnostic plots.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
from catboost import CatBoostClassifier
from matplotlib.figure import Figure
from mlflow.entities import RunStatus

from scoreloop.core.calibration import Calibration
from scoreloop.core.ingest import read_rows
from scoreloop.core.metrics import decile_metrics, decile_table, evaluate, expected_calibration_error, roc_auc
from scoreloop.core.model import ModelCard, fit_card_scale, make_pool, model_frame
from scoreloop.core.pages import page
from scoreloop.core.progress import Progress, silent
from scoreloop.core.settings import Settings, TrainSettings, redact
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.tracking import configure, unreachable_reason
from scoreloop.core.value import MODEL, SIMPLE, VALUE_PAGE, VALUE_RULES_TAG, value_body, value_metrics, value_table
from scoreloop.training import plots
from scoreloop.training.baselines import Baseline, hist_gradient_boosting
from scoreloop.training.lineage import log_lineage
from scoreloop.training.pending import ARTIFACTS, PendingRun, TrainResult, keep, log_pending
from scoreloop.training.select import (
    BLEND,
    REFERENCE,
    Candidate,
    blend_models,
    calibrate,
    candidate_params,
    choose,
    cross_validate,
    refit,
    selection_figures,
    with_blend,
)
from scoreloop.training.simple import fit_simple
from scoreloop.training.split import Older, Split, slice_weights, time_split, tuning_folds, with_older
from scoreloop.training.tags import BASELINE_PROBA, ROLE_TAG, STUDY_TAG
from scoreloop.training.tune import TuningData, TuningResult, start_worker_server, tune
from scoreloop.training.warm import start_values

__all__ = ["HoldoutFigures", "TooLittleData", "TrainResult", "check_floor", "holdout_figures", "train", "train_rows"]

SHAP_ROWS = 2000


def load_rows(data: Path, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """Typed rows from an ingested Parquet file (as written) or a raw export (read once, now); returns them with
    the count of rejected rows."""
    return read_rows(data, spec)


class TooLittleData(ValueError):
    """Training refused: fewer labelled rows or positives than the configured floor."""


def check_floor(rows: pd.DataFrame, spec: DatasetSpec, config: TrainSettings) -> None:
    """Refuse, in one line with the figures and the settings to change, to train on fewer labelled rows or
    positives than `min_rows` / `min_positives`."""
    labelled = rows[spec.target].notna()
    n, positives = int(labelled.sum()), int((rows.loc[labelled, spec.target] == 1).sum())
    if n < config.min_rows or positives < config.min_positives:
        raise TooLittleData(
            f"too little data to train: {n} labelled rows with {positives} positives, the floor is "
            f"{config.min_rows} rows with {config.min_positives} positives (SCORELOOP_TRAIN__MIN_ROWS, "
            "SCORELOOP_TRAIN__MIN_POSITIVES)"
        )


def require_tracking(settings: Settings) -> None:
    """Fail in a second, before any work, when the tracking store does not answer."""
    if reason := unreachable_reason(settings):
        raise ConnectionError(
            f"the tracking store {settings.tracking_uri_redacted} is unreachable ({reason}): nothing was trained; "
            "start it or point MLFLOW_TRACKING_URI at one that answers"
        )


def train(
    settings: Settings, spec: DatasetSpec, data: Path, study_name: str | None = None, progress: Progress = silent
) -> TrainResult:
    """Train from a file: see `train_rows`."""
    start_worker_server(settings.train.workers)  # its imports overlap reading the data
    require_tracking(settings)
    rows, rejected = load_rows(data, spec)
    return train_rows(
        settings, spec, rows, source=str(data), rows_rejected=rejected, study_name=study_name, progress=progress
    )


def train_rows(
    settings: Settings,
    spec: DatasetSpec,
    rows: pd.DataFrame,
    *,
    source: str,
    weights: pd.Series | None = None,
    older: Older | None = None,
    warm: CatBoostClassifier | None = None,
    rows_rejected: int = 0,
    study_name: str | None = None,
    progress: Progress = silent,
) -> TrainResult:
    """Tune on an out-of-time split (k folds over train+valid for small data), select among the candidates, refit
    the winner on train+valid, calibrate it on its out-of-fold predictions, register it as `challenger`.

    Refuses (`TooLittleData`) below the data floor, before any run is opened. `rows` are coerced records;
    `weights` (aligned on their index) weight the training and validation rows, e.g. inverse propensities when the
    labels were chosen by a previous model. `older` rows (fully labelled, from before `rows`) join every fit with
    their own weights and are never validated, held out or calibrated on; `warm` (the champion's classifier) makes
    every fit start from its log-odds and the served model the sum of both (`training.warm`).
    Running again with the same `study_name` adds trials to that Optuna study (under a new parent run). Everything
    after tuning is kept on disk before it is logged (see `training.pending`). `progress` hears of every trial
    (with the best figure so far), then of the evaluation.
    """
    config = settings.train
    check_floor(rows, spec, config)
    start_worker_server(config.workers)
    if older is not None:
        rows, weights, older = with_older(rows, weights, older)
    split = time_split(rows, spec, config.valid_fraction, config.holdout_fraction, config.seed)
    split = split if older is None else replace(split, older=older.rows)
    study_name = study_name or f"{settings.model_name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    require_tracking(settings)
    experiment_id = configure(settings)
    run_id = mlflow.start_run(run_name=study_name, tags={STUDY_TAG: study_name, ROLE_TAG: "study"}).info.run_id
    try:
        folds = [
            TuningData(
                spec,
                f.train,
                f.valid,
                slice_weights(f.train, weights),
                slice_weights(f.valid, weights),
                start_values(warm, f.train, spec),
                start_values(warm, f.valid, spec),
            )
            for f in tuning_folds(split, spec, config.cv_below_rows, config.cv_folds, config.seed)
        ]
        _log_settings(settings, source, len(rows), rows_rejected, weights is not None, split, len(folds))
        _log_start(older, warm is not None)
        log_lineage(split, spec, redact(source))
        tuning = tune(settings, study_name, folds, run_id, experiment_id, mlflow.get_tracking_uri(), progress)
        progress(config.trials, config.trials, "refitting, calibrating and evaluating the best trial")
        directory = _evaluate(settings, spec, split, folds, tuning, weights, warm, run_id, rows_rejected)
    except BaseException as exc:
        _end_failed(settings, study_name, exc)
        raise
    return log_pending(settings, directory)


def _end_failed(settings: Settings, study_name: str, exc: BaseException) -> None:
    """Mark the parent run failed; when the store itself went away, say so in one line (the study keeps its
    trials: the same --study name continues it)."""
    reason = unreachable_reason(settings) if isinstance(exc, Exception) else None
    if reason is None:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        return
    raise ConnectionError(
        f"the tracking store {settings.tracking_uri_redacted} became unreachable during tuning ({reason}): "
        f"the finished trials are kept in the Optuna study {study_name!r}; rerun with --study {study_name} "
        "when it answers again"
    ) from exc


@dataclass(frozen=True)
class HoldoutFigures:
    """The holdout figures of the refit model (`metrics`, `deciles`, on calibrated probabilities) and of the
    baselines on the same holdout, and the ECE of the model's raw (uncalibrated) probabilities.

    `baselines` maps `baseline_<name>_<metric>` (holdout) and, for baselines early-stopped on the validation slice,
    `baseline_<name>_valid_roc_auc` to their values.
    """

    metrics: dict[str, float]
    deciles: pd.DataFrame
    baselines: dict[str, float]
    ece_raw: float | None = None
    value: pd.DataFrame | None = None
    value_rules: str = ""

    def logged(self) -> dict[str, float]:
        """The figures under their MLflow metric names: `holdout_<metric>`, `holdout_decile_<nn>_*`,
        `holdout_ece_raw`, `baseline_*`, `value_*`."""
        holdout = {**self.metrics, **decile_metrics(self.deciles)}
        raw = {} if self.ece_raw is None else {"holdout_ece_raw": self.ece_raw}
        value = {} if self.value is None else value_metrics(self.value)
        return {**{f"holdout_{k}": v for k, v in holdout.items()}, **raw, **self.baselines, **value}


def holdout_figures(
    y_holdout: np.ndarray,
    proba: np.ndarray,
    y_valid: np.ndarray,
    baselines: dict[str, Baseline],
    config: TrainSettings,
    raw: np.ndarray | None = None,
) -> HoldoutFigures:
    """Score the model's holdout probabilities and each baseline's, with the same metric definitions as the gate;
    `raw`: the model's probabilities before calibration, for `ece_raw`."""
    figures = {}
    for name, baseline in baselines.items():
        metrics = evaluate(y_holdout, baseline.holdout_proba, config.top_k, config.calibration_bins)
        figures.update({f"baseline_{name}_{k}": v for k, v in metrics.items()})
        if baseline.valid_proba is not None:
            figures[f"baseline_{name}_valid_roc_auc"] = roc_auc(y_valid, baseline.valid_proba)
    metrics = evaluate(y_holdout, proba, config.top_k, config.calibration_bins)
    ece_raw = None if raw is None else expected_calibration_error(y_holdout, raw, config.calibration_bins)
    return HoldoutFigures(metrics, decile_table(y_holdout, proba), figures, ece_raw)


@dataclass(frozen=True)
class Selected:
    """The selection's outcome: every candidate compared, the winner, each challenger's lead over the defaults
    (`selection_<name>_lead_low`), the winner refit on train+valid, its calibration, and its raw and calibrated
    holdout probabilities."""

    candidates: list[Candidate]
    winner: Candidate
    leads: dict[str, float]
    model: CatBoostClassifier
    calibration: Calibration
    raw: np.ndarray
    proba: np.ndarray


def _evaluate(
    settings: Settings,
    spec: DatasetSpec,
    split: Split,
    folds: list[TuningData],
    tuning: TuningResult,
    weights: pd.Series | None,
    warm: CatBoostClassifier | None,
    run_id: str,
    rows_rejected: int,
) -> Path:
    """Select, refit and calibrate; score the holdout and the baselines; keep what the run logs on disk."""
    config = settings.train
    selected, defaults = _select(spec, split, folds, tuning, weights, warm, config)
    baselines = {}
    if config.baselines:
        baselines = {
            "catboost": Baseline(
                None,
                selected.raw
                if defaults is selected.model
                else defaults.predict_proba(model_frame(split.holdout, spec))[:, 1],
            ),
            "hgb": hist_gradient_boosting(split, spec, config, weights),
        }
    y_holdout, y_valid = split.holdout[spec.target].to_numpy(), split.valid[spec.target].to_numpy()
    figures = holdout_figures(y_holdout, selected.proba, y_valid, baselines, config, raw=selected.raw)
    simple = fit_simple(pd.concat([split.train, split.valid]), spec, selected.model, settings.value, config.seed)
    value = value_table(
        y_holdout,
        {SIMPLE: simple.score(model_frame(split.holdout, spec)), MODEL: selected.proba},
        settings.policy.capacity,
        settings.value.review_budget,
    )
    figures = replace(figures, value=value, value_rules=simple.rules)
    directory = _keep(settings, spec, split, tuning, selected, baselines, figures, run_id, rows_rejected)
    body = value_body(value, settings.policy.capacity, settings.value, simple.rules)
    (directory / ARTIFACTS / VALUE_PAGE).parent.mkdir(parents=True, exist_ok=True)
    (directory / ARTIFACTS / VALUE_PAGE).write_text(page("Value against the simple approach", body), encoding="utf-8")
    return directory


def _select(
    spec: DatasetSpec,
    split: Split,
    folds: list[TuningData],
    tuning: TuningResult,
    weights: pd.Series | None,
    warm: CatBoostClassifier | None,
    config: TrainSettings,
) -> tuple[Selected, CatBoostClassifier | None]:
    """Cross-validate every candidate on the tuning folds (the blend is its parts' out-of-fold predictions averaged),
    choose, refit and calibrate the winner; also returns the CatBoost defaults refit (the `catboost` baseline) when
    baselines are on. No model is refit twice: a blend sums its parts' refits."""
    tuned = tuning.study.best_params
    eligible = candidate_params(tuned, config.candidates)
    fitted = {**eligible, REFERENCE: {}} if config.baselines else eligible  # defaults: also the catboost baseline
    candidates = [cross_validate(name, params, folds, config) for name, params in fitted.items()]
    compared = [c for c in candidates if c.name in eligible]
    compared = with_blend(compared) if BLEND in config.candidates else compared
    winner, leads = choose(compared, config)
    refit_rows = split.fitted
    needed = {c.name: c for c in winner.parts or (winner,)}
    if config.baselines:
        needed[REFERENCE] = next(c for c in candidates if c.name == REFERENCE)
    models = {name: refit(c, refit_rows, spec, config, weights, warm) for name, c in needed.items()}
    model = blend_models([models[c.name] for c in winner.parts]) if winner.parts else models[winner.name]
    calibration = calibrate(winner, config)
    raw = model.predict_proba(model_frame(split.holdout, spec))[:, 1]
    logged = [*candidates, *(c for c in compared if c.parts)]
    selected = Selected(logged, winner, leads, model, calibration, raw, calibration.apply(raw))
    return selected, models.get(REFERENCE) if config.baselines else None


def _keep(
    settings: Settings,
    spec: DatasetSpec,
    split: Split,
    tuning: TuningResult,
    selected: Selected,
    baselines: dict[str, Baseline],
    figures: HoldoutFigures,
    run_id: str,
    rows_rejected: int,
) -> Path:
    """Everything the run logs (params, metrics, tags, model, card, holdout, plots) written under the home first."""
    config = settings.train
    plotted, skipped = _figures(selected, tuning, split, spec, config, baselines, figures.deciles)
    best, winner = tuning.study.best_trial, selected.winner
    tags = {
        "scoreloop.best_trial": str(best.number),
        "scoreloop.best_trial_run_id": best.user_attrs["mlflow_run_id"],
        "selection.winner": winner.name,
    }
    if skipped:
        tags["scoreloop.plots_skipped"] = "; ".join(skipped)[:5000]
    if figures.value_rules:
        tags[VALUE_RULES_TAG] = figures.value_rules[:5000]
    selection = selection_figures(selected.candidates, winner) | selected.leads
    pending = PendingRun(
        run_id=run_id,
        model_name=settings.model_name,
        params={
            **{f"best.{k}": v for k, v in best.params.items()},
            "best.iterations": _trees(best),
            "selection.winner": winner.name,
            **{f"model.{k}": v for k, v in winner.params.items()},
            "model.iterations": winner.iterations,
            "model.calibration": selected.calibration.method,
        },
        metrics={**_tuning_metrics(tuning, config.objective), **selection, **figures.logged()},
        tags=tags,
        result={
            "model_name": settings.model_name,
            "study_name": tuning.study.study_name,
            "best_params": best.params,
            "metrics": figures.metrics,
            "rows_rejected": rows_rejected,
            "trials": {k: tuning.count(k) for k in ("complete", "pruned")} | {"study": len(tuning.study.trials)},
            "tuning_seconds": round(tuning.seconds, 2),
            "baselines": {k: round(v, 4) for k, v in figures.baselines.items() if k.endswith("roc_auc")},
            "selection": {"winner": winner.name, **{c.name: round(c.score, 4) for c in selected.candidates}},
        },
    )
    card = _card(spec, split, selected, figures.metrics, config, run_id)
    holdout = split.holdout.assign(**{f"{BASELINE_PROBA}{k}": b.holdout_proba for k, b in baselines.items()})
    directory = keep(settings, pending, selected.model, card, holdout, figures.deciles)
    plots.save_figures(plotted, directory / ARTIFACTS / "plots")
    return directory


def _log_settings(
    settings: Settings, source: str, rows: int, rejected: int, weighted: bool, split: Split, folds: int
) -> None:
    """Everything that shapes this run as params, so the MLflow compare view lines runs up setting by setting.

    Storage URLs are logged with any password replaced by ***: no secret reaches MLflow.
    """
    config = settings.train
    search = {f"search.{k}": v for k, v in config.search.model_dump(mode="json").items()}
    mlflow.log_params(
        {
            "data": redact(source),
            "rows": rows,
            "rows_rejected": rejected,
            "weighted": weighted,
            "folds": folds,
            "optuna_storage": redact(settings.optuna_storage or "journal file in the home"),
            **config.model_dump(
                include={
                    "trials",
                    "seed",
                    "workers",
                    "pruning",
                    "prune_after_trials",
                    "prune_warmup_iterations",
                    "max_iterations",
                    "early_stopping_rounds",
                    "startup_trials",
                    "top_k",
                    "baselines",
                    "min_rows",
                    "min_positives",
                    "cv_below_rows",
                    "cv_folds",
                    "calibration",
                    "objective",
                    "selection_level",
                    "valid_fraction",
                    "holdout_fraction",
                }
            ),
            **search,
            **{f"window.{k}": v for k, v in split.windows.items()},
        }
    )


def _log_start(older: Older | None, warm: bool) -> None:
    """What the fits started from beyond the rows: older rows (how many, from where, their weight) and the warm
    start."""
    params: dict = {"warm_start": warm, "older_rows": 0 if older is None else len(older.rows)}
    if older is not None:
        params |= {"older_data": redact(older.source), "older_weight_mean": round(float(older.weights.mean()), 4)}
    mlflow.log_params(params)


def _trees(trial: optuna.trial.FrozenTrial) -> int:
    return trial.user_attrs["best_iteration"] + 1


def _tuning_metrics(tuning: TuningResult, objective: str) -> dict[str, float]:
    return {
        f"best_valid_{objective}": tuning.study.best_value,
        "tuning_seconds": tuning.seconds,
        "trials_complete": tuning.count("complete"),
        "trials_pruned": tuning.count("pruned"),
        "study_trials": len(tuning.study.trials),
    }


def _figures(
    selected: Selected,
    tuning: TuningResult,
    split: Split,
    spec: DatasetSpec,
    config: TrainSettings,
    baselines: dict[str, Baseline],
    deciles: pd.DataFrame,
) -> tuple[dict[str, Figure], list[str]]:
    """ROC, PR, calibration (before and after), lift/gain, importance, SHAP and Optuna figures; and the ones that
    could not be drawn."""
    model, proba = selected.model, selected.proba
    y_true = split.holdout[spec.target].to_numpy()
    probas = {
        f"challenger ({selected.winner.name})": proba,
        **{f"baseline {k}": b.holdout_proba for k, b in baselines.items()},
    }
    sample = split.holdout.sample(min(SHAP_ROWS, len(split.holdout)), random_state=config.seed)
    shap_values = model.get_feature_importance(make_pool(sample, spec), type="ShapValues")[:, :-1]
    figures = {
        "roc": plots.roc_figure(y_true, probas),
        "precision_recall": plots.pr_figure(y_true, probas),
        "calibration": plots.calibration_figure(y_true, proba, config.calibration_bins, raw=selected.raw),
        "lift_gain": plots.lift_figure(deciles),
        "feature_importance": plots.importance_figure(
            pd.Series(model.get_feature_importance(), index=model.feature_names_)
        ),
        "shap_summary": plots.shap_figure(shap_values, model_frame(sample, spec), seed=config.seed),
    }
    optuna_figures, skipped = plots.optuna_figures(tuning.study)
    return {**figures, **optuna_figures}, skipped


def _card(
    spec: DatasetSpec, split: Split, selected: Selected, metrics: dict, config: TrainSettings, run_id: str
) -> ModelCard:
    """Score scale and tier cut-offs on the calibrated holdout probabilities; the calibration travels in the card."""
    quantiles, cutoffs = fit_card_scale(selected.proba, config.tiers)
    return ModelCard(
        spec=spec,
        score_quantiles=quantiles,
        tier_cutoffs=cutoffs,
        windows=split.windows,
        metrics=metrics,
        run_id=run_id,
        calibration=selected.calibration,
    )
