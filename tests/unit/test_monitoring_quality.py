"""Monitoring's figures on frames: quality on late labels (IPW), by tier and score band, and data quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.metrics import roc_auc
from scoreloop.core.offpolicy import ESTIMATOR
from scoreloop.core.policy import work_plan
from scoreloop.monitoring.quality import band_coverage, feature_quality, labelled_quality, tier_quality


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
    quality = labelled_quality(log, 0.2, bins=10)
    assert quality["labelled"] == log["worked"].sum() and quality["label_coverage"] == pytest.approx(0.2)
    assert quality["roc_auc_basis"] == ESTIMATOR
    assert abs(quality["roc_auc"] - population) < 0.02
    assert quality["roc_auc_low"] < population < quality["roc_auc_high"]
    assert quality["positive_rate_snipw_low"] < log["p_true"].mean() < quality["positive_rate_snipw_high"]
    assert abs(quality["roc_auc_unweighted"] - population) > 2 * abs(quality["roc_auc"] - population)
    assert quality["explored_labelled"] == (log["policy"] == "explore").sum()
    assert quality["roc_auc_explored"] == pytest.approx(
        roc_auc(*log.loc[log["policy"] == "explore", ["y", "probability"]].T.to_numpy())
    )


def test_the_probabilities_expectation_is_flagged_when_the_outcomes_say_otherwise() -> None:
    """Calibrated probabilities expect what the off-policy estimates find; probabilities that are too high on the
    unworked records expect a positive rate the outcomes rule out (CBPE against IPW)."""
    calibrated = policy_log().assign(probability=lambda f: f["p_true"])
    quality = labelled_quality(calibrated, 0.2)
    assert quality["estimates_disagree"] == ""
    assert quality["expected_roc_auc"] == pytest.approx(quality["roc_auc"], abs=0.02)
    unworked = calibrated["outcome"].isna()
    inflated = calibrated.assign(probability=np.where(unworked, np.clip(calibrated["p_true"] + 0.15, 0, 1),
                                                      calibrated["p_true"]))  # fmt: skip
    assert "positive rate" in labelled_quality(inflated, 0.2)["estimates_disagree"]


def test_quality_without_labels_is_empty_not_an_error() -> None:
    log = policy_log(1000).assign(outcome=np.nan)
    quality = labelled_quality(log, 0.2)
    assert quality["labelled"] == 0 and np.isnan(quality["roc_auc"]) and np.isnan(quality["calibration_error"])
    assert quality["calibration"] == []


def test_tier_quality_and_band_coverage_follow_the_policy() -> None:
    log = policy_log()
    log["tier"] = np.where(log["probability"] > log["probability"].quantile(0.9), "A", "D")
    log["score"] = (log["probability"].rank(pct=True) * 100).astype(int)
    tiers = tier_quality(log, ["A", "B", "D"]).set_index("tier")
    assert list(tiers.index) == ["A", "B", "D"] and tiers.loc["B", "scored"] == 0
    assert tiers.loc["A", "coverage"] == 1 and tiers.loc["D", "coverage"] < 0.2
    assert tiers["labelled"].sum() == log["outcome"].notna().sum()
    assert np.isnan(tiers.loc["B", "positive_rate"]) and np.isnan(tiers.loc["B", "roc_auc"])
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
