"""Pure metric functions on labels and probabilities: ranking, probability quality, and what a sales team sees.

Rankings put the highest probability first; equal probabilities keep their input order (a stable sort), so every
figure here is deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})


def binary_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Ranking (ROC AUC, PR AUC) and probability quality (log loss, Brier) of one set of predictions."""
    y_true = np.asarray(y_true)
    proba = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, proba)),
    }


def calibration_table(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: rows, mean predicted probability and observed rate per non-empty bin."""
    y_true, proba = np.asarray(y_true, dtype=float), np.asarray(proba, dtype=float)
    index = np.minimum((proba * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": index, "predicted": proba, "observed": y_true})
    table = frame.groupby("bin").agg(
        rows=("observed", "size"), predicted=("predicted", "mean"), observed=("observed", "mean")
    )
    table.insert(0, "lower", table.index / bins)
    return table.reset_index(drop=True)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean gap between predicted probability and observed rate over equal-width bins."""
    table = calibration_table(y_true, proba, bins)
    return float((table["rows"] * (table["predicted"] - table["observed"]).abs()).sum() / table["rows"].sum())


def _ranked(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities ordered by descending probability (stable)."""
    proba = np.asarray(proba, dtype=float)
    order = np.argsort(-proba, kind="stable")
    return np.asarray(y_true, dtype=float)[order], proba[order]


def top_k_rows(n: int, k: float) -> int:
    """How many of `n` records the top `k` share holds: at least one."""
    return max(1, int(np.ceil(n * k - 1e-9)))


def precision_at_k(y_true: np.ndarray, proba: np.ndarray, k: float) -> float:
    """Share of positives among the top `k` share of records by probability."""
    ranked, _ = _ranked(y_true, proba)
    return float(ranked[: top_k_rows(len(ranked), k)].mean())


def lift_at_k(y_true: np.ndarray, proba: np.ndarray, k: float) -> float:
    """Precision in the top `k` share over the base rate: how much better than working records at random."""
    return precision_at_k(y_true, proba, k) / float(np.mean(y_true))


def decile_table(y_true: np.ndarray, proba: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """Records ranked by probability and cut into `groups` near-equal groups (1 = highest scores).

    Per group: rows, positives, conversion, mean probability, lift over the base rate and the cumulative share of
    all positives captured from group 1 down to this one (the gain curve).
    """
    ranked, ranked_proba = _ranked(y_true, proba)
    parts = np.array_split(np.arange(len(ranked)), groups)
    positives = np.array([ranked[p].sum() for p in parts])
    rows = np.array([len(p) for p in parts])
    table = pd.DataFrame(
        {
            "decile": np.arange(1, groups + 1),
            "rows": rows,
            "positives": positives.astype(int),
            "conversion": positives / np.maximum(rows, 1),
            "mean_probability": [float(ranked_proba[p].mean()) if len(p) else np.nan for p in parts],
        }
    )
    table["lift"] = table["conversion"] / float(ranked.mean())
    table["cumulative_gain"] = positives.cumsum() / positives.sum()
    return table


def k_label(k: float) -> str:
    """Metric-name form of a share: 0.1 -> '10pct', 0.025 -> '2.5pct'."""
    return f"{k * 100:g}pct"


def evaluate(y_true: np.ndarray, proba: np.ndarray, top_k: float = 0.10, bins: int = 10) -> dict[str, float]:
    """Every scalar figure of one set of predictions: binary metrics, ECE, precision and lift in the top k."""
    label = k_label(top_k)
    return {
        **binary_metrics(y_true, proba),
        "ece": expected_calibration_error(y_true, proba, bins),
        f"precision_at_{label}": precision_at_k(y_true, proba, top_k),
        f"lift_at_{label}": lift_at_k(y_true, proba, top_k),
    }


def decile_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The decile table as flat metrics: conversion and lift per decile."""
    metrics = {}
    for row in table.itertuples():
        metrics[f"decile_{row.decile:02d}_conversion"] = float(row.conversion)
        metrics[f"decile_{row.decile:02d}_lift"] = float(row.lift)
    return metrics


def improvement(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` on `metric` (positive = better, whichever way the metric points)."""
    return old - new if metric in LOWER_IS_BETTER else new - old
