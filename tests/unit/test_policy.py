"""The work policy: who is worked, with which propensity, and the inverse-propensity weights retraining uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.policy import EXPLOIT, EXPLORE, SKIP, ipw_weights, proportional_chances, work_counts, work_plan


def test_work_counts_split_the_capacity() -> None:
    assert work_counts(1000, 0.2, 0.1) == (180, 20)
    assert work_counts(1000, 0.2, 0.0) == (200, 0)
    assert work_counts(10, 1.0, 1.0) == (0, 10)


@pytest.mark.parametrize(("capacity", "epsilon"), [(0, 0.1), (1.5, 0.1), (0.2, -0.1), (0.2, 1.1)])
def test_work_counts_refuse_impossible_shares(capacity: float, epsilon: float) -> None:
    with pytest.raises(ValueError, match="capacity must be in"):
        work_counts(100, capacity, epsilon)


def test_plan_works_the_top_and_a_random_slice_of_the_rest() -> None:
    probability = np.linspace(0, 1, 100)[::-1].copy()  # highest first
    plan = work_plan(probability, 0.2, 0.25, np.random.default_rng(0))
    assert list(plan.columns) == ["propensity", "worked", "policy"]
    assert (plan["policy"].iloc[:15] == EXPLOIT).all() and (plan["propensity"].iloc[:15] == 1).all()
    rest = plan.iloc[15:]
    assert (rest["policy"] == EXPLORE).sum() == 5 and set(rest["policy"]) == {EXPLORE, SKIP}
    assert rest["propensity"].eq(5 / 85).all()  # explored and skipped leads had the same chance
    assert plan["worked"].sum() == 20 == pytest.approx(plan["propensity"].sum())
    assert (plan["worked"] == (plan["policy"] != SKIP)).all()


def test_plan_is_seeded_and_follows_input_order() -> None:
    probability = np.random.default_rng(1).random(500)
    first = work_plan(probability, 0.1, 0.5, np.random.default_rng(7))
    again = work_plan(probability, 0.1, 0.5, np.random.default_rng(7))
    pd.testing.assert_frame_equal(first, again)
    top = np.argsort(-probability)[:25]
    assert set(np.flatnonzero(first["policy"] == EXPLOIT)) == set(top)


def test_exploration_draws_uniformly_from_the_rest() -> None:
    probability = np.arange(100, dtype=float)
    rng = np.random.default_rng(3)
    drawn = sum(work_plan(probability, 0.2, 0.5, rng)["policy"].eq(EXPLORE).to_numpy() for _ in range(2000))
    rest = drawn[:90]  # the top 10 are exploited
    assert drawn[90:].sum() == 0
    assert rest.mean() == pytest.approx(2000 * 10 / 90, rel=0.01)
    assert rest.min() > 0.7 * rest.mean() and rest.max() < 1.3 * rest.mean()  # no part of the rest is favoured


def test_ipw_weights_are_inverse_clipped_and_average_one() -> None:
    weights = ipw_weights(pd.Series([1.0, 0.5, 0.01, np.nan]), clip=20)
    raw = np.array([1.0, 2.0, 20.0, 1.0])  # 1/0.01 = 100 clipped to 20; no propensity counts once
    np.testing.assert_allclose(weights.to_numpy(), raw / raw.mean())
    assert weights.mean() == pytest.approx(1.0)


def test_ipw_weights_refuse_a_clip_below_one() -> None:
    with pytest.raises(ValueError, match="clip must be at least 1"):
        ipw_weights(pd.Series([0.5]), clip=0.5)


def test_proportional_exploration_logs_exact_chances_that_grow_with_the_probability() -> None:
    probability = np.random.default_rng(3).beta(1, 5, 400)
    plan = work_plan(probability, 0.2, 0.5, np.random.default_rng(0), "proportional")
    rest = plan["policy"] != EXPLOIT
    assert plan.loc[rest, "propensity"].sum() == pytest.approx(40)  # the explore budget, in expectation
    assert plan.loc[rest, "propensity"].between(0, 1, inclusive="right").all()
    order = np.argsort(probability[rest.to_numpy()])
    assert np.all(np.diff(plan.loc[rest, "propensity"].to_numpy()[order]) >= 0)  # higher probability, higher chance
    rng = np.random.default_rng(1)
    drawn = sum(work_plan(probability, 0.2, 0.5, rng, "proportional")["worked"].to_numpy() for _ in range(3000))
    assert np.abs(drawn / 3000 - plan["propensity"].to_numpy()).max() < 0.05  # logged chances are the real ones


def test_proportional_chances_cap_at_one_and_keep_the_budget() -> None:
    chances = proportional_chances(np.array([0.9, 0.8, 0.01, 0.01, 0.01]), 2.5)
    assert chances[:2].tolist() == [1.0, 1.0] and chances.sum() == pytest.approx(2.5)
    assert (chances[2:] > 0).all()
