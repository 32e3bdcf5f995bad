"""One definition of every metric on labels and probabilities, shared by training, the gate and monitoring.

A model's holdout figures at training time and its figures on labelled records in production come from the same
functions with the same defaults, so they can be compared. Rankings put the highest probability first; equal
probabilities keep their input order (a stable sort), so every figure is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

Binning = Literal["equal-count", "equal-width"]

BINNING: Binning = "equal-count"
"""The calibration binning used everywhere (training's holdout ECE, the gate, monitoring, the feedback report).

Equal-count (quantile) bins: lead scores are skewed (most records score low), so equal-width bins put most records
in one or two low bins, where a miscalibration averages out, and leave the upper bins a handful of records whose
observed rate is noise. With equal counts every bin's rate is estimated from as many records, and the figure means
the same for models whose scores span different ranges.
"""
BINS = 10
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
PSI_FLOOR = 1e-4  # share given to an empty bin, so one empty bin does not make PSI infinite


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of `bins` equal-count bins of `reference` (duplicates dropped where values tie)."""
    reference = np.asarray(reference, dtype=float)
    reference = reference[np.isfinite(reference)]
    if reference.size == 0:
        raise ValueError("cannot bin an empty reference")
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: len(edges) + 1 bins, right-closed like `np.quantile`."""
    return np.searchsorted(edges, values, side="left")


def psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    """Population stability index of `current` against `reference` over the reference's quantile bins.

    PSI = sum over bins of (c - r) * ln(c / r) with shares floored at 1e-4. Rules of thumb: below 0.1 stable,
    0.1-0.25 a moderate shift, above 0.25 a major one.
    """
    edges = quantile_edges(reference, bins)
    shares = []
    for values in (reference, current):
        values = np.asarray(values, dtype=float)
        counts = np.bincount(_bin_index(values[np.isfinite(values)], edges), minlength=len(edges) + 1)
        shares.append(np.maximum(counts / max(counts.sum(), 1), PSI_FLOOR))
    ref, cur = shares
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def positive_rate(y: np.ndarray) -> float:
    """Share of positive labels; NaN when there are none to count."""
    y = np.asarray(y, dtype=float)
    return float(y.mean()) if y.size else float("nan")


def roc_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC, optionally weighted (e.g. by inverse propensity: each pair counts w_i * w_j); NaN when only one class
    is present. Ties count half."""
    y = np.asarray(y, dtype=float)
    if len(np.unique(y)) < 2:
        return float("nan")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    return _pair_auc(np.asarray(score, dtype=float), w * y, w * (1 - y))


def expected_auc(score: np.ndarray, p_true: np.ndarray) -> float:
    """The ROC AUC `score` gets in expectation when each outcome is a Bernoulli draw of its true probability.

    Sum over ordered pairs (i positive, j negative) of p_i (1 - p_j) [score_i > score_j] (ties count half), over
    the expected number of such pairs; a noise-free population AUC for a world whose true probabilities are known
    (and, given calibrated probabilities as `p_true`, the AUC a model expects of itself: see `core.offpolicy`).
    """
    p = np.asarray(p_true, dtype=float)
    return _pair_auc(np.asarray(score, dtype=float), p, 1 - p, within=p * (1 - p))


def _pair_auc(score: np.ndarray, pos: np.ndarray, neg: np.ndarray, within: np.ndarray | None = None) -> float:
    """Share of (positive, negative) pair weight ranked right: each record carries `pos` weight as a positive and
    `neg` as a negative; `within` is the weight of a record paired with itself, never a real pair. O(n log n):
    records with tied scores are grouped and their pairs count half."""
    order = np.argsort(score, kind="stable")
    score, pos, neg = score[order], pos[order], neg[order]
    _, start = np.unique(score, return_index=True)
    pos_g, neg_g = np.add.reduceat(pos, start), np.add.reduceat(neg, start)
    neg_below = np.concatenate(([0.0], np.cumsum(neg_g)[:-1]))
    self_pairs = 0.0 if within is None else float(np.sum(within))
    wins = np.sum(pos_g * neg_below) + 0.5 * (np.sum(pos_g * neg_g) - self_pairs)
    pairs = pos.sum() * neg.sum() - self_pairs
    return float(wins / pairs) if pairs > 0 else float("nan")


def calibration_table(
    y: np.ndarray,
    probability: np.ndarray,
    bins: int = BINS,
    strategy: Binning = BINNING,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per non-empty probability bin: rows, weight, (weighted) mean prediction and observed positive rate.

    `strategy` "equal-count" cuts at the predictions' quantiles, "equal-width" at multiples of 1 / `bins` (a
    probability of 1 falls in the top bin). Weights (e.g. inverse propensities) weight both means.
    """
    frame = pd.DataFrame(
        {
            "y": np.asarray(y, dtype=float),
            "p": np.asarray(probability, dtype=float),
            "w": np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float),
        }
    )
    if frame.empty:
        return pd.DataFrame(columns=["bin", "rows", "weight", "mean_predicted", "observed_rate"])
    if strategy == "equal-count":
        frame["bin"] = _bin_index(frame["p"].to_numpy(), quantile_edges(frame["p"].to_numpy(), bins))
    elif strategy == "equal-width":
        frame["bin"] = np.minimum((frame["p"].to_numpy() * bins).astype(int), bins - 1)
    else:
        raise ValueError(f"binning strategy must be 'equal-count' or 'equal-width', got {strategy!r}")
    frame["wy"], frame["wp"] = frame["w"] * frame["y"], frame["w"] * frame["p"]
    grouped = frame.groupby("bin").agg(rows=("y", "size"), weight=("w", "sum"), wy=("wy", "sum"), wp=("wp", "sum"))
    grouped["mean_predicted"] = grouped["wp"] / grouped["weight"]
    grouped["observed_rate"] = grouped["wy"] / grouped["weight"]
    return grouped.drop(columns=["wy", "wp"]).reset_index()


def expected_calibration_error(
    y: np.ndarray,
    probability: np.ndarray,
    bins: int = BINS,
    strategy: Binning = BINNING,
    weights: np.ndarray | None = None,
) -> float:
    """ECE: |mean prediction - observed rate| per bin of `calibration_table`, averaged by the bins' weight (their
    rows when unweighted); NaN without records."""
    table = calibration_table(y, probability, bins, strategy, weights)
    if table.empty:
        return float("nan")
    gap = (table["mean_predicted"] - table["observed_rate"]).abs()
    return float(np.average(gap, weights=table["weight"]))


BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")


def binary_metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Ranking (ROC AUC, PR AUC) and probability quality (log loss, Brier) of one set of predictions."""
    return {metric: binary_metric(metric, y, probability) for metric in BINARY_METRICS}


def binary_metric(metric: str, y: np.ndarray, probability: np.ndarray, weights: np.ndarray | None = None) -> float:
    """One of `BINARY_METRICS` by name, computed alone (a bootstrap calls it hundreds of times), optionally weighted
    (inverse propensities: see `core.offpolicy`)."""
    y = np.asarray(y, dtype=float)
    probability = np.clip(np.asarray(probability, dtype=float), 1e-7, 1 - 1e-7)
    if metric == "roc_auc":
        return roc_auc(y, probability, weights)
    if metric == "pr_auc":
        two = len(np.unique(y)) == 2
        return float(average_precision_score(y, probability, sample_weight=weights)) if two else float("nan")
    if metric == "log_loss":
        return float(np.average(-(y * np.log(probability) + (1 - y) * np.log(1 - probability)), weights=weights))
    if metric == "brier":
        return float(np.average((probability - y) ** 2, weights=weights))
    raise ValueError(f"unknown metric {metric!r}; expected one of {list(BINARY_METRICS)}")


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], n: int, level: float = 0.90, rounds: int = 300, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of `statistic(rows)` over `rounds` resamples of `n` records with replacement (rows are
    the resampled positions, so one draw can feed several paired figures)."""
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(rounds)]
    tail = (1 - level) / 2
    low, high = np.nanquantile(values, [tail, 1 - tail]) if np.isfinite(values).any() else (np.nan, np.nan)
    return float(low), float(high)


def paired_gain_interval(
    metric: str, y: np.ndarray, new: np.ndarray, old: np.ndarray, level: float = 0.90, rounds: int = 300, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap interval of `improvement(metric, new, old)` on the same records: each round resamples the rows once
    and scores both sets of predictions on them, so the noise both share cancels (a paired comparison)."""
    y, new, old = np.asarray(y), np.asarray(new, dtype=float), np.asarray(old, dtype=float)

    def gain(rows: np.ndarray) -> float:
        return improvement(metric, binary_metric(metric, y[rows], new[rows]), binary_metric(metric, y[rows], old[rows]))

    return bootstrap_interval(gain, len(y), level, rounds, seed)


def _ranked(y: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities ordered by descending probability (stable)."""
    probability = np.asarray(probability, dtype=float)
    order = np.argsort(-probability, kind="stable")
    return np.asarray(y, dtype=float)[order], probability[order]


def top_k_rows(n: int, k: float) -> int:
    """How many of `n` records the top `k` share holds: at least one."""
    return max(1, int(np.ceil(n * k - 1e-9)))


def precision_at_k(y: np.ndarray, probability: np.ndarray, k: float) -> float:
    """Share of positives among the top `k` share of records by probability."""
    ranked, _ = _ranked(y, probability)
    return positive_rate(ranked[: top_k_rows(len(ranked), k)])


def lift_at_k(y: np.ndarray, probability: np.ndarray, k: float) -> float:
    """Precision in the top `k` share over the base rate: how much better than working records at random."""
    return precision_at_k(y, probability, k) / positive_rate(y)


def decile_table(y: np.ndarray, probability: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """Records ranked by probability and cut into `groups` near-equal groups (1 = highest scores).

    Per group: rows, positives, conversion, mean probability, lift over the base rate and the cumulative share of
    all positives captured from group 1 down to this one (the gain curve).
    """
    ranked, ranked_proba = _ranked(y, probability)
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
    table["lift"] = table["conversion"] / positive_rate(ranked)
    table["cumulative_gain"] = positives.cumsum() / positives.sum()
    return table


def decile_metrics(table: pd.DataFrame) -> dict[str, float]:
    """A decile table as flat metrics: conversion and lift per decile."""
    metrics = {}
    for row in table.itertuples():
        metrics[f"decile_{row.decile:02d}_conversion"] = float(row.conversion)
        metrics[f"decile_{row.decile:02d}_lift"] = float(row.lift)
    return metrics


def k_label(k: float) -> str:
    """Metric-name form of a share: 0.1 -> '10pct', 0.025 -> '2.5pct'."""
    return f"{k * 100:g}pct"


def evaluate(y: np.ndarray, probability: np.ndarray, top_k: float = 0.10, bins: int = BINS) -> dict[str, float]:
    """Every scalar figure of one set of predictions: binary metrics, ECE, precision and lift in the top k."""
    label = k_label(top_k)
    return {
        **binary_metrics(y, probability),
        "ece": expected_calibration_error(y, probability, bins),
        f"precision_at_{label}": precision_at_k(y, probability, top_k),
        f"lift_at_{label}": lift_at_k(y, probability, top_k),
    }


def improvement(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` on `metric` (positive = better, whichever way the metric points)."""
    return old - new if metric in LOWER_IS_BETTER else new - old


def wilson_interval(successes: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a rate (95% by default), per element; NaN where `n` is 0.

    Unlike the normal approximation it stays inside [0, 1] and is honest for the small counts and extreme rates of
    a young cohort or a top tier (0 of 12 converted is not "0% ± 0").
    """
    successes, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = successes / n
        centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
