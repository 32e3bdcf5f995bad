"""One typed settings object, read from `SCORELOOP_*` environment variables and built at the entry point.

Every piece of state lives under `home`: the MLflow store and artifacts, the Optuna storage, the BentoML model
store, reports. Switching a store to a team server is one setting each (a URL).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def redact(url: str) -> str:
    """`scheme://user:secret@host` -> `scheme://user:***@host`; URLs without credentials are unchanged."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", url)


class TrainSettings(BaseModel):
    """How a training run splits, tunes and refits."""

    trials: int = Field(10, ge=1)
    seed: int = 42
    valid_fraction: float = Field(0.15, gt=0, lt=0.5, description="Newest-but-one time slice, used for tuning.")
    holdout_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="Newest time slice, never tuned on: final metrics and the promotion gate."
    )
    max_iterations: int = Field(600, ge=10)
    early_stopping_rounds: int = Field(40, ge=5)
    threads: int = Field(2, ge=1)
    tiers: dict[str, float] = Field(
        default_factory=lambda: {"A": 0.10, "B": 0.30, "C": 0.60},
        description="Tier name -> share of validation records at or above its cut-off (the rest are 'D').",
    )


class GateSettings(BaseModel):
    """The promotion gate: the challenger must reach the champion's primary metric minus `margin`."""

    metric: str = "roc_auc"
    margin: float = 0.0


class Settings(BaseSettings):
    """Everything configurable, with embedded (single-machine) defaults."""

    model_config = SettingsConfigDict(env_prefix="SCORELOOP_", env_nested_delimiter="__")

    home: Path = Path(".scoreloop")
    experiment: str = "scoreloop"
    model_name: str = "scoreloop-model"
    optuna_storage: str | None = Field(None, description="Optuna storage URL; default: a journal file in home.")
    store_url: str | None = Field(None, description="Scoring log + outcomes database URL; default: SQLite in home.")
    train: TrainSettings = Field(default_factory=TrainSettings)
    gate: GateSettings = Field(default_factory=GateSettings)

    @property
    def tracking_uri(self) -> str:
        """`MLFLOW_TRACKING_URI` wins; otherwise a SQLite store in the home."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def tracking_uri_redacted(self) -> str:
        """The tracking URI safe to print or log: any password in it replaced by ***."""
        return redact(self.tracking_uri)

    @property
    def record_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.home.resolve() / 'records.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.home.resolve() / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home.resolve() / "reports"

    @property
    def bentoml_home(self) -> Path:
        return self.home.resolve() / "bentoml"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home.resolve()
