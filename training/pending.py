"""A trained run's results, kept on disk until they are logged: losing the tracking store loses no trained model.

Training writes everything it would log after tuning (the refit model in CatBoost's native format, params,
metrics, tags, the model card, the holdout, plots, the decile table) to `HOME/pending/<study>-<run>/` first, then
logs it to the study's parent run, registers the model as `challenger` and deletes the folder. When the store goes
away meanwhile the folder stays, and `scoreloop train --resume-logging` runs the very same logging step later. The
registered version is written back to the folder the moment it exists, so a retry never registers twice.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from catboost import CatBoostClassifier
from mlflow import MlflowClient

from scoreloop.core.coerce import input_fields
from scoreloop.core.model import ModelCard
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import CHALLENGER, configure, unreachable_reason
from scoreloop.training import flavours
from scoreloop.training.tags import HOLDOUT_ARTIFACT, VERSION_TAG

RUN_FILE, MODEL_FILE, CARD_FILE, DECILES_FILE = "run.json", "model.cbm", "card.json", "deciles.parquet"
ARTIFACTS = "artifacts"


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
    selection: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PendingRun:
    """What still has to reach the tracking store, and the result to report once it has."""

    run_id: str
    model_name: str
    params: dict[str, object]
    metrics: dict[str, float]
    tags: dict[str, str]
    result: dict = field(default_factory=dict)
    version: str | None = None


def pending_root(settings: Settings) -> Path:
    return settings.home.resolve() / "pending"


def keep(
    settings: Settings,
    run: PendingRun,
    model: CatBoostClassifier,
    card: ModelCard,
    holdout: pd.DataFrame,
    deciles: pd.DataFrame,
) -> Path:
    """Write a run's results under the home; `artifacts/` (plots, ...) may be filled by the caller before logging."""
    study = re.sub(r"[^\w.-]", "_", run.result["study_name"])
    directory = pending_root(settings) / f"{study}-{run.run_id[:8]}"
    (directory / ARTIFACTS / Path(HOLDOUT_ARTIFACT).parent).mkdir(parents=True, exist_ok=True)
    model.save_model(str(directory / MODEL_FILE))
    holdout.to_parquet(directory / ARTIFACTS / HOLDOUT_ARTIFACT, index=False)
    deciles.to_parquet(directory / DECILES_FILE, index=False)
    (directory / CARD_FILE).write_text(card.model_dump_json())
    _write(directory, run)
    return directory


def _write(directory: Path, run: PendingRun) -> None:
    (directory / RUN_FILE).write_text(json.dumps(asdict(run), default=str, indent=1))


def read(directory: Path) -> PendingRun:
    return PendingRun(**json.loads((directory / RUN_FILE).read_text()))


def kept_runs(settings: Settings) -> list[Path]:
    """Every run waiting to be logged, oldest first."""
    root = pending_root(settings)
    found = [path.parent for path in root.glob(f"*/{RUN_FILE}")] if root.exists() else []
    return sorted(found, key=lambda path: (path / RUN_FILE).stat().st_mtime)


def log_pending(settings: Settings, directory: Path) -> TrainResult:
    """Log a kept run to its parent run and register it as `challenger`; the folder is deleted once that is done.

    If the tracking store cannot be reached, the folder stays and a ConnectionError says how to finish later.
    """
    try:
        result = _log(settings, directory)
    except Exception as exc:
        if reason := unreachable_reason(settings):
            raise ConnectionError(
                f"the tracking store {settings.tracking_uri_redacted} became unreachable while logging ({reason}): "
                f"the trained model, metrics, card and holdout are kept in {directory}; "
                "run `scoreloop train --resume-logging` when it answers again"
            ) from exc
        raise
    shutil.rmtree(directory)
    return result


def _log(settings: Settings, directory: Path) -> TrainResult:
    run = read(directory)
    configure(settings)
    active = mlflow.active_run()
    resumed = active if active and active.info.run_id == run.run_id else mlflow.start_run(run_id=run.run_id)
    with resumed:
        mlflow.log_params(run.params)
        mlflow.log_metrics(run.metrics)
        mlflow.set_tags(run.tags)
        mlflow.log_table(pd.read_parquet(directory / DECILES_FILE), "evaluation/deciles.json")
        mlflow.log_artifacts(str(directory / ARTIFACTS))
        version = run.version or _log_model(directory, run)
        MlflowClient().set_registered_model_alias(run.model_name, CHALLENGER, version)
        mlflow.set_tag(VERSION_TAG, version)
    return TrainResult(run_id=run.run_id, version=version, **run.result)


def _log_model(directory: Path, run: PendingRun) -> str:
    """Log the model (catboost and scoreloop's python_function flavours, raw-record signature, a few holdout records
    as input example, the card); register it and note the version on disk."""
    card = ModelCard.model_validate_json((directory / CARD_FILE).read_text())
    model = CatBoostClassifier()
    model.load_model(str(directory / MODEL_FILE))
    holdout = pd.read_parquet(directory / ARTIFACTS / HOLDOUT_ARTIFACT)
    example = holdout[[name for name in input_fields(card.spec) if name in holdout]].head(3)
    info = flavours.log_model(model, card, example.astype(object).where(example.notna(), None))
    tags = {"scoreloop.run_id": run.run_id, **{f"holdout_{k}": f"{v:.6f}" for k, v in card.metrics.items()}}
    version = str(mlflow.register_model(info.model_uri, run.model_name, tags=tags).version)
    _write(directory, PendingRun(**{**asdict(run), "version": version}))
    return version
