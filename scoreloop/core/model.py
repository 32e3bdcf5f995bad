"""The scoring model as every stage sees it: a CatBoost classifier plus the card fitted with it.

The card (spec, feature order, probability calibration, score scale, tier cut-offs, training windows, holdout
metrics) is stored in the MLflow model's metadata, so serving and monitoring read back exactly what training fitted:
nothing is re-derived. Every probability a user or a decision sees is the classifier's raw probability passed
through `ScoringModel.calibrated`, the one place the card's calibration is applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, Pool
from pydantic import BaseModel, Field

from scoreloop.core.calibration import Calibration
from scoreloop.core.coerce import MISSING_CATEGORY
from scoreloop.core.spec import DatasetSpec

CARD_KEY = "scoreloop_card"
LOWEST_TIER = "D"


class ModelCard(BaseModel):
    """What was fitted alongside the classifier and must travel with it."""

    spec: DatasetSpec
    calibration: Calibration = Field(
        default_factory=Calibration,
        description="Raw -> calibrated probability; identity for models registered before calibration existed.",
    )
    score_quantiles: list[float] = Field(
        description="101 quantiles of the calibrated holdout probabilities (see `fit_card_scale`): score = percentile."
    )
    tier_cutoffs: dict[str, float] = Field(
        description="Tier -> minimum probability, best tier first, fitted on the same holdout probabilities."
    )
    windows: dict[str, str] = Field(default_factory=dict, description="ISO bounds of the train/valid/holdout slices.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Holdout metrics of this model.")
    run_id: str | None = None


def model_frame(rows: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Coerced rows -> the exact frame CatBoost expects: spec column order, no NaN in categorical columns."""
    frame = pd.DataFrame(index=rows.index)
    for name in spec.numeric:
        frame[name] = rows[name].astype(float)
    for name in spec.categorical:
        frame[name] = rows[name].fillna(MISSING_CATEGORY).astype(str)
    for name in spec.text:
        frame[name] = rows[name].fillna("").astype(str)
    return frame


def make_pool(
    rows: pd.DataFrame, spec: DatasetSpec, label: pd.Series | None = None, weight=None, baseline=None
) -> Pool:
    """CatBoost's pool of `rows`; `baseline`: raw log-odds every fit on it starts from (a warm start)."""
    return Pool(
        model_frame(rows, spec),
        label=None if label is None else np.asarray(label),
        weight=weight,
        baseline=baseline,
        cat_features=spec.categorical or None,
        text_features=spec.text or None,
    )


def fit_card_scale(proba: np.ndarray, tiers: dict[str, float]) -> tuple[list[float], dict[str, float]]:
    """Score scale and tier cut-offs from probabilities on rows the model never trained on. Training passes the
    refit model's calibrated holdout probabilities as `proba` (the refit learns from train+valid, so validation rows
    would score too well), so score and tier read the same probability a user sees.

    Tier T's cut-off leaves the top `tiers[T]` share of those rows at or above it, so T and the better tiers
    together hold that share; the rest are LOWEST_TIER.
    """
    quantiles = np.quantile(proba, np.linspace(0, 1, 101)).tolist()
    by_share = sorted(tiers.items(), key=lambda item: item[1])
    cutoffs = {tier: float(np.quantile(proba, 1 - share)) for tier, share in by_share}
    return quantiles, cutoffs


def to_scores(proba: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """0-100 score: the percentage of the holdout records the scale was fitted on that score below `proba`."""
    return np.clip(np.searchsorted(np.asarray(quantiles), proba, side="right") - 1, 0, 100).astype(int)


def to_tiers(proba: np.ndarray, cutoffs: dict[str, float]) -> np.ndarray:
    """The best tier whose cut-off each probability reaches; LOWEST_TIER below every cut-off."""
    tiers = np.full(len(proba), LOWEST_TIER, dtype=object)
    for tier, cutoff in reversed(list(cutoffs.items())):
        tiers[proba >= cutoff] = tier
    return tiers


class ScoringModel:
    """A loaded model with its card; `name`/`version` identify it in the registry."""

    def __init__(self, classifier: CatBoostClassifier, card: ModelCard, name: str, version: str) -> None:
        self.classifier = classifier
        self.card = card
        self.name = name
        self.version = str(version)

    @property
    def spec(self) -> DatasetSpec:
        return self.card.spec

    def raw_proba(self, rows: pd.DataFrame) -> np.ndarray:
        """The classifier's own probability of the positive label, before calibration (class weights and early
        stopping shift it): what a calibration is fitted on, never shown to a user."""
        if rows.empty:
            return np.empty(0)
        return self.classifier.predict_proba(model_frame(rows, self.spec))[:, 1]

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw classifier probabilities: the one place the card's calibration is
        applied, by this class and by serving's fast path alike."""
        return self.card.calibration.apply(raw)

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive label per row."""
        return self.calibrated(self.raw_proba(rows))

    def score(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probability, 0-100 score and tier per row, indexed like `rows`."""
        proba = self.predict_proba(rows)
        return pd.DataFrame(
            {
                "probability": proba,
                "score": to_scores(proba, self.card.score_quantiles),
                "tier": to_tiers(proba, self.card.tier_cutoffs),
            },
            index=rows.index,
        )


def read_card(model_dir: Path) -> ModelCard:
    """The card stored in an MLflow model directory's metadata; refuse a model without one."""
    from mlflow.models import Model

    metadata = Model.load(str(Path(model_dir) / "MLmodel")).metadata or {}
    if CARD_KEY not in metadata:
        raise ValueError(f"{model_dir} is not a scoreloop model: its MLmodel metadata has no {CARD_KEY!r}")
    return ModelCard.model_validate(metadata[CARD_KEY])


def load_scoring_model(model_dir: Path, name: str, version: str) -> ScoringModel:
    """Load an MLflow catboost model directory (native cbm, never a pickle) with its card."""
    from mlflow.catboost import load_model

    card = read_card(model_dir)
    return ScoringModel(load_model(str(model_dir)), card, name, version)
