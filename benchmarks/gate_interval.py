"""How often the gate's interval covers the true AUC gain, on worlds whose true probabilities are known.

    .venv/bin/python -m benchmarks.gate_interval [--rows 1000] [--epsilon 0.05 0.2] [--draws 150] [--better 0.5]

Each draw: `--rows` records with true probabilities, a champion and a challenger that see the same signal through
log-odds noise (the champion's sd 1.2, the challenger's `--better`: below 1.2 it is truly better, above worse), the
champion's policy works its top 20% and explores `epsilon` of that capacity uniformly below it, and only worked
records reveal an outcome. The truth is each model's expected AUC against the true probabilities. Printed per
epsilon and per number of positives explored below the top: how often the gain's 90% interval covered the truth,
as the plain percentile bootstrap and as the gate reports it (widened to Student's t on the effective size), on
which side the misses fell, and how often the gate's lower end cleared 0 (a promotion at the default margin).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from scoreloop.core.metrics import bootstrap_interval, expected_auc
from scoreloop.core.offpolicy import Logged, resampled_gain, small_sample_interval
from scoreloop.core.policy import work_plan

CAPACITY, LEVEL, ROUNDS = 0.2, 0.90, 100


def draw(rows: int, epsilon: float, better: float, seed: int) -> dict[str, float]:
    """One world, one logging of it, and both intervals of the challenger's gain against the truth."""
    rng = np.random.default_rng(seed)
    signal = 1.5 * rng.normal(size=rows) - 2
    truth = 1 / (1 + np.exp(-signal))
    champion = 1 / (1 + np.exp(-(signal + rng.normal(scale=1.2, size=rows))))
    challenger = 1 / (1 + np.exp(-(signal + rng.normal(scale=better, size=rows))))
    outcome = (rng.random(rows) < truth).astype(float)
    plan = work_plan(champion, CAPACITY, epsilon, rng)
    logged = Logged.of(np.where(plan["worked"], outcome, np.nan), plan["propensity"])
    gain = resampled_gain(logged, challenger, champion, "roc_auc")
    point = gain(np.arange(rows))
    plain = bootstrap_interval(gain, rows, LEVEL, ROUNDS, seed)
    reported = small_sample_interval(point, plain, logged.effective_size, LEVEL)
    true_gain = expected_auc(challenger, truth) - expected_auc(champion, truth)
    figures = {"explored_positives": logged.explored[0], "true_gain": true_gain}
    for name, (low, high) in (("percentile", plain), ("reported", reported)):
        figures |= {
            f"{name}_covers": low <= true_gain <= high,
            f"{name}_truth_below": true_gain < low,
            f"{name}_promotes": low > 0,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--epsilon", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--draws", type=int, default=150)
    parser.add_argument("--better", type=float, default=0.5, help="challenger's log-odds noise sd (champion: 1.2)")
    args = parser.parse_args()
    print(f"# {args.rows} records, {args.draws} draws per epsilon, challenger noise {args.better:g} (champion 1.2)\n")
    print(
        "| epsilon | explored positives | draws | true gain | percentile covers | reported covers | truth below low "
        "(percentile / reported) | promotes (percentile / reported) |\n|---|---|---|---|---|---|---|---|"
    )
    for epsilon in args.epsilon:
        frame = pd.DataFrame([draw(args.rows, epsilon, args.better, seed) for seed in range(args.draws)])
        frame["cell"] = frame["explored_positives"].clip(upper=3).map(lambda k: "3+" if k == 3 else str(k))
        for cell, part in [*frame.groupby("cell"), ("all", frame)]:
            print(
                f"| {epsilon:g} | {cell} | {len(part)} | {part['true_gain'].mean():+.4f} | "
                f"{part['percentile_covers'].mean():.0%} | {part['reported_covers'].mean():.0%} | "
                f"{part['percentile_truth_below'].mean():.0%} / {part['reported_truth_below'].mean():.0%} | "
                f"{part['percentile_promotes'].mean():.0%} / {part['reported_promotes'].mean():.0%} |"
            )


if __name__ == "__main__":
    main()
