"""Out-of-time split: train on the oldest rows, tune on the next slice, keep the newest slice untouched."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoreloop.core.spec import DatasetSpec


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame
    holdout: pd.DataFrame
    windows: dict[str, str]


def _bounds(frame: pd.DataFrame, column: str | None) -> tuple[str, str]:
    if column is None:
        return str(frame.index.min()), str(frame.index.max())
    return frame[column].min().isoformat(), frame[column].max().isoformat()


def time_split(rows: pd.DataFrame, spec: DatasetSpec, valid_fraction: float, holdout_fraction: float) -> Split:
    """Split by event time (or by row order when the spec has no time column, which is then an artificial order).

    Rows are ordered stably so that equal timestamps fall on one side deterministically.
    """
    column = spec.time_column
    ordered = rows.sort_values(column, kind="stable") if column else rows
    n = len(ordered)
    n_holdout = round(n * holdout_fraction)
    n_valid = round(n * valid_fraction)
    n_train = n - n_valid - n_holdout
    if min(n_train, n_valid, n_holdout) < 10:
        raise ValueError(f"{n} rows are too few to split into train/valid/holdout with at least 10 rows each")
    parts = {
        "train": ordered.iloc[:n_train],
        "valid": ordered.iloc[n_train : n_train + n_valid],
        "holdout": ordered.iloc[n_train + n_valid :],
    }
    for name, part in parts.items():
        if part[spec.target].nunique() < 2:
            raise ValueError(f"the {name} slice has a single target class: more data or other fractions needed")
    windows = {
        f"{name}_{side}": value
        for name, part in parts.items()
        for side, value in zip(("start", "end"), _bounds(part, column), strict=True)
    }
    windows["order"] = column or "row order (artificial: the data has no time column)"
    return Split(windows=windows, **parts)


def slice_weights(rows: pd.DataFrame, weights: pd.Series | None) -> np.ndarray | None:
    """The weights of `rows` (aligned on their index), or None when training is unweighted."""
    return None if weights is None else weights.loc[rows.index].to_numpy(dtype=float)
