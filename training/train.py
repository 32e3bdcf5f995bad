"""Training orchestrator: split, tune, refit, evaluate on the holdout, log and register the challenger."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
from catboost import Pool
from mlflow import MlflowClient
from mlflow.models import infer_signature

from scoreloop.coerce import coerce_frame
from scoreloop.ingest import read_raw
from scoreloop.model import CARD_KEY, ModelCard, fit_card_scale, make_pool, model_frame
from scoreloop.settings import Settings
from scoreloop.spec import DatasetSpec
from scoreloop.tracking import CHALLENGER, configure
from training.metrics import binary_metrics
from training.split import Split, time_split
from training.tune import fit_catboost, tune

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    version: str
    study_name: str
    best_params: dict
    metrics: dict[str, float]
    rows_rejected: int


def load_rows(data: Path, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """Typed rows from an ingested Parquet file or a raw export; returns them with the count of rejected rows."""
    raw = read_raw(data)
    coerced = coerce_frame(raw.frame, spec, with_target=True, strict=True)
    return coerced.rows.reset_index(drop=True), len(coerced.reasons()) + len(raw.malformed)


def _log_lineage(split: Split, spec: DatasetSpec, source: str) -> None:
    """Each slice as an MLflow dataset input (with digest), plus the spec and the time windows."""
    with warnings.catch_warnings():  # MLflow warns about int columns and its own duplicate local-source resolvers
        warnings.simplefilter("ignore", UserWarning)
        _log_inputs(split, spec, source)
    mlflow.log_text(spec.to_yaml(), "spec.yaml")
    mlflow.log_dict(split.windows, "windows.json")


def _log_inputs(split: Split, spec: DatasetSpec, source: str) -> None:
    for context, frame in (("training", split.train), ("validation", split.valid), ("holdout", split.holdout)):
        dataset = mlflow.data.from_pandas(frame, source=source, targets=spec.target, name=f"{spec.name}-{context}")
        mlflow.log_input(dataset, context=context)


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
    e.g. inverse propensities when the labels were chosen by a previous model.
    """
    config = settings.train
    split = time_split(rows, spec, config.valid_fraction, config.holdout_fraction)
    study_name = study_name or f"{settings.model_name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    experiment_id = configure(settings)
    with mlflow.start_run(run_name=study_name, tags={"scoreloop.study": study_name, "scoreloop.role": "study"}) as run:
        mlflow.log_params(
            {
                "data": source,
                "rows": len(rows),
                "rows_rejected": rows_rejected,
                "weighted": weights is not None,
                "trials": config.trials,
                "seed": config.seed,
                **{f"window.{k}": v for k, v in split.windows.items()},
            }
        )
        _log_lineage(split, spec, source)
        train_pool = _pool(split.train, spec, weights)
        valid_pool = _pool(split.valid, spec, weights)
        study = tune(settings, study_name, train_pool, valid_pool, run.info.run_id, experiment_id)
        best = study.best_trial
        mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
        mlflow.log_metric("best_valid_roc_auc", best.value)

        refit_rows = pd.concat([split.train, split.valid])
        model = fit_catboost(
            best.params,
            _pool(refit_rows, spec, weights),
            None,
            config,
            iterations=best.user_attrs["best_iteration"] + 1,
        )
        holdout_x = model_frame(split.holdout, spec)
        proba = model.predict_proba(holdout_x)[:, 1]
        metrics = binary_metrics(split.holdout[spec.target], proba)
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        quantiles, cutoffs = fit_card_scale(proba, config.tiers)
        card = ModelCard(
            spec=spec,
            score_quantiles=quantiles,
            tier_cutoffs=cutoffs,
            windows=split.windows,
            metrics=metrics,
            run_id=run.info.run_id,
        )
        with tempfile.TemporaryDirectory() as tmp:
            holdout_file = Path(tmp) / "holdout.parquet"
            split.holdout.to_parquet(holdout_file, index=False)
            mlflow.log_artifact(str(holdout_file), Path(HOLDOUT_ARTIFACT).parent.as_posix())
        info = mlflow.catboost.log_model(
            model,
            name="model",
            signature=infer_signature(holdout_x.head(50), proba[:50]),
            input_example=holdout_x.head(3),
            metadata={CARD_KEY: card.model_dump(mode="json")},
        )
        version = _register(settings.model_name, info.model_uri, run.info.run_id, metrics)
    return TrainResult(run.info.run_id, settings.model_name, version, study_name, best.params, metrics, rows_rejected)


def _pool(rows: pd.DataFrame, spec: DatasetSpec, weights: pd.Series | None) -> Pool:
    weight = None if weights is None else weights.loc[rows.index].to_numpy()
    return make_pool(rows, spec, rows[spec.target], weight)


def _register(name: str, model_uri: str, run_id: str, metrics: dict[str, float]) -> str:
    tags = {"scoreloop.run_id": run_id, **{f"holdout_{k}": f"{v:.6f}" for k, v in metrics.items()}}
    version = mlflow.register_model(model_uri, name, tags=tags).version
    MlflowClient().set_registered_model_alias(name, CHALLENGER, version)
    return str(version)
