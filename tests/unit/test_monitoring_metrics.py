"""Pure monitoring figures: PSI, expected AUC against true probabilities, calibration, quality on late labels."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.policy import ipw_weights, work_plan
from scoreloop.monitoring.metrics import (
    band_coverage,
    calibration_error,
    calibration_table,
    expected_auc,
    feature_quality,
    labelled_quality,
    psi,
    roc_auc,
    tier_quality,
)

RNG = np.random.default_rng(0)


def test_psi_is_near_zero_for_the_same_distribution_and_grows_with_a_shift() -> None:
    reference = RNG.normal(0, 1, 20_000)
    assert psi(reference, RNG.normal(0, 1, 20_000)) < 0.01
    moderate, major = psi(reference, RNG.normal(0.3, 1, 20_000)), psi(reference, RNG.normal(1.0, 1, 20_000))
    assert 0.05 < moderate < 0.25 < major


def test_psi_survives_empty_bins_and_ties() -> None:
    assert np.isfinite(psi(np.r_[np.zeros(500), np.ones(500)], np.full(100, 5.0)))


def brute_expected_auc(score: np.ndarray, p: np.ndarray) -> float:
    wins = pairs = 0.0
    for i, j in itertools.permutations(range(len(score)), 2):
        weight = p[i] * (1 - p[j])
        pairs += weight
        wins += weight * (1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0)
    return wins / pairs


def test_expected_auc_matches_the_pairwise_definition() -> None:
    p = RNG.random(40)
    score = np.round(p + RNG.normal(0, 0.3, 40), 1)  # noisy, with ties
    assert expected_auc(score, p) == pytest.approx(brute_expected_auc(score, p))


def test_expected_auc_is_best_for_the_true_probability_and_half_for_noise() -> None:
    p = RNG.beta(1, 5, 5000)
    best = expected_auc(p, p)
    assert expected_auc(p + RNG.normal(0, 0.05, 5000), p) < best
    assert expected_auc(RNG.random(5000), p) == pytest.approx(0.5, abs=0.03)
    assert expected_auc(np.ones(5000), p) == pytest.approx(0.5)


def test_calibration_error_is_small_when_calibrated_and_shows_a_bias() -> None:
    p = RNG.random(50_000)
    y = RNG.random(50_000) < p
    assert calibration_error(calibration_table(y, p)) < 0.01
    assert calibration_error(calibration_table(y, np.clip(p + 0.1, 0, 1))) == pytest.approx(0.1, abs=0.02)
    assert np.isnan(calibration_error(calibration_table(np.array([]), np.array([]))))


def policy_log(n: int = 20_000, seed: int = 1) -> pd.DataFrame:
    """Scored leads worked by the policy, outcomes known for the worked ones only (NaN elsewhere)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 8, n)
    score = np.clip(p + rng.normal(0, 0.08, n), 0, 1)
    plan = work_plan(score, 0.2, 0.3, rng)
    y = (rng.random(n) < p).astype(float)
    return pd.DataFrame(
        {"probability": score, "p_true": p, "y": y, "outcome": np.where(plan["worked"], y, np.nan), **plan}
    )


def test_ipw_auc_on_late_labels_estimates_the_population_auc() -> None:
    """Labels exist for the top and a random slice only: plain AUC on them is biased, IPW AUC is not."""
    log = policy_log()
    population = roc_auc(log["y"], log["probability"])
    quality = labelled_quality(log, ipw_weights(log["propensity"], clip=50), bins=10)
    assert quality["labelled"] == log["worked"].sum() and quality["label_coverage"] == pytest.approx(0.2)
    assert quality["roc_auc_basis"] == "inverse-propensity weighted"
    assert abs(quality["roc_auc"] - population) < 0.02
    assert abs(quality["roc_auc_unweighted"] - population) > 2 * abs(quality["roc_auc"] - population)
    assert quality["explored_labelled"] == (log["policy"] == "explore").sum()
    assert quality["roc_auc_explored"] == pytest.approx(
        roc_auc(*log.loc[log["policy"] == "explore", ["y", "probability"]].T.to_numpy())
    )


def test_quality_without_labels_is_empty_not_an_error() -> None:
    log = policy_log(1000).assign(outcome=np.nan)
    quality = labelled_quality(log, None)
    assert quality["labelled"] == 0 and np.isnan(quality["roc_auc"]) and np.isnan(quality["calibration_error"])


def test_tier_quality_and_band_coverage_follow_the_policy() -> None:
    log = policy_log()
    log["tier"] = np.where(log["probability"] > log["probability"].quantile(0.9), "A", "D")
    log["score"] = (log["probability"].rank(pct=True) * 100).astype(int)
    tiers = tier_quality(log, ["A", "B", "D"]).set_index("tier")
    assert list(tiers.index) == ["A", "B", "D"] and tiers.loc["B", "scored"] == 0
    assert tiers.loc["A", "coverage"] == 1 and tiers.loc["D", "coverage"] < 0.2
    assert tiers["labelled"].sum() == log["outcome"].notna().sum()
    bands = band_coverage(log, 10)
    assert len(bands) == 10 and bands["coverage"].iloc[-1] == 1
    assert bands["coverage"].iloc[0] == pytest.approx(0.3 * 0.2 / 0.86, abs=0.02)  # explored share of the rest


def test_feature_quality_reports_missing_rise_and_unseen_categories() -> None:
    reference = pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None]})
    current = pd.DataFrame({"x": [None, None, 3.0, 4.0], "c": ["a", "zz", "zz", "b"]})
    figures = feature_quality(reference, current, ["x", "c"], {"c": ["a", "b"]})
    assert figures["missing_share"] == {"x": 0.5, "c": 0.0}
    assert figures["missing_increase"] == {"x": 0.25, "c": -0.25}
    assert figures["new_category_share"] == {"c": 0.5}
