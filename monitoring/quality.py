"""What monitoring measures on a period's frames: data quality against the reference, and quality on late labels.

Pure functions, no I/O and no Evidently: these are the figures the status checks judge, computed on every row
(they are cheap), while Evidently renders reports on a sample. Each metric comes from `scoreloop.core.metrics`, so
a monitored figure means what the same figure meant at training time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from scoreloop.core.metrics import calibration_table, positive_rate, roc_auc
from scoreloop.core.offpolicy import ESTIMATOR, Logged, estimate, expected_figures, point_figures


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
        rate = positive_rate(labelled["outcome"])
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
                "roc_auc": roc_auc(labelled["outcome"], labelled["probability"]),
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
    log: pd.DataFrame, capacity: float, bins: int = 10, *, interval_rows: int = 50_000, rounds: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Quality on the records of `log` from the outcomes that arrived (late, and for worked records only).

    Every figure on the labelled records is an off-policy estimate from the logged propensities (`core.offpolicy`:
    ROC AUC and ECE weighted by 1/propensity, the positive rate IPW and self-normalised, the doubly robust worklist
    value at `capacity`), with bootstrap intervals (on a seeded sample of `interval_rows` records of a larger period)
    and the weights' effective size; without logged propensities they are plain figures on the labelled records and
    say so. Next to them, what the calibrated probabilities expect of every record and of the unworked ones alone
    (confidence-based estimation, NannyML's CBPE), flagged when it falls outside the labelled estimate's interval.
    """
    labelled = log[log["outcome"].notna()]
    propensity = log["propensity"] if "propensity" in log and log["propensity"].notna().any() else None
    logged = Logged.of(log["outcome"], propensity)
    p = log["probability"].to_numpy(dtype=float)
    sample = np.arange(len(log))
    if len(log) > interval_rows:
        sample = np.sort(np.random.default_rng(seed).choice(len(log), interval_rows, replace=False))
    figures = estimate(logged.take(sample), p[sample], "roc_auc", capacity, rounds=rounds, seed=seed, bins=bins)
    figures |= point_figures(logged, p, "roc_auc", capacity, bins)  # the points on every record
    y, weights = labelled["outcome"].to_numpy(dtype=int), logged.weights[logged.labelled]
    explored = labelled[labelled["policy"] == "explore"] if "policy" in labelled else labelled.iloc[0:0]
    expected, unworked = expected_figures(p), expected_figures(p[~logged.labelled])
    disagree = [
        name
        for name, ours, low, high in (
            ("ROC AUC", expected["expected_roc_auc"], figures["roc_auc_low"], figures["roc_auc_high"]),
            (
                "positive rate",
                expected["expected_positive_rate"],
                figures["positive_rate_snipw_low"],
                figures["positive_rate_snipw_high"],
            ),
        )
        if np.isfinite(low) and not low <= ours <= high
    ]
    return {
        **figures,
        "labelled": len(labelled),
        "label_coverage": len(labelled) / len(log) if len(log) else float("nan"),
        "positive_rate": positive_rate(y),
        "roc_auc_basis": ESTIMATOR if propensity is not None else "unweighted: no propensities were logged",
        "roc_auc_unweighted": roc_auc(y, labelled["probability"].to_numpy(dtype=float)),
        "explored_labelled": len(explored),
        "roc_auc_explored": roc_auc(explored["outcome"], explored["probability"]),
        "calibration_error": figures["ece"],
        "calibration": calibration_table(y, labelled["probability"], bins, weights=weights).to_dict(orient="records"),
        **expected,
        "expected_roc_auc_unworked": unworked["expected_roc_auc"],
        "expected_positive_rate_unworked": unworked["expected_positive_rate"],
        "estimates_disagree": ", ".join(disagree),
    }
