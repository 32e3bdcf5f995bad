"""Probability calibration: a monotone map fitted on predictions the model did not train on, stored in the model
card as plain numbers (no pickle) and applied by `ScoringModel` wherever a probability is produced.

Why it exists: tuning may pick class weights or stop early, and both shift CatBoost's raw probabilities away from
observed rates, while the product tells a sales team "probability 0.31". Two methods:
- `platt`: logistic regression on the raw log-odds, p = sigmoid(slope * logit(raw) + intercept). Affine in
  log-odds, so per-feature contributions (SHAP values are log-odds) scale by `slope` and still add up exactly to
  the calibrated log-odds: reasons stay consistent with the probability shown.
- `isotonic`: a non-decreasing step function (scikit-learn's IsotonicRegression, stored as its thresholds and
  interpolated); more flexible, needs more rows, and it is not affine, so reasons are rescaled per record.
- `identity`: nothing fitted (models trained before calibration existed, or too few rows to fit).
Ranks never change except where isotonic ties records, so AUC moves only by those ties. A Platt slope is never
below `MIN_SLOPE`: a small validation slice on which the model happens to rank backwards would otherwise fit a
negative slope and serve the ranking upside down (a simulated retrain on 57 validation rows did: slope -0.05,
population AUC 0.23). There the slope is held at the floor and only the intercept is fitted, which keeps the
ranking and says, by probabilities close to the base rate, that the model is unsure.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before taking log-odds
MIN_SLOPE = 0.05  # the flattest Platt slope: calibration may shrink the ranking's confidence, never reverse it
Method = Literal["platt", "isotonic", "identity"]


def logit(proba: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(proba, dtype=float), EPS, 1 - EPS)
    return np.log(clipped / (1 - clipped))


def sigmoid(log_odds: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(log_odds, dtype=float)))


class Calibration(BaseModel):
    """A fitted calibration map from raw to calibrated probabilities (see the module docstring)."""

    method: Method = "identity"
    slope: float = 1.0
    intercept: float = 0.0
    thresholds: list[float] = Field(default_factory=list, description="isotonic: raw probabilities, ascending")
    values: list[float] = Field(default_factory=list, description="isotonic: calibrated probability at each")
    rows: int = Field(0, description="how many labelled predictions it was fitted on")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw model probabilities."""
        raw = np.asarray(raw, dtype=float)
        if self.method == "platt":
            return sigmoid(self.slope * logit(raw) + self.intercept)
        if self.method == "isotonic":
            return np.clip(np.interp(raw, self.thresholds, self.values), EPS, 1 - EPS)
        return raw


def fit_calibration(
    y_true: np.ndarray, raw: np.ndarray, method: Method = "platt", weights: np.ndarray | None = None
) -> Calibration:
    """Fit `method` on labels and raw probabilities of rows the model did not train on (validation or
    out-of-fold). One class only, or `identity`, gives the identity map."""
    y_true, raw = np.asarray(y_true, dtype=float), np.asarray(raw, dtype=float)
    if method == "identity" or len(np.unique(y_true)) < 2:
        return Calibration(rows=len(y_true))
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        fitted = LogisticRegression(C=1e6, max_iter=1000).fit(logit(raw)[:, None], y_true, sample_weight=weights)
        slope, intercept = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
        if slope < MIN_SLOPE:
            slope, intercept = MIN_SLOPE, _intercept(y_true, MIN_SLOPE * logit(raw), weights)
        return Calibration(method="platt", slope=slope, intercept=intercept, rows=len(y_true))
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, y_true, sample_weight=weights)
    return Calibration(
        method="isotonic",
        thresholds=fitted.X_thresholds_.tolist(),
        values=fitted.y_thresholds_.tolist(),
        rows=len(y_true),
    )


def _intercept(y_true: np.ndarray, log_odds: np.ndarray, weights: np.ndarray | None) -> float:
    """The intercept whose calibrated probabilities average to the observed rate (the logistic likelihood's
    optimum when the slope is fixed)."""
    from scipy.optimize import brentq

    w = np.ones(len(y_true)) if weights is None else np.asarray(weights, dtype=float)
    observed = np.average(y_true, weights=w)
    return float(brentq(lambda b: np.average(sigmoid(log_odds + b), weights=w) - observed, -50, 50))
