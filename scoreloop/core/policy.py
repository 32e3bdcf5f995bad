"""The work policy: which scored leads sales works, with the probability that each one is worked.

Only worked leads get outcomes, so every retrain learns from records the previous model chose. The policy works
the top of the batch by probability and spends an `epsilon` share of its capacity on leads drawn from the rest
(exploration): `uniform` draws that many without replacement, each with the same chance; `proportional` gives each
lead below the top a chance that grows with its probability (independent draws whose chances sum to the same
budget), so exploring costs fewer conversions and looks hardest near the cut-off. Every lead's propensity (its
probability of being worked) is known exactly, so retraining and monitoring can reweight labelled records by
1/propensity and estimate what holds for the whole population rather than only for what the model picked. Pure
functions: serving and simulation share them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

EXPLOIT = "exploit"  # worked because it is in the top of the batch: propensity 1
EXPLORE = "explore"  # drawn at random from the rest and worked: propensity = explored / rest
SKIP = "skip"  # in the rest and not drawn: same propensity as an explored lead, not worked
ARMS = (EXPLOIT, EXPLORE, SKIP)


def work_counts(batch: int, capacity: float, epsilon: float, count: int | None = None) -> tuple[int, int]:
    """(top, explored): how many leads of a batch of `batch` are worked from the top and at random.

    `capacity` is the share of the batch sales can work, or `count` the number of leads (at most the batch);
    `epsilon` the share of that capacity spent exploring.
    """
    if not 0 < capacity <= 1 or not 0 <= epsilon <= 1:
        raise ValueError(f"capacity must be in (0, 1] and epsilon in [0, 1], got {capacity} and {epsilon}")
    worked = round(batch * capacity) if count is None else min(count, batch)
    explored = round(worked * epsilon)
    return worked - explored, explored


Exploration = Literal["uniform", "proportional"]


def work_plan(
    probability: np.ndarray,
    capacity: float,
    epsilon: float,
    rng: np.random.Generator,
    exploration: Exploration = "uniform",
    count: int | None = None,
) -> pd.DataFrame:
    """Decide which leads are worked: `propensity`, `worked` and `policy` (the arm: exploit/explore/skip) per lead;
    `count`, when given, is the number of leads worked instead of the `capacity` share.

    The top leads by probability (ties broken by position) are worked for sure. Below them, `uniform` draws
    `explored` leads without replacement (each has propensity `explored / len(rest)`); `proportional` works each
    lead independently with propensity proportional to its probability (capped at 1), the propensities summing to
    `explored`. Rows follow the input order.
    """
    probability = np.asarray(probability, dtype=float)
    top, explored = work_counts(len(probability), capacity, epsilon, count)
    order = np.argsort(-probability, kind="stable")
    rest = order[top:]
    chance = np.zeros(len(rest))
    if explored and exploration == "uniform":
        chance[:] = explored / len(rest)
        drawn = rng.choice(rest, size=explored, replace=False)
    elif explored and exploration == "proportional":
        chance = proportional_chances(probability[rest], explored)
        drawn = rest[rng.random(len(rest)) < chance]
    elif explored:
        raise ValueError(f"exploration must be 'uniform' or 'proportional', got {exploration!r}")
    else:
        drawn = np.empty(0, dtype=int)
    arm = np.full(len(probability), SKIP, dtype=object)
    arm[order[:top]] = EXPLOIT
    arm[drawn] = EXPLORE
    propensity = np.empty(len(probability))
    propensity[rest] = chance
    propensity[order[:top]] = 1.0
    return pd.DataFrame({"propensity": propensity, "worked": arm != SKIP, "policy": arm})


def proportional_chances(probability: np.ndarray, budget: float) -> np.ndarray:
    """Chances proportional to `probability` (a floor of a tenth of the mean keeps every lead reachable), capped
    at 1, summing to `budget`: the capped leads are taken out and the rest rescaled until nothing exceeds 1."""
    weight = np.asarray(probability, dtype=float)
    weight = weight + 0.1 * weight.mean() + 1e-12
    chance = np.zeros(len(weight))
    free = np.ones(len(weight), dtype=bool)
    while True:
        left = budget - (~free).sum()
        chance[free] = weight[free] * left / weight[free].sum()
        over = free & (chance >= 1)
        if not over.any():
            return chance
        chance[over], free[over] = 1.0, False


def ipw_weights(propensity: pd.Series, clip: float) -> pd.Series:
    """Inverse-propensity weights for labelled records, at most `clip`, rescaled to average 1.

    A record the policy worked with probability p stands for 1/p records like it, so a weighted fit learns about
    the population the policy drew from. Clipping bounds the variance a few rarely-explored records add (at the
    cost of a little bias); a record without a logged propensity (not decided by a policy) counts once. Scaling to
    mean 1 leaves CatBoost's regularisation as strong as in an unweighted fit.
    """
    if clip < 1:
        raise ValueError(f"clip must be at least 1, got {clip}")
    inverse = 1.0 / propensity.astype(float).clip(lower=1.0 / clip)
    weights = inverse.fillna(1.0)
    if weights.empty:
        return weights
    return weights / weights.mean()
