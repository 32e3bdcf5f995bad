"""Baselines fitted on the same split as the tuned model: untuned CatBoost and HistGradientBoosting.

Training itself takes its CatBoost baseline from model selection (the `defaults` candidate, refit with the same
recipe as the challenger) and fits HistGradientBoosting here; `fit_baselines` fits both on a split (benchmarks).

Both follow the tuned model's recipe: early stopping on the validation slice picks the number of boosting rounds,
then the model is refit on train+valid with that many rounds and scored on the holdout. HistGradientBoosting gets
the categorical features ordinal-encoded and declared categorical (at most 255 categories each: rarer ones are
grouped); it has no text features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import OrdinalEncoder

from scoreloop.core.model import make_pool, model_frame
from scoreloop.core.settings import TrainSettings
from scoreloop.core.spec import DatasetSpec
from scoreloop.training.split import Split, slice_weights
from scoreloop.training.tune import fit_catboost


@dataclass(frozen=True)
class Baseline:
    """One baseline's validation probabilities (from the early-stopped fit; None when it was selected on folds) and
    holdout probabilities."""

    valid_proba: np.ndarray | None
    holdout_proba: np.ndarray


def catboost_defaults(split: Split, spec: DatasetSpec, config: TrainSettings, weights: pd.Series | None) -> Baseline:
    """CatBoost with its default parameters (its automatic learning rate is kept for the refit)."""
    refit_rows = pd.concat([split.train, split.valid])
    pools = {
        name: make_pool(rows, spec, rows[spec.target], slice_weights(rows, weights))
        for name, rows in (("train", split.train), ("valid", split.valid), ("refit", refit_rows))
    }
    early = fit_catboost({}, pools["train"], pools["valid"], config)
    learning_rate = early.get_all_params()["learning_rate"]
    final = fit_catboost(
        {"learning_rate": learning_rate}, pools["refit"], None, config, iterations=early.get_best_iteration() + 1
    )
    return Baseline(
        valid_proba=early.predict_proba(pools["valid"])[:, 1],
        holdout_proba=final.predict_proba(model_frame(split.holdout, spec))[:, 1],
    )


class HgbFrames:
    """Numeric columns as they are, categorical ones ordinal-encoded (unseen -> missing), text columns left out."""

    def __init__(self, spec: DatasetSpec, fit_rows: pd.DataFrame) -> None:
        self.spec = spec
        self.encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=np.nan, max_categories=255, dtype=float
        )
        if spec.categorical:
            self.encoder.fit(model_frame(fit_rows, spec)[spec.categorical])

    @property
    def categorical_mask(self) -> list[bool]:
        return [False] * len(self.spec.numeric) + [True] * len(self.spec.categorical)

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        frame = model_frame(rows, self.spec)
        numeric = frame[self.spec.numeric].to_numpy(dtype=float)
        if not self.spec.categorical:
            return numeric
        return np.hstack([numeric, self.encoder.transform(frame[self.spec.categorical])])


def hist_gradient_boosting(
    split: Split, spec: DatasetSpec, config: TrainSettings, weights: pd.Series | None
) -> Baseline:
    """scikit-learn's HistGradientBoostingClassifier with its defaults, early-stopped on the validation slice. It
    learns from what the challenger learns from (a retrain's older rows too, with their weights), so the gate's
    comparison is on the same data; it has no warm start (no initial scores in scikit-learn)."""
    target = spec.target
    learned = split.train if split.older is None else pd.concat([split.older, split.train])
    frames = HgbFrames(spec, learned)
    early = HistGradientBoostingClassifier(
        max_iter=config.max_iterations,
        early_stopping=True,
        categorical_features=frames.categorical_mask,
        random_state=config.seed,
    ).fit(
        frames.transform(learned),
        learned[target].to_numpy(),
        slice_weights(learned, weights),
        X_val=frames.transform(split.valid),
        y_val=split.valid[target].to_numpy(),
        sample_weight_val=slice_weights(split.valid, weights),
    )
    refit_rows = split.fitted
    refit_frames = HgbFrames(spec, refit_rows)
    final = HistGradientBoostingClassifier(
        max_iter=early.n_iter_,
        early_stopping=False,
        categorical_features=refit_frames.categorical_mask,
        random_state=config.seed,
    ).fit(refit_frames.transform(refit_rows), refit_rows[target].to_numpy(), slice_weights(refit_rows, weights))
    return Baseline(
        valid_proba=early.predict_proba(frames.transform(split.valid))[:, 1],
        holdout_proba=final.predict_proba(refit_frames.transform(split.holdout))[:, 1],
    )


BASELINES = {"catboost": catboost_defaults, "hgb": hist_gradient_boosting}


def fit_baselines(
    split: Split, spec: DatasetSpec, config: TrainSettings, weights: pd.Series | None
) -> dict[str, Baseline]:
    """Every baseline, by the name its metrics are logged under (`baseline_<name>_*`)."""
    return {name: fit(split, spec, config, weights) for name, fit in BASELINES.items()}
