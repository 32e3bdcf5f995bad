"""Training orchestrator: split, tune, refit, evaluate on the holdout, log and register the challenger.

Everything an engineer compares runs by lands on the study's parent run: settings and search space, lineage,
tuning summary, holdout metrics (ranking, calibration, top-k precision and lift, deciles), baselines fitted on the
same split, and diagnostic plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
from catboost import CatBoostClassifier
from matplotlib.figure import Figure
from mlflow.entities import RunStatus

from scoreloop.core.ingest import read_rows
from scoreloop.core.metrics import decile_metrics, decile_table, evaluate, roc_auc
from scoreloop.core.model import ModelCard, fit_card_scale, make_pool, model_frame
from scoreloop.core.settings import Settings, TrainSettings, redact
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.tracking import configure, unreachable_reason
from scoreloop.training import plots
from scoreloop.training.baselines import Baseline, fit_baselines
from scoreloop.training.lineage import log_lineage
from scoreloop.training.pending import ARTIFACTS, PendingRun, TrainResult, keep, log_pending
from scoreloop.training.split import Split, slice_weights, time_split
from scoreloop.training.tags import ROLE_TAG, STUDY_TAG
from scoreloop.training.tune import TuningData, TuningResult, fit_catboost, start_worker_server, tune

__all__ = ["HoldoutFigures", "TrainResult", "holdout_figures", "train", "train_rows"]

SHAP_ROWS = 2000


def load_rows(data: Path, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """Typed rows from an ingested Parquet file (as written) or a raw export (read once, now); returns them with
    the count of rejected rows."""
    return read_rows(data, spec)


def require_tracking(settings: Settings) -> None:
    """Fail in a second, before any work, when the tracking store does not answer."""
    if reason := unreachable_reason(settings):
        raise ConnectionError(
            f"the tracking store {settings.tracking_uri_redacted} is unreachable ({reason}): nothing was trained; "
            "start it or point MLFLOW_TRACKING_URI at one that answers"
        )


def train(settings: Settings, spec: DatasetSpec, data: Path, study_name: str | None = None) -> TrainResult:
    """Train from a file: see `train_rows`."""
    start_worker_server(settings.train.workers)  # its imports overlap reading the data
    require_tracking(settings)
    rows, rejected = load_rows(data, spec)
    return train_rows(settings, spec, rows, source=str(data), rows_rejected=rejected, study_name=study_name)


def train_rows(
    settings: Settings,
    spec: DatasetSpec,
    rows: pd.DataFrame,
    *,
    source: str,
    weights: pd.Series | None = None,
    rows_rejected: int = 0,
    study_name: str | None = None,
) -> TrainResult:
    """Tune on an out-of-time split, refit the best params on train+valid, register it as `challenger`.

    `rows` are coerced records; `weights` (aligned on their index) weight the training and validation rows,
    e.g. inverse propensities when the labels were chosen by a previous model. Running again with the same
    `study_name` adds trials to that Optuna study (under a new parent run). Everything after tuning is kept on
    disk before it is logged (see `training.pending`).
    """
    config = settings.train
    start_worker_server(config.workers)
    split = time_split(rows, spec, config.valid_fraction, config.holdout_fraction)
    study_name = study_name or f"{settings.model_name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    require_tracking(settings)
    experiment_id = configure(settings)
    run_id = mlflow.start_run(run_name=study_name, tags={STUDY_TAG: study_name, ROLE_TAG: "study"}).info.run_id
    try:
        _log_settings(settings, source, len(rows), rows_rejected, weights is not None, split)
        log_lineage(split, spec, redact(source))
        data = TuningData(
            spec, split.train, split.valid, slice_weights(split.train, weights), slice_weights(split.valid, weights)
        )
        tuning = tune(settings, study_name, data, run_id, experiment_id, mlflow.get_tracking_uri())
        directory = _evaluate(settings, spec, split, tuning, weights, run_id, rows_rejected)
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
    """The holdout figures of the refit model (`metrics`, `deciles`) and of the baselines fitted on the same split.

    `baselines` maps `baseline_<name>_<metric>` (holdout) and `baseline_<name>_valid_roc_auc` (the tuning
    comparison) to their values.
    """

    metrics: dict[str, float]
    deciles: pd.DataFrame
    baselines: dict[str, float]

    def logged(self) -> dict[str, float]:
        """The figures under their MLflow metric names: `holdout_<metric>`, `holdout_decile_<nn>_*`, `baseline_*`."""
        holdout = {**self.metrics, **decile_metrics(self.deciles)}
        return {**{f"holdout_{k}": v for k, v in holdout.items()}, **self.baselines}


def holdout_figures(
    y_holdout: np.ndarray,
    proba: np.ndarray,
    y_valid: np.ndarray,
    baselines: dict[str, Baseline],
    config: TrainSettings,
) -> HoldoutFigures:
    """Score the model's holdout probabilities and each baseline's, with the same metric definitions as the gate."""
    figures = {}
    for name, baseline in baselines.items():
        metrics = evaluate(y_holdout, baseline.holdout_proba, config.top_k, config.calibration_bins)
        figures.update({f"baseline_{name}_{k}": v for k, v in metrics.items()})
        figures[f"baseline_{name}_valid_roc_auc"] = roc_auc(y_valid, baseline.valid_proba)
    metrics = evaluate(y_holdout, proba, config.top_k, config.calibration_bins)
    return HoldoutFigures(metrics, decile_table(y_holdout, proba), figures)


def _evaluate(
    settings: Settings,
    spec: DatasetSpec,
    split: Split,
    tuning: TuningResult,
    weights: pd.Series | None,
    run_id: str,
    rows_rejected: int,
) -> Path:
    """Refit, score the holdout, fit the baselines; keep what the run logs on disk (see `_keep`)."""
    config = settings.train
    model = _refit(tuning, split, spec, config, weights)
    proba = model.predict_proba(model_frame(split.holdout, spec))[:, 1]
    baselines = fit_baselines(split, spec, config, weights) if config.baselines else {}
    y_holdout, y_valid = split.holdout[spec.target].to_numpy(), split.valid[spec.target].to_numpy()
    figures = holdout_figures(y_holdout, proba, y_valid, baselines, config)
    return _keep(settings, spec, split, tuning, model, proba, baselines, figures, run_id, rows_rejected)


def _keep(
    settings: Settings,
    spec: DatasetSpec,
    split: Split,
    tuning: TuningResult,
    model: CatBoostClassifier,
    proba: np.ndarray,
    baselines: dict[str, Baseline],
    figures: HoldoutFigures,
    run_id: str,
    rows_rejected: int,
) -> Path:
    """Everything the run logs (params, metrics, tags, model, card, holdout, plots) written under the home first."""
    config = settings.train
    plotted, skipped = _figures(model, tuning, split, spec, config, proba, baselines, figures.deciles)
    best = tuning.study.best_trial
    tags = {"scoreloop.best_trial": str(best.number), "scoreloop.best_trial_run_id": best.user_attrs["mlflow_run_id"]}
    if skipped:
        tags["scoreloop.plots_skipped"] = "; ".join(skipped)[:5000]
    pending = PendingRun(
        run_id=run_id,
        model_name=settings.model_name,
        params={**{f"best.{k}": v for k, v in best.params.items()}, "best.iterations": _trees(best)},
        metrics={**_tuning_metrics(tuning), **figures.logged()},
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
        },
    )
    card = _card(spec, split, proba, figures.metrics, config, run_id)
    directory = keep(settings, pending, model, card, split.holdout, figures.deciles)
    plots.save_figures(plotted, directory / ARTIFACTS / "plots")
    return directory


def _log_settings(settings: Settings, source: str, rows: int, rejected: int, weighted: bool, split: Split) -> None:
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
                }
            ),
            **search,
            **{f"window.{k}": v for k, v in split.windows.items()},
        }
    )


def _trees(trial: optuna.trial.FrozenTrial) -> int:
    return trial.user_attrs["best_iteration"] + 1


def _tuning_metrics(tuning: TuningResult) -> dict[str, float]:
    return {
        "best_valid_roc_auc": tuning.study.best_value,
        "tuning_seconds": tuning.seconds,
        "trials_complete": tuning.count("complete"),
        "trials_pruned": tuning.count("pruned"),
        "study_trials": len(tuning.study.trials),
    }


def _refit(
    tuning: TuningResult, split: Split, spec: DatasetSpec, config: TrainSettings, weights: pd.Series | None
) -> CatBoostClassifier:
    """The best trial's parameters refit on train+valid with the number of trees early stopping chose."""
    best = tuning.study.best_trial
    refit_rows = pd.concat([split.train, split.valid])
    pool = make_pool(refit_rows, spec, refit_rows[spec.target], slice_weights(refit_rows, weights))
    return fit_catboost(best.params, pool, None, config, iterations=_trees(best))


def _figures(
    model: CatBoostClassifier,
    tuning: TuningResult,
    split: Split,
    spec: DatasetSpec,
    config: TrainSettings,
    proba: np.ndarray,
    baselines: dict[str, Baseline],
    deciles: pd.DataFrame,
) -> tuple[dict[str, Figure], list[str]]:
    """ROC, PR, calibration, lift/gain, importance, SHAP and Optuna figures; and the ones that could not be drawn."""
    y_true = split.holdout[spec.target].to_numpy()
    probas = {"tuned catboost": proba, **{f"baseline {k}": b.holdout_proba for k, b in baselines.items()}}
    sample = split.holdout.sample(min(SHAP_ROWS, len(split.holdout)), random_state=config.seed)
    shap_values = model.get_feature_importance(make_pool(sample, spec), type="ShapValues")[:, :-1]
    figures = {
        "roc": plots.roc_figure(y_true, probas),
        "precision_recall": plots.pr_figure(y_true, probas),
        "calibration": plots.calibration_figure(y_true, proba, config.calibration_bins),
        "lift_gain": plots.lift_figure(deciles),
        "feature_importance": plots.importance_figure(
            pd.Series(model.get_feature_importance(), index=model.feature_names_)
        ),
        "shap_summary": plots.shap_figure(shap_values, model_frame(sample, spec), seed=config.seed),
    }
    optuna_figures, skipped = plots.optuna_figures(tuning.study)
    return {**figures, **optuna_figures}, skipped


def _card(
    spec: DatasetSpec, split: Split, proba: np.ndarray, metrics: dict, config: TrainSettings, run_id: str
) -> ModelCard:
    quantiles, cutoffs = fit_card_scale(proba, config.tiers)
    return ModelCard(
        spec=spec,
        score_quantiles=quantiles,
        tier_cutoffs=cutoffs,
        windows=split.windows,
        metrics=metrics,
        run_id=run_id,
    )
