"""Value against the simple approach, against figures computed by hand on ten records."""

from __future__ import annotations

import numpy as np
import pytest

from scoreloop.core.value import (
    expected_hits,
    reviews_to_reach,
    table_from_metrics,
    value_metrics,
    value_table,
    verdict,
)

Y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])  # 3 positives in 10
MODEL = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
SIMPLE = np.array([2, 2, 1, 1, 1, 1, 0, 0, 0, 0])  # groups: {0,1} 1 positive, {2..5} 2 positives, {6..9} none


def test_ties_share_their_positives_in_proportion() -> None:
    assert expected_hits(Y, SIMPLE, 2) == 1.0  # the first group whole
    assert expected_hits(Y, SIMPLE, 4) == 2.0  # + 2 of the 4 tied records holding 2 positives
    assert expected_hits(Y, np.zeros(10), 4) == pytest.approx(1.2)  # random: 4 x 0.3
    assert reviews_to_reach(Y, SIMPLE, 2) == 4.0
    assert reviews_to_reach(Y, MODEL, 2) == 3.0
    assert reviews_to_reach(Y, np.zeros(10), 2) == pytest.approx(20 / 3)
    assert reviews_to_reach(Y, MODEL, 4) == float("inf")


def test_value_table_matches_hand_computation() -> None:
    table = value_table(Y, {"simple": SIMPLE, "model": MODEL}, capacity=0.3, budget=0.4)
    # 3 worked: random 0.9 hits, simple 1 + 1 x 2/4 = 1.5, model 2 (records 0 and 2)
    assert table["per_100_worked"].to_dict() == pytest.approx({"random": 30.0, "simple": 50.0, "model": 200 / 3})
    # 4 reviewed: random 1.2 of 3 positives, simple 2, model 2
    assert table["caught"].to_dict() == pytest.approx({"random": 0.4, "simple": 2 / 3, "model": 2 / 3})
    # reviews to catch the model's 2 positives: the model needs 3, the simple approach 4, random 6.67
    assert table["reviews_to_match"].to_dict() == pytest.approx({"random": 20 / 3, "simple": 4.0, "model": 3.0})
    assert table["reviews_saved_by_model"].to_dict() == pytest.approx({"random": 11 / 3, "simple": 1.0, "model": 0.0})
    assert table_from_metrics(value_metrics(table)).equals(table)


def test_verdict_says_plainly_when_the_model_does_not_beat_the_simple_approach() -> None:
    better = value_table(Y, {"simple": SIMPLE, "model": MODEL}, capacity=0.3, budget=0.4)
    passed, text = verdict(better, margin=10)
    assert passed and "+16.7" in text
    assert not verdict(better, margin=20)[0]
    tie = value_table(Y, {"simple": SIMPLE, "model": MODEL}, capacity=0.2, budget=0.4)  # both 50 per 100
    passed, text = verdict(tie, margin=1)
    assert not passed and "does NOT beat the simple approach" in text and "50.0" in text
