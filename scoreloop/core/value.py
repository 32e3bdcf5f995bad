"""Value against the simple approach: random vs a few thresholds vs the model, in the units a team works in.

A team that pays for a model compares it with what it could do without one: work records at random, or apply a
few thresholds on the strongest signals. Two questions, both on the holdout: at the capacity the team has
(a share of records worked), how many conversions per 100 records worked; and for a review budget, what share of
the positives is caught, and how many reviews each approach needs to catch as many as the model does.

Ties are shared fairly: a simple approach gives a handful of distinct scores, so "the top 20%" cuts through a group
of equal scores; the group contributes its positives in proportion to the records taken from it (the expectation
over a random order within the group). Random working is the approach where every record ties.
Pure functions: training computes the figures, the CLI and pages present them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import numpy as np
import pandas as pd

from scoreloop.core.pages import badge
from scoreloop.core.pages import table as pages_table
from scoreloop.core.settings import ValueSettings

RANDOM, SIMPLE, MODEL = "random", "simple", "model"
VALUE_PAGE = "evaluation/value.html"  # in a training run's artifacts
VALUE_RULES_TAG = "value.simple_rules"  # the simple approach's thresholds in words, on the training run
COLUMNS = ("per_100_worked", "caught", "reviews_to_match", "reviews_saved_by_model")


def _groups(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sizes and positives of the groups of equal score, highest score first."""
    values, inverse = np.unique(-np.asarray(score, dtype=float), return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(values)).astype(float)
    positives = np.bincount(inverse, weights=np.asarray(y, dtype=float), minlength=len(values))
    return sizes, positives


def expected_hits(y: np.ndarray, score: np.ndarray, worked: float) -> float:
    """Expected positives among the `worked` highest-scored records, ties broken at random."""
    sizes, positives = _groups(y, score)
    before = np.concatenate([[0.0], np.cumsum(sizes)[:-1]])
    taken = np.clip(worked - before, 0, sizes)
    return float(np.sum(positives * taken / sizes))


def reviews_to_reach(y: np.ndarray, score: np.ndarray, hits: float) -> float:
    """Expected reviews, in score order with ties at random, until `hits` positives are caught (inf if never)."""
    sizes, positives = _groups(y, score)
    caught = np.cumsum(positives)
    if hits <= 0:
        return 0.0
    if hits > caught[-1] + 1e-9:
        return float("inf")
    group = int(np.searchsorted(caught, hits - 1e-9))
    before_reviews = float(np.sum(sizes[:group]))
    before_hits = float(caught[group - 1]) if group else 0.0
    return before_reviews + (hits - before_hits) / positives[group] * sizes[group]


def value_table(y: np.ndarray, scores: Mapping[str, np.ndarray], capacity: float, budget: float) -> pd.DataFrame:
    """A row per approach (`random` is added: every record tied): conversions per 100 worked at `capacity` (share
    of records worked), share of positives caught within `budget` (share of records reviewed), the reviews needed
    to catch as many as the model does within the budget, and how many of those the model saves.

    `scores` maps approach names to scores (higher first) and must hold `model`.
    """
    y = np.asarray(y, dtype=float)
    n, positives = len(y), float(y.sum())
    worked, reviewed = capacity * n, budget * n
    approaches = {RANDOM: np.zeros(n), **scores}
    target = expected_hits(y, approaches[MODEL], reviewed)
    rows = []
    for name, score in approaches.items():
        needed = reviews_to_reach(y, score, target)
        rows.append(
            {
                "approach": name,
                "per_100_worked": 100 * expected_hits(y, score, worked) / worked,
                "caught": expected_hits(y, score, reviewed) / positives,
                "reviews_to_match": needed,
                "reviews_saved_by_model": needed - reviews_to_reach(y, approaches[MODEL], target),
            }
        )
    return pd.DataFrame(rows).set_index("approach")


def value_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The table as flat metric names, `value_<approach>_<column>` (what a training run logs)."""
    return {f"value_{name}_{column}": float(row[column]) for name, row in table.iterrows() for column in COLUMNS}


def table_from_metrics(metrics: Mapping[str, float]) -> pd.DataFrame:
    """`value_metrics` in reverse: the table back from a run's metrics (empty when the run has none)."""
    rows = {
        name: {column: metrics[f"value_{name}_{column}"] for column in COLUMNS}
        for name in (RANDOM, SIMPLE, MODEL)
        if f"value_{name}_{COLUMNS[0]}" in metrics
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("approach")


def verdict(table: pd.DataFrame, margin: float) -> tuple[bool, str]:
    """Whether the model beats the simple approach by `margin` conversions per 100 worked, said plainly."""
    model, simple = table.loc[MODEL, "per_100_worked"], table.loc[SIMPLE, "per_100_worked"]
    gain = model - simple
    if gain >= margin:
        return True, (
            f"The model beats the simple approach: {model:.1f} conversions per 100 records worked against "
            f"{simple:.1f} (+{gain:.1f}, margin {margin:g})."
        )
    return False, (
        f"The model does NOT beat the simple approach by the margin: {model:.1f} conversions per 100 records worked "
        f"against {simple:.1f} ({gain:+.1f}, margin {margin:g}). A few thresholds would do about as well."
    )


def value_body(table: pd.DataFrame, capacity: float, config: ValueSettings, rules: str = "") -> str:
    """The value page's HTML body: the verdict first, then the table and how to read it."""
    passed, text = verdict(table, config.margin)
    budget = config.review_budget
    shown = table.reset_index().rename(
        columns={
            "per_100_worked": f"conversions per 100 worked (top {capacity:.0%})",
            "caught": f"share of positives caught (review {budget:.0%})",
            "reviews_to_match": "reviews to catch as many as the model",
            "reviews_saved_by_model": "reviews the model saves",
        }
    )
    body = (
        f"<p>{badge('pass' if passed else 'fail')} {html.escape(text)}</p>"
        + pages_table(shown)
        + "<p class='muted'>On the holdout, never trained on. Random: records worked in any order. Simple: a few "
        "thresholds on the model's strongest features, learned from the training rows (ties in a group are shared "
        "in proportion). Capacity from SCORELOOP_POLICY__CAPACITY, budget from SCORELOOP_VALUE__REVIEW_BUDGET, "
        "margin from SCORELOOP_VALUE__MARGIN.</p>"
    )
    return body + (f"<h2>The simple approach's thresholds</h2><pre>{html.escape(rules)}</pre>" if rules else "")
