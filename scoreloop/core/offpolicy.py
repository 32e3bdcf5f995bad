"""Off-policy estimates: how a model would do on the whole population, from the records a policy chose to work.

Only worked records get outcomes, and the work policy logged each record's propensity (its probability of being
worked) exactly. A worked record weighted by 1/propensity stands for the records like it that were not worked, so
a weighted figure on the labelled records estimates the figure on every logged record (inverse propensity
weighting, IPW). The positive rate is given both ways: IPW divides by the number of logged records, self-normalised
IPW (SNIPW) by the weights' sum (a little bias, much less variance). AUC and ECE are ratios of weighted sums, so
their IPW form is self-normalised by construction. The worklist value (conversions per 100 records when sales works
a model's top `capacity` share) is doubly robust: the model's calibrated probability predicts every record of its
top and each worked one corrects it by its weighted residual, so the estimate is unbiased because the propensities
are exact, and tight where the model is good. Every figure comes with a paired bootstrap interval over the logged
records and the weights' effective sample size.

The weighted figures (AUC, ECE, positive rate) often rest on few effective records: at the default exploration a
span's labelled records are worth 2-25 equally weighted ones, and there the percentile bootstrap is too narrow (its
variance divides by n, not n - 1, and its tails are the normal's). Their intervals are widened around the point to
Student's t with (effective size - 1) degrees of freedom (`small_sample_interval`); the doubly robust value, which
every record informs, keeps its bootstrap interval (benchmarks/README.md, loop: both measured against the truth).

Records a policy could never work (propensity 0, e.g. below the top under exploit-only) are not identified: no
weighting can see them, and `support` says how many logged records that leaves out. Labelled records that no
policy chose (a training file, a pilot) count once. The estimators follow Open Bandit Pipeline's IPW, SNIPW and DR
(written here in a few lines: obp's pins do not install beside the lock).

`expected_figures` is the confidence-based estimate for records without outcomes (NannyML's CBPE): with calibrated
probabilities a model's expected AUC and positive rate follow from the probabilities alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from scoreloop.core.metrics import (
    BINS,
    binary_metric,
    bootstrap_interval,
    expected_auc,
    expected_calibration_error,
    improvement,
    top_k_rows,
)

ESTIMATOR = (
    "off-policy: labelled records weighted by 1/propensity (IPW; positive rate also self-normalised, SNIPW), "
    "worklist value doubly robust, paired bootstrap intervals over the logged records (weighted figures' intervals "
    "widened to Student's t on the weights' effective size)"
)


@dataclass(frozen=True)
class Logged:
    """One period's logged decisions: per scored record its outcome (NaN when none arrived: not worked) and the
    propensity with which it was worked (NaN when no policy logged one)."""

    y: np.ndarray
    propensity: np.ndarray

    @classmethod
    def of(cls, outcome: pd.Series | np.ndarray, propensity: pd.Series | np.ndarray | None = None) -> Logged:
        y = np.asarray(pd.to_numeric(pd.Series(outcome), errors="coerce"), dtype=float)
        p = np.full(len(y), np.nan) if propensity is None else np.asarray(propensity, dtype=float)
        if len(p) != len(y):
            raise ValueError(f"{len(y)} outcomes but {len(p)} propensities")
        labelled = ~np.isnan(y)
        if np.any(labelled & (p <= 0)):
            raise ValueError("a labelled record has propensity 0: it could not have been worked")
        return cls(y, np.where(labelled & np.isnan(p), 1.0, p))  # labelled without a policy: counts once

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.y)

    @property
    def weights(self) -> np.ndarray:
        """1/propensity for labelled records, 0 for the rest."""
        return np.where(self.labelled, 1.0 / np.where(self.labelled, self.propensity, 1.0), 0.0)

    @property
    def support(self) -> float:
        """Share of the logged records the policy could have worked (positive propensity): what the estimates see."""
        return float(np.mean(self.propensity > 0)) if len(self) else float("nan")

    @property
    def effective_size(self) -> float:
        """Kish's effective sample size of the weights: how many equally weighted labelled records they are worth."""
        w = self.weights[self.labelled]
        return float(w.sum() ** 2 / np.sum(w**2)) if w.size else 0.0

    @property
    def explored(self) -> tuple[int, int]:
        """Labelled positives and negatives a policy worked with propensity below 1: all an estimate sees of how
        models rank below the top. With none of a class there, a figure's error is one no interval shows (for the
        AUC gain it favours the champion whose top was worked: benchmarks/README.md, loop)."""
        below = self.labelled & (self.propensity < 1)
        return int(np.sum(below & (self.y == 1))), int(np.sum(below & (self.y == 0)))

    def take(self, rows: np.ndarray) -> Logged:
        return Logged(self.y[rows], self.propensity[rows])


def worklist_value(logged: Logged, probability: np.ndarray, capacity: float) -> float:
    """Doubly robust conversions per 100 records when sales works the top `capacity` share by `probability`."""
    top = np.argsort(-np.asarray(probability, dtype=float), kind="stable")[: top_k_rows(len(logged), capacity)]
    q = probability[top]
    residual = np.where(logged.labelled[top], np.nan_to_num(logged.y[top]) - q, 0.0)
    return float(100 * np.mean(q + logged.weights[top] * residual))


def point_figures(
    logged: Logged, probability: np.ndarray, metric: str, capacity: float, bins: int = BINS
) -> dict[str, float]:
    """Every off-policy figure of one model's probabilities on the logged records (no intervals)."""
    probability = np.asarray(probability, dtype=float)
    lab, w = logged.labelled, logged.weights
    y, p, wl = logged.y[lab], probability[lab], w[lab]
    n = len(logged)
    return {
        metric: binary_metric(metric, y, p, wl) if lab.any() else float("nan"),
        "ece": expected_calibration_error(y, p, bins, weights=wl) if lab.any() else float("nan"),
        "positive_rate_ipw": float(np.sum(wl * y) / n) if n else float("nan"),
        "positive_rate_snipw": float(np.sum(wl * y) / wl.sum()) if lab.any() else float("nan"),
        "mean_probability": float(probability.mean()) if n else float("nan"),
        "worklist_value": worklist_value(logged, probability, capacity) if n else float("nan"),
    }


@dataclass(frozen=True)
class Comparison:
    """A new model against an old one on the same logged records: each one's figures, and the new one's gain on
    `metric` and on the worklist value, each with its paired bootstrap interval at `level`."""

    metric: str
    level: float
    new: dict[str, float]
    old: dict[str, float]
    gain: tuple[float, float, float]  # point, low, high on `metric` (positive: the new model is better)
    value_gain: tuple[float, float, float]  # the same on the worklist value
    ece_gap: tuple[float, float, float]  # new ECE - old ECE, point, low, high (positive: the new one is worse)
    new_value_interval: tuple[float, float]
    records: int
    labelled: int
    effective_size: float
    support: float
    explored: tuple[int, int]  # labelled positives, negatives worked with propensity < 1 (below the top)
    estimator: str = ESTIMATOR
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        g, v, e = self.gain, self.value_gain, self.ece_gap
        return (
            f"{self.metric} {self.new[self.metric]:.4f} vs {self.old[self.metric]:.4f}, gain {g[0]:+.4f} "
            f"({self.level:.0%} interval {g[1]:+.4f} to {g[2]:+.4f}); worklist value {self.new['worklist_value']:.2f} "
            f"vs {self.old['worklist_value']:.2f} conversions per 100 worked (gain {v[0]:+.2f}, {v[1]:+.2f} to "
            f"{v[2]:+.2f}); ECE {self.new['ece']:.4f} vs {self.old['ece']:.4f} (gap {e[0]:+.4f}, {e[1]:+.4f} to "
            f"{e[2]:+.4f}); on {self.records} logged records, "
            f"{self.labelled} labelled, effective size {self.effective_size:.0f}, support {self.support:.0%}"
            + (
                f", explored {self.explored[0]} positive(s) and {self.explored[1]} negative(s) below the top"
                if self.labelled < self.records  # a policy chose: say what it saw below its top
                else ""
            )
        )


def compare(
    logged: Logged,
    new: np.ndarray,
    old: np.ndarray,
    metric: str,
    capacity: float,
    *,
    level: float = 0.90,
    rounds: int = 300,
    seed: int = 0,
    bins: int = BINS,
) -> Comparison:
    """Off-policy figures of two models on the same logged records and the paired intervals of the new one's gain
    (each bootstrap round resamples the records once and scores both models on them)."""
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    gain = resampled_gain(logged, new, old, metric)
    new_value, old_value = _resampled_value(logged, new, capacity), _resampled_value(logged, old, capacity)
    new_ece, old_ece = _resampled_ece(logged, new, bins), _resampled_ece(logged, old, bins)

    n, size = len(logged), logged.effective_size
    interval = {"level": level, "rounds": rounds, "seed": seed}
    ours = point_figures(logged, new, metric, capacity, bins)
    theirs = point_figures(logged, old, metric, capacity, bins)
    point_gain, point_gap = improvement(metric, ours[metric], theirs[metric]), ours["ece"] - theirs["ece"]
    notes = []
    if logged.support < 1:
        notes.append(
            f"{1 - logged.support:.0%} of the logged records could never have been worked (propensity 0): "
            "no estimate sees them"
        )
    return Comparison(
        metric=metric,
        level=level,
        new=ours,
        old=theirs,
        gain=(point_gain, *small_sample_interval(point_gain, bootstrap_interval(gain, n, **interval), size, level)),
        value_gain=(
            ours["worklist_value"] - theirs["worklist_value"],
            *bootstrap_interval(lambda rows: new_value(rows) - old_value(rows), n, **interval),
        ),
        ece_gap=(
            point_gap,
            *small_sample_interval(
                point_gap, bootstrap_interval(lambda rows: new_ece(rows) - old_ece(rows), n, **interval), size, level
            ),
        ),
        new_value_interval=bootstrap_interval(new_value, n, **interval),
        records=n,
        labelled=int(logged.labelled.sum()),
        effective_size=size,
        support=logged.support,
        explored=logged.explored,
        notes=notes,
    )


def small_sample_interval(
    point: float, interval: tuple[float, float], effective_size: float, level: float
) -> tuple[float, float]:
    """A bootstrap interval of a weighted figure widened around its point for the few effective records behind it:
    each side scaled by t(level, n - 1) / z(level) * sqrt(n / (n - 1)), n the weights' effective size (at least 2).
    The factor is 1.01 at n = 100, 1.12 at 14, 1.45 at 5: only small samples move."""
    n = max(float(effective_size), 2.0)
    tail = 1 - (1 - level) / 2
    factor = stats.t.ppf(tail, n - 1) / stats.norm.ppf(tail) * np.sqrt(n / (n - 1))
    low, high = interval
    return float(point - factor * max(point - low, 0.0)), float(point + factor * max(high - point, 0.0))


def expected_figures(probability: np.ndarray) -> dict[str, float]:
    """What calibrated probabilities expect of themselves on records without outcomes (confidence-based
    performance estimation): the AUC if each outcome were a draw of its probability, and the positive rate."""
    probability = np.asarray(probability, dtype=float)
    if not probability.size:
        return {"expected_roc_auc": float("nan"), "expected_positive_rate": float("nan")}
    return {
        "expected_roc_auc": expected_auc(probability, probability),
        "expected_positive_rate": float(probability.mean()),
    }


def estimate(
    logged: Logged,
    probability: np.ndarray,
    metric: str,
    capacity: float,
    *,
    level: float = 0.90,
    rounds: int = 200,
    seed: int = 0,
    bins: int = BINS,
) -> dict[str, float]:
    """One model's off-policy figures on logged records, with `<figure>_low`/`_high` bootstrap intervals for the
    metric, the self-normalised positive rate and the worklist value, and the records behind them."""
    probability = np.asarray(probability, dtype=float)
    figures = point_figures(logged, probability, metric, capacity, bins)
    lab = logged.labelled

    def rate(rows: np.ndarray) -> float:
        part = logged.take(rows)
        w = part.weights[part.labelled]
        return float(np.sum(w * part.y[part.labelled]) / w.sum()) if w.size else float("nan")

    ranked, value = _resampled_metric(logged, probability, metric), _resampled_value(logged, probability, capacity)
    for name, statistic in ((metric, ranked), ("positive_rate_snipw", rate), ("worklist_value", value)):
        low, high = bootstrap_interval(statistic, len(logged), level, rounds, seed) if lab.any() else (np.nan,) * 2
        if name != "worklist_value":
            low, high = small_sample_interval(figures[name], (low, high), logged.effective_size, level)
        figures |= {f"{name}_low": low, f"{name}_high": high}
    return figures | {
        "records": len(logged),
        "labelled": int(lab.sum()),
        "effective_size": logged.effective_size,
        "support": logged.support,
    }


def _resampled_labelled(
    logged: Logged, probability: np.ndarray, figure: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
) -> Callable[[np.ndarray], float]:
    """`figure(y, probability, weights)` on the labelled records among resampled positions, each weighted by its
    inverse propensity."""
    labelled = logged.labelled

    def statistic(rows: np.ndarray) -> float:
        part, keep = logged.take(rows), labelled[rows]
        return figure(part.y[keep], probability[rows][keep], part.weights[keep])

    return statistic


def _resampled_metric(logged: Logged, probability: np.ndarray, metric: str) -> Callable[[np.ndarray], float]:
    """`metric` weighted by inverse propensity on the labelled records among resampled positions."""
    return _resampled_labelled(logged, probability, lambda y, p, w: binary_metric(metric, y, p, w))


def resampled_gain(logged: Logged, new: np.ndarray, old: np.ndarray, metric: str) -> Callable[[np.ndarray], float]:
    """The new model's gain over the old one on `metric`, both weighted on the same resampled positions (paired):
    what `compare` bootstraps for the gate."""
    new_metric, old_metric = _resampled_metric(logged, new, metric), _resampled_metric(logged, old, metric)
    return lambda rows: improvement(metric, new_metric(rows), old_metric(rows))


def _resampled_ece(logged: Logged, probability: np.ndarray, bins: int) -> Callable[[np.ndarray], float]:
    """The inverse-propensity weighted ECE on the labelled records among resampled positions (NaN on none)."""
    return _resampled_labelled(
        logged, probability, lambda y, p, w: expected_calibration_error(y, p, bins, weights=w) if y.size else np.nan
    )


def _resampled_value(logged: Logged, probability: np.ndarray, capacity: float) -> Callable[[np.ndarray], float]:
    """The doubly robust worklist value on resampled positions."""
    return lambda rows: worklist_value(logged.take(rows), probability[rows], capacity)
