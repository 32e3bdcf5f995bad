"""Pure monitoring figures on arrays and frames: PSI, calibration, AUC (weighted and expected), data quality, tiers.

No I/O and no Evidently here: these are the figures the status checks judge, computed on every row (they are
cheap), while Evidently renders reports on a sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

PSI_FLOOR = 1e-4  # share given to an empty bin, so one empty bin does not make PSI infinite


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of `bins` equal-count bins of `reference` (duplicates dropped where values tie)."""
    reference = np.asarray(reference, dtype=float)
    reference = reference[np.isfinite(reference)]
    if reference.size == 0:
        raise ValueError("cannot bin an empty reference")
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of finite `values` in each bin of `edges` (len(edges) + 1 bins, right-closed like `np.quantile`)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `reference` over the reference's quantile bins.

    PSI = sum over bins of (c - r) * ln(c / r) with shares floored at 1e-4. Rules of thumb: below 0.1 stable,
    0.1-0.25 a moderate shift, above 0.25 a major one.
    """
    edges = quantile_edges(reference, bins)
    ref, cur = (np.maximum(bin_shares(v, edges), PSI_FLOOR) for v in (reference, current))
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def roc_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC, optionally weighted (e.g. by inverse propensity); NaN when only one class is present."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, score, sample_weight=weights))


def expected_auc(score: np.ndarray, p_true: np.ndarray) -> float:
    """The ROC AUC `score` gets in expectation when each outcome is a Bernoulli draw of its true probability.

    Sum over ordered pairs (i positive, j negative) of p_i (1 - p_j) [score_i > score_j] (ties count half), over
    the expected number of such pairs; a noise-free population AUC for a world whose true probabilities are known.
    O(n log n): within a group of tied scores, pairs are counted as ties.
    """
    score, p = np.asarray(score, dtype=float), np.asarray(p_true, dtype=float)
    order = np.argsort(score, kind="stable")
    score, p = score[order], p[order]
    _, start = np.unique(score, return_index=True)
    pos, neg = np.add.reduceat(p, start), np.add.reduceat(1 - p, start)
    neg_below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
    within = np.add.reduceat(p * (1 - p), start)  # a record is never paired with itself
    wins = np.sum(pos * neg_below) + 0.5 * np.sum(pos * neg - within)
    pairs = p.sum() * (1 - p).sum() - np.sum(p * (1 - p))
    return float(wins / pairs) if pairs > 0 else float("nan")


def calibration_table(
    y: np.ndarray, probability: np.ndarray, bins: int = 10, weights: np.ndarray | None = None
) -> pd.DataFrame:
    """Equal-count bins of predicted probability: rows, (weighted) mean prediction and observed positive rate."""
    frame = pd.DataFrame(
        {
            "y": np.asarray(y, dtype=float),
            "p": np.asarray(probability, dtype=float),
            "w": np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float),
        }
    )
    if frame.empty:
        return pd.DataFrame(columns=["bin", "rows", "weight", "mean_predicted", "observed_rate"])
    frame["bin"] = np.searchsorted(quantile_edges(frame["p"].to_numpy(), bins), frame["p"], side="left")
    frame["wy"], frame["wp"] = frame["w"] * frame["y"], frame["w"] * frame["p"]
    grouped = frame.groupby("bin").agg(rows=("y", "size"), weight=("w", "sum"), wy=("wy", "sum"), wp=("wp", "sum"))
    grouped["mean_predicted"] = grouped["wp"] / grouped["weight"]
    grouped["observed_rate"] = grouped["wy"] / grouped["weight"]
    return grouped.drop(columns=["wy", "wp"]).reset_index()


def calibration_error(table: pd.DataFrame) -> float:
    """Expected calibration error: the weight-averaged |mean prediction - observed rate| over a calibration table."""
    if table.empty:
        return float("nan")
    gap = (table["mean_predicted"] - table["observed_rate"]).abs()
    return float(np.average(gap, weights=table["weight"]))


def missing_shares(frame: pd.DataFrame, columns: Iterable[str]) -> dict[str, float]:
    """Share of missing values per column."""
    return {c: float(frame[c].isna().mean()) if len(frame) else 0.0 for c in columns}


def new_category_shares(frame: pd.DataFrame, vocabulary: Mapping[str, Iterable[str]]) -> dict[str, float]:
    """Per categorical column, the share of present values outside `vocabulary` (categories the model never saw)."""
    shares = {}
    for column, known in vocabulary.items():
        present = frame[column].dropna()
        shares[column] = float((~present.astype(str).isin(set(known))).mean()) if len(present) else 0.0
    return shares


def tier_quality(scored: pd.DataFrame, tiers: Iterable[str]) -> pd.DataFrame:
    """Per tier: scored and labelled records, label coverage, positive rate, mean probability and its gap, AUC.

    `scored` has `tier`, `probability` and `outcome` (NaN when not known). Tiers are listed in the given order,
    then any others found.
    """
    order = list(dict.fromkeys([*tiers, *sorted(scored["tier"].dropna().unique())]))
    rows = []
    for tier in order:
        part = scored[scored["tier"] == tier]
        labelled = part[part["outcome"].notna()]
        rate = float(labelled["outcome"].mean()) if len(labelled) else float("nan")
        mean_p = float(labelled["probability"].mean()) if len(labelled) else float("nan")
        rows.append(
            {
                "tier": tier,
                "scored": len(part),
                "labelled": len(labelled),
                "coverage": len(labelled) / len(part) if len(part) else float("nan"),
                "positive_rate": rate,
                "mean_probability": mean_p,
                "calibration_gap": mean_p - rate,
                "roc_auc": roc_auc(labelled["outcome"], labelled["probability"]) if len(labelled) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def band_coverage(scored: pd.DataFrame, bands: int = 10) -> pd.DataFrame:
    """Label coverage and positive rate by score band (0-100 score cut into `bands` equal-width bands)."""
    width = 100 / bands
    band = np.minimum((scored["score"].to_numpy(dtype=float) // width).astype(int), bands - 1)
    frame = pd.DataFrame({"band": band, "labelled": scored["outcome"].notna(), "outcome": scored["outcome"]})
    grouped = frame.groupby("band").agg(
        scored=("band", "size"), labelled=("labelled", "sum"), positive=("outcome", "sum")
    )
    grouped = grouped.reindex(range(bands), fill_value=0)
    grouped["coverage"] = grouped["labelled"] / grouped["scored"].replace(0, np.nan)
    grouped["positive_rate"] = grouped["positive"] / grouped["labelled"].replace(0, np.nan)
    grouped.index = [f"{int(b * width)}-{int((b + 1) * width) - 1 if b < bands - 1 else 100}" for b in grouped.index]
    return grouped.rename_axis("band").reset_index()


def feature_quality(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], vocabulary: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, float]]:
    """Data quality of `current` against `reference`: missing share per column, its increase, unseen categories."""
    before, after = missing_shares(reference, columns), missing_shares(current, columns)
    return {
        "missing_share": after,
        "missing_increase": {c: after[c] - before[c] for c in columns},
        "new_category_share": new_category_shares(current, vocabulary),
    }


def labelled_quality(
    log: pd.DataFrame, weights: pd.Series | None, bins: int = 10
) -> dict[str, float | int | list[dict] | str]:
    """Quality on the records of `log` whose `outcome` is known (labels arrive late, for worked records only).

    ROC AUC is weighted by `weights` (inverse propensities, aligned on `log`) when given: worked records are the
    top of each batch plus a random slice, so plain AUC on them measures ranking within what was worked, and the
    weighted AUC estimates the population's. AUC on the explored slice alone is unweighted and unbiased for the
    leads below the top. Calibration needs no weights: who was worked depended only on the score (and chance),
    so the outcome rate among worked records at a given probability is the population's.
    """
    labelled = log[log["outcome"].notna()]
    y, p = labelled["outcome"].to_numpy(dtype=int), labelled["probability"].to_numpy(dtype=float)
    explored = labelled[labelled["policy"] == "explore"] if "policy" in labelled else labelled.iloc[0:0]
    table = calibration_table(y, p, bins)
    weighted = weights is not None and labelled["propensity"].notna().any()
    return {
        "labelled": len(labelled),
        "label_coverage": len(labelled) / len(log) if len(log) else float("nan"),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": roc_auc(y, p, weights.loc[labelled.index].to_numpy() if weighted else None),
        "roc_auc_basis": "inverse-propensity weighted" if weighted else "unweighted",
        "roc_auc_unweighted": roc_auc(y, p),
        "explored_labelled": len(explored),
        "roc_auc_explored": roc_auc(explored["outcome"], explored["probability"]) if len(explored) else float("nan"),
        "calibration_error": calibration_error(table),
        "calibration": table.to_dict(orient="records"),
    }
