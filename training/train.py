"""Training orchestrator: split, tune, refit, evaluate on the holdout, log and register the challenger.

Everything an engineer compares runs by lands on the study's parent run: settings and search space, lineage,
tuning summary, holdout metrics (ranking, calibration, top-k precision and lift, deciles), baselines fitted on the
same split, and diagnostic plots.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from mlflow import MlflowClient
from mlflow.models import infer_signature

from scoreloop.coerce import coerce_frame
from scoreloop.ingest import read_raw
from scoreloop.model import CARD_KEY, ModelCard, fit_card_scale, make_pool, model_frame
from scoreloop.settings import Settings, TrainSettings
from scoreloop.spec import DatasetSpec
from scoreloop.tracking import CHALLENGER, configure
from training import plots
from training.baselines import Baseline, fit_baselines
from training.lineage import log_lineage
from training.metrics import decile_metrics, decile_table, evaluate
from training.split import Split, slice_weights, time_split
from training.tune import TuningData, TuningResult, fit_catboost, tune

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
STUDY_TAG = "scoreloop.study"
ROLE_TAG = "scoreloop.role"
VERSION_TAG = "scoreloop.model_version"
SHAP_ROWS = 2000


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    version: str
    study_name: str
    best_params: dict
    metrics: dict[str, float]
    rows_rejected: int
    trials: dict[str, int] = field(default_factory=dict)
    tuning_seconds: float = 0.0
    baselines: dict[str, float] = field(default_factory=dict)


def load_rows(data: Path, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """Typed rows from an ingested Parquet file or a raw export; returns them with the count of rejected rows."""
    raw = read_raw(data)
    coerced = coerce_frame(raw.frame, spec, with_target=True, strict=True)
    return coerced.rows.reset_index(drop=True), len(coerced.reasons()) + len(raw.malformed)


def train(settings: Settings, spec: DatasetSpec, data: Path, study_name: str | None = None) -> TrainResult:
    """Train from a file: see `train_rows`."""
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
    `study_name` adds trials to that Optuna study (under a new parent run).
    """
    config = settings.train
    split = time_split(rows, spec, config.valid_fraction, config.holdout_fraction)
    study_name = study_name or f"{settings.model_name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    experiment_id = configure(settings)
    with mlflow.start_run(run_name=study_name, tags={STUDY_TAG: study_name, ROLE_TAG: "study"}) as run:
        run_id = run.info.run_id
        _log_settings(config, source, len(rows), rows_rejected, weights is not None, split)
        log_lineage(split, spec, source)
        data = TuningData(
            spec, split.train, split.valid, slice_weights(split.train, weights), slice_weights(split.valid, weights)
        )
        tuning = tune(settings, study_name, data, run_id, experiment_id, mlflow.get_tracking_uri())
        _log_tuning(tuning)
        model = _refit(tuning, split, spec, config, weights)
        holdout_x = model_frame(split.holdout, spec)
        proba = model.predict_proba(holdout_x)[:, 1]
        metrics = _log_holdout(split.holdout[spec.target].to_numpy(), proba, config)
        baselines = fit_baselines(split, spec, config, weights) if config.baselines else {}
        baseline_metrics = _log_baselines(split, spec, config, baselines)
        _log_plots(model, tuning, split, spec, config, proba, baselines)
        card = _card(spec, split, proba, metrics, config, run_id)
        _log_holdout_rows(split.holdout)
        info = mlflow.catboost.log_model(
            model,
            name="model",
            signature=infer_signature(holdout_x.head(50), proba[:50]),
            input_example=holdout_x.head(3),
            metadata={CARD_KEY: card.model_dump(mode="json")},
        )
        version = _register(settings.model_name, info.model_uri, run_id, metrics)
        mlflow.set_tag(VERSION_TAG, version)
    states = {"complete": tuning.count("complete"), "pruned": tuning.count("pruned"), "study": len(tuning.study.trials)}
    return TrainResult(
        run_id,
        settings.model_name,
        version,
        study_name,
        tuning.study.best_params,
        metrics,
        rows_rejected,
        trials=states,
        tuning_seconds=round(tuning.seconds, 2),
        baselines=baseline_metrics,
    )


def _log_settings(config: TrainSettings, source: str, rows: int, rejected: int, weighted: bool, split: Split) -> None:
    """Everything that shapes this run as params, so the MLflow compare view lines runs up setting by setting."""
    search = {f"search.{k}": v for k, v in config.search.model_dump(mode="json").items()}
    mlflow.log_params(
        {
            "data": source,
            "rows": rows,
            "rows_rejected": rejected,
            "weighted": weighted,
            **config.model_dump(
                include={
                    "trials",
                    "seed",
                    "workers",
                    "pruning",
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


def _log_tuning(tuning: TuningResult) -> None:
    best = tuning.study.best_trial
    mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
    mlflow.log_param("best.iterations", best.user_attrs["best_iteration"] + 1)
    mlflow.set_tags(
        {
            "scoreloop.best_trial": str(best.number),
            "scoreloop.best_trial_run_id": best.user_attrs.get("mlflow_run_id", ""),
        }
    )
    mlflow.log_metrics(
        {
            "best_valid_roc_auc": best.value,
            "tuning_seconds": tuning.seconds,
            "trials_complete": tuning.count("complete"),
            "trials_pruned": tuning.count("pruned"),
            "study_trials": len(tuning.study.trials),
        }
    )


def _refit(
    tuning: TuningResult, split: Split, spec: DatasetSpec, config: TrainSettings, weights: pd.Series | None
) -> CatBoostClassifier:
    """The best trial's parameters refit on train+valid with the number of trees early stopping chose."""
    best = tuning.study.best_trial
    refit_rows = pd.concat([split.train, split.valid])
    pool = make_pool(refit_rows, spec, refit_rows[spec.target], slice_weights(refit_rows, weights))
    return fit_catboost(best.params, pool, None, config, iterations=best.user_attrs["best_iteration"] + 1)


def _log_holdout(y_true: np.ndarray, proba: np.ndarray, config: TrainSettings) -> dict[str, float]:
    """Holdout metrics (returned, for the card and the registry) plus the decile table (logged only)."""
    metrics = evaluate(y_true, proba, config.top_k, config.calibration_bins)
    deciles = decile_table(y_true, proba)
    mlflow.log_metrics({f"holdout_{k}": v for k, v in {**metrics, **decile_metrics(deciles)}.items()})
    mlflow.log_table(deciles, "evaluation/deciles.json")
    return metrics


def _log_baselines(split: Split, spec: DatasetSpec, config: TrainSettings, baselines: dict[str, Baseline]) -> dict:
    """`baseline_<name>_<metric>` on the holdout, and `baseline_<name>_valid_roc_auc` for the tuning comparison."""
    y_holdout, y_valid = split.holdout[spec.target].to_numpy(), split.valid[spec.target].to_numpy()
    logged = {}
    for name, baseline in baselines.items():
        metrics = evaluate(y_holdout, baseline.holdout_proba, config.top_k, config.calibration_bins)
        logged.update({f"baseline_{name}_{k}": v for k, v in metrics.items()})
        logged[f"baseline_{name}_valid_roc_auc"] = evaluate(y_valid, baseline.valid_proba)["roc_auc"]
    mlflow.log_metrics(logged)
    return {k: round(v, 4) for k, v in logged.items() if k.endswith("roc_auc")}


def _log_plots(
    model: CatBoostClassifier,
    tuning: TuningResult,
    split: Split,
    spec: DatasetSpec,
    config: TrainSettings,
    proba: np.ndarray,
    baselines: dict[str, Baseline],
) -> None:
    """ROC, PR, calibration, lift/gain, importance, SHAP and Optuna figures as PNGs under `plots/`."""
    y_true = split.holdout[spec.target].to_numpy()
    probas = {"tuned catboost": proba, **{f"baseline {k}": b.holdout_proba for k, b in baselines.items()}}
    sample = split.holdout.sample(min(SHAP_ROWS, len(split.holdout)), random_state=config.seed)
    shap_values = model.get_feature_importance(make_pool(sample, spec), type="ShapValues")[:, :-1]
    figures = {
        "roc": plots.roc_figure(y_true, probas),
        "precision_recall": plots.pr_figure(y_true, probas),
        "calibration": plots.calibration_figure(y_true, proba, config.calibration_bins),
        "lift_gain": plots.lift_figure(decile_table(y_true, proba)),
        "feature_importance": plots.importance_figure(
            pd.Series(model.get_feature_importance(), index=model.feature_names_)
        ),
        "shap_summary": plots.shap_figure(shap_values, model_frame(sample, spec), seed=config.seed),
    }
    optuna_figures, skipped = plots.optuna_figures(tuning.study)
    if skipped:
        mlflow.set_tag("scoreloop.plots_skipped", "; ".join(skipped)[:5000])
    with tempfile.TemporaryDirectory() as tmp:
        plots.save_figures({**figures, **optuna_figures}, Path(tmp))
        mlflow.log_artifacts(tmp, "plots")


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


def _log_holdout_rows(holdout: pd.DataFrame) -> None:
    """The holdout rows themselves, so the promotion gate can re-score any model on them."""
    with tempfile.TemporaryDirectory() as tmp:
        holdout_file = Path(tmp) / "holdout.parquet"
        holdout.to_parquet(holdout_file, index=False)
        mlflow.log_artifact(str(holdout_file), Path(HOLDOUT_ARTIFACT).parent.as_posix())


def _register(name: str, model_uri: str, run_id: str, metrics: dict[str, float]) -> str:
    tags = {"scoreloop.run_id": run_id, **{f"holdout_{k}": f"{v:.6f}" for k, v in metrics.items()}}
    version = mlflow.register_model(model_uri, name, tags=tags).version
    MlflowClient().set_registered_model_alias(name, CHALLENGER, version)
    return str(version)
