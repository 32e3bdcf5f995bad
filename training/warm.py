"""Warm start: a challenger fitted on top of the champion, so a small window refines the champion instead of
replacing it.

Every fit of a warm-started training starts from the champion's raw log-odds on its rows (CatBoost's pool
`baseline`), and what it learns is a correction. The served model is the sum of the two (`catboost.sum_models`):
one CatBoost classifier whose raw log-odds are the champion's plus the correction's, so serving, SHAP reasons,
calibration and the gate see an ordinary model. The champion's own calibration is not part of the sum: the
challenger's calibration is fitted on the sum's out-of-fold predictions like any other.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, sum_models

from scoreloop.core.model import model_frame
from scoreloop.core.spec import DatasetSpec


def start_values(champion: CatBoostClassifier | None, rows: pd.DataFrame, spec: DatasetSpec) -> np.ndarray | None:
    """The champion's raw log-odds on `rows` (where a warm fit starts); None without a champion."""
    if champion is None:
        return None
    return np.asarray(champion.predict(model_frame(rows, spec), prediction_type="RawFormulaVal"), dtype=float)


def summed(models: Sequence[CatBoostClassifier], weights: Sequence[float]) -> CatBoostClassifier:
    """One servable classifier whose raw log-odds are `models`' weighted sum (`sum_models` gives a plain CatBoost:
    it is read back as a classifier so that it serves, explains and saves like any other)."""
    total = sum_models(list(models), weights=list(weights))
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "model.cbm")
        total.save_model(path)
        model = CatBoostClassifier()
        model.load_model(path)
    return model


def on_top(champion: CatBoostClassifier, correction: CatBoostClassifier) -> CatBoostClassifier:
    """The champion's trees and the correction's, raw log-odds added."""
    return summed([champion, correction], [1.0, 1.0])
