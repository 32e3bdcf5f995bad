"""Out-of-time split: train on the oldest rows, tune on the next slice, keep the newest slice untouched; and the
folds tuning and model selection fit on (the validation slice, or k folds over train+valid for small data).

A retrain may add older fully labelled rows (`Split.older`): every fit trains on them, but no fold validates on
them and they are never in the holdout, so what tuning, calibration and the gate judge is the newest data only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoreloop.core.spec import DatasetSpec

RANDOM_ORDER = "stratified random"


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame
    holdout: pd.DataFrame
    windows: dict[str, str]
    older: pd.DataFrame | None = None

    @property
    def fitted(self) -> pd.DataFrame:
        """What the refit learns from: the older rows (if any), train and valid."""
        return pd.concat([part for part in (self.older, self.train, self.valid) if part is not None])


def _bounds(frame: pd.DataFrame, column: str | None) -> tuple[str, str]:
    if column is None:
        return str(frame.index.min()), str(frame.index.max())
    return frame[column].min().isoformat(), frame[column].max().isoformat()


def time_split(
    rows: pd.DataFrame, spec: DatasetSpec, valid_fraction: float, holdout_fraction: float, seed: int = 0
) -> Split:
    """Split by event time: train on the oldest rows, validate on the next, hold out the newest. Rows are ordered
    stably so that equal timestamps fall on one side deterministically.

    Without a time column there is no "newest": the rows are shuffled (seeded) with the classes interleaved, so
    train, valid and holdout are a stratified random split with the same positive rate each (a file's row order
    may be sorted by anything, even the outcome).
    """
    column = spec.time_column
    ordered = rows.sort_values(column, kind="stable") if column else _stratified_shuffle(rows, spec.target, seed)
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
    windows["order"] = column or f"{RANDOM_ORDER} (seed {seed}): the data has no time column"
    return Split(windows=windows, **parts)


def _stratified_shuffle(rows: pd.DataFrame, target: str, seed: int) -> pd.DataFrame:
    """Rows in a seeded random order in which every contiguous slice holds each class in its overall share."""
    rng = np.random.default_rng(seed)
    labels = rows[target].to_numpy()
    position = np.empty(len(rows))
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        position[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return rows.iloc[np.argsort(position, kind="stable")]


@dataclass(frozen=True)
class Older:
    """Fully labelled rows from before a retrain's window, each with its weight (aligned on `rows`), and where they
    were read from."""

    rows: pd.DataFrame
    weights: pd.Series
    source: str


def with_older(rows: pd.DataFrame, weights: pd.Series | None, older: Older) -> tuple[pd.DataFrame, pd.Series, Older]:
    """The window's rows and the older rows renumbered so their indexes cannot collide, and one weight series for
    both: the older rows' own, the window's (1 each when the window is unweighted)."""
    first, window = pd.RangeIndex(len(older.rows)), pd.RangeIndex(len(older.rows), len(older.rows) + len(rows))
    own = pd.Series(1.0, index=rows.index) if weights is None else weights.loc[rows.index].astype(float)
    combined = pd.concat([older.weights.loc[older.rows.index].astype(float).set_axis(first), own.set_axis(window)])
    return rows.set_axis(window), combined, Older(older.rows.set_axis(first), combined.loc[first], older.source)


def slice_weights(rows: pd.DataFrame, weights: pd.Series | None) -> np.ndarray | None:
    """The weights of `rows` (aligned on their index), or None when training is unweighted."""
    return None if weights is None else weights.loc[rows.index].to_numpy(dtype=float)


@dataclass(frozen=True)
class Fold:
    """One fit-and-score pair of tuning and selection: fit on `train`, early-stop on and score `valid`."""

    train: pd.DataFrame
    valid: pd.DataFrame


def tuning_folds(split: Split, spec: DatasetSpec, cv_below_rows: int, k: int, seed: int) -> list[Fold]:
    """The validation slice as one fold when train+valid holds at least `cv_below_rows` rows; otherwise `k` folds
    over train+valid (`cv_folds`). The holdout is in none of them; the older rows are in every fold's training
    rows and in no validation rows."""
    development = pd.concat([split.train, split.valid])
    folds = (
        [Fold(split.train, split.valid)] if len(development) >= cv_below_rows else cv_folds(development, spec, k, seed)
    )
    if split.older is None:
        return folds
    return [Fold(pd.concat([split.older, fold.train]), fold.valid) for fold in folds]


def cv_folds(rows: pd.DataFrame, spec: DatasetSpec, k: int, seed: int) -> list[Fold]:
    """Time-ordered expanding-window folds when the spec has a time column (fold i trains on the oldest i/(k+1) of
    the rows and validates on the next 1/(k+1): never on the future), stratified shuffled folds otherwise."""
    if spec.time_column:
        ordered = rows.sort_values(spec.time_column, kind="stable")
        edges = np.linspace(0, len(ordered), k + 2).round().astype(int)
        return [Fold(ordered.iloc[: edges[i]], ordered.iloc[edges[i] : edges[i + 1]]) for i in range(1, k + 1)]
    from sklearn.model_selection import StratifiedKFold  # here: tuning's worker processes import this module

    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        Fold(rows.iloc[fit], rows.iloc[score])
        for fit, score in splitter.split(np.zeros(len(rows)), rows[spec.target].to_numpy())
    ]
