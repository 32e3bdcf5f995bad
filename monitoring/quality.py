"""What monitoring measures on a period's frames: data quality against the reference, and quality on late labels.

Pure functions, no I/O and no Evidently: these are the figures the status checks judge, computed on every row
(they are cheap), while Evidently renders reports on a sample. Each metric comes from `scoreloop.core.metrics`, so
a monitored figure means what the same figure meant at training time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from scoreloop.core.metrics import calibration_table, expected_calibration_error, positive_rate, roc_auc


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
    weighted = weights is not None and labelled["propensity"].notna().any()
    return {
        "labelled": len(labelled),
        "label_coverage": len(labelled) / len(log) if len(log) else float("nan"),
        "positive_rate": positive_rate(y),
        "roc_auc": roc_auc(y, p, weights.loc[labelled.index].to_numpy() if weighted else None),
        "roc_auc_basis": "inverse-propensity weighted" if weighted else "unweighted",
        "roc_auc_unweighted": roc_auc(y, p),
        "explored_labelled": len(explored),
        "roc_auc_explored": roc_auc(explored["outcome"], explored["probability"]),
        "calibration_error": expected_calibration_error(y, p, bins),
        "calibration": calibration_table(y, p, bins).to_dict(orient="records"),
    }
