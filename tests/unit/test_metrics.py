"""The one set of metric definitions on tiny arrays, against figures computed by hand; and the proof that
training, the gate and monitoring now report the same ECE for the same predictions."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.metrics import (
    calibration_table,
    decile_table,
    evaluate,
    expected_auc,
    expected_calibration_error,
    improvement,
    k_label,
    lift_at_k,
    positive_rate,
    precision_at_k,
    psi,
    roc_auc,
    top_k_rows,
)
from scoreloop.core.settings import MonitorSettings, TrainSettings
from scoreloop.monitoring.quality import labelled_quality
from scoreloop.training.train import holdout_figures

RNG = np.random.default_rng(0)

# ten records already in descending score order: positives at ranks 1, 3 and 10 (base rate 0.3)
Y10 = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
P10 = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


@pytest.mark.parametrize("strategy", ["equal-width", "equal-count"])
def test_ece_is_the_row_weighted_gap_between_predicted_and_observed(strategy: str) -> None:
    # two bins of two rows either way: predicted 0.15 vs observed 0.5, predicted 0.85 vs observed 0.5 -> 0.35 each
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.8, 0.9])
    assert expected_calibration_error(y, p, bins=2, strategy=strategy) == pytest.approx(0.35)


def test_the_two_binnings_cut_differently_and_bins_are_weighted_by_their_rows() -> None:
    y, p = np.array([0, 0, 1, 1]), np.array([0.2, 0.2, 0.2, 0.9])
    # equal-width: bins [0.2, 0.3) with 3 rows and [0.9, 1] with 1 row: (3 * |0.2 - 1/3| + 1 * |0.9 - 1|) / 4
    width = expected_calibration_error(y, p, bins=10, strategy="equal-width")
    assert width == pytest.approx((3 * (1 / 3 - 0.2) + 0.1) / 4)
    # equal-count, 2 bins: the median 0.2 is the edge (right-closed), so the same two groups here
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(width)
    skewed = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.5])
    assert calibration_table(np.zeros(10), skewed, bins=5, strategy="equal-width")["rows"].tolist() == [9, 1]
    assert calibration_table(np.zeros(10), skewed, bins=5)["rows"].tolist() == [2, 2, 2, 2, 2]


def test_ece_is_zero_when_calibrated_and_probability_one_lands_in_the_top_bin() -> None:
    assert expected_calibration_error(np.array([0, 0, 0, 1]), np.full(4, 0.25)) == pytest.approx(0)
    table = calibration_table(np.array([1, 0]), np.array([1.0, 0.0]), bins=10, strategy="equal-width")
    assert list(table["bin"]) == [0, 9] and list(table["rows"]) == [1, 1]


def test_sample_weights_weight_the_observed_rate_and_the_bins() -> None:
    y, p = np.array([0, 1, 1]), np.full(3, 0.5)
    assert expected_calibration_error(y, p) == pytest.approx(1 / 6)  # observed 2/3
    assert expected_calibration_error(y, p, weights=np.array([2.0, 1.0, 1.0])) == pytest.approx(0)  # observed 1/2
    table = calibration_table(y, p, weights=np.array([2.0, 1.0, 1.0]))
    assert table[["rows", "weight", "mean_predicted", "observed_rate"]].iloc[0].tolist() == [3, 4.0, 0.5, 0.5]


def test_ece_is_small_when_calibrated_shows_a_bias_and_is_nan_without_records() -> None:
    p = RNG.random(50_000)
    y = RNG.random(50_000) < p
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p + 0.1, 0, 1)) == pytest.approx(0.1, abs=0.02)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_an_unknown_binning_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="'equal-count' or 'equal-width', got 'quantile'"):
        calibration_table(Y10, P10, strategy="quantile")  # type: ignore[arg-type]


def test_training_and_monitoring_report_the_same_ece_for_the_same_predictions() -> None:
    """The holdout ECE training logs (and the gate compares) and the ECE monitoring judges on labelled records,
    each computed through its own stage's path with its own settings' defaults, are one number."""
    p = RNG.beta(1, 6, 3000)  # skewed like lead scores
    y = (RNG.random(3000) < np.clip(p * 1.3, 0, 1)).astype(int)  # under-predicted: a visible calibration error
    training = holdout_figures(y, p, y, {}, TrainSettings()).metrics["ece"]
    log = pd.DataFrame({"probability": p, "outcome": y.astype(float), "propensity": np.nan})
    monitoring = labelled_quality(log, 0.2, MonitorSettings().bins)["calibration_error"]
    assert training == monitoring == expected_calibration_error(y, p)
    assert training > 0.01


def test_positive_rate_and_roc_auc_are_nan_when_undefined() -> None:
    assert positive_rate(np.array([1, 0, 0, 1])) == 0.5 and np.isnan(positive_rate(np.array([])))
    assert np.isnan(roc_auc(np.ones(5), RNG.random(5)))
    assert roc_auc(Y10, P10) == pytest.approx(13 / 21)  # 7 + 6 + 0 of the 3 x 7 positive-negative pairs
    # weights count a record as that many copies
    assert roc_auc(Y10, P10, np.r_[1.0, np.ones(8), 2.0]) == roc_auc(np.r_[Y10, 1], np.r_[P10, 0.05])


def test_precision_and_lift_in_the_top_k() -> None:
    assert precision_at_k(Y10, P10, 0.2) == pytest.approx(0.5)  # ranks 1-2: one positive
    assert lift_at_k(Y10, P10, 0.2) == pytest.approx(0.5 / 0.3)
    assert precision_at_k(Y10, P10, 0.3) == pytest.approx(2 / 3)
    assert lift_at_k(Y10, P10, 0.3) == pytest.approx((2 / 3) / 0.3)
    shuffled = RNG.permutation(10)  # input order does not matter, only the scores
    assert precision_at_k(Y10[shuffled], P10[shuffled], 0.3) == pytest.approx(2 / 3)


def test_top_k_rows_rounds_up_and_survives_float_error() -> None:
    assert top_k_rows(10, 0.3) == 3  # 10 * 0.3 is 3.0000000000000004 in floating point
    assert top_k_rows(10, 0.05) == 1 and top_k_rows(10, 0.21) == 3 and top_k_rows(3, 0.01) == 1


def test_ties_keep_input_order() -> None:
    y, p = np.array([0, 1, 1, 0]), np.full(4, 0.5)
    assert precision_at_k(y, p, 0.25) == 0.0  # the first record by input order is taken


def test_decile_table_conversion_lift_and_gain() -> None:
    ranked_labels = np.array([1, 1, 1, 0, 0, 0, 1, 0] + [0] * 12)  # 20 records, 4 positives, base rate 0.2
    scores = np.linspace(0.99, 0.01, 20)
    order = np.random.default_rng(1).permutation(20)
    table = decile_table(ranked_labels[order], scores[order])
    assert list(table["rows"]) == [2] * 10
    assert list(table["positives"]) == [2, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    assert list(table["conversion"]) == pytest.approx([1, 0.5, 0, 0.5, 0, 0, 0, 0, 0, 0])
    assert list(table["lift"]) == pytest.approx([5, 2.5, 0, 2.5, 0, 0, 0, 0, 0, 0])
    assert list(table["cumulative_gain"]) == pytest.approx([0.5, 0.75, 0.75, 1, 1, 1, 1, 1, 1, 1])
    assert table["mean_probability"].iloc[0] == pytest.approx((0.99 + scores[1]) / 2)


def test_decile_table_splits_uneven_counts_nearly_equally() -> None:
    table = decile_table(np.array([1, 0] * 11 + [1]), np.linspace(1, 0, 23))
    assert list(table["rows"]) == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2] and table["rows"].sum() == 23


def test_evaluate_names_top_k_metrics_by_share() -> None:
    figures = evaluate(Y10, P10, top_k=0.2, bins=2)
    assert figures["precision_at_20pct"] == pytest.approx(0.5)
    assert figures["roc_auc"] == pytest.approx(13 / 21)
    assert figures["ece"] == expected_calibration_error(Y10, P10, bins=2)
    assert k_label(0.025) == "2.5pct"


def test_improvement_points_the_right_way_for_each_metric() -> None:
    assert improvement("roc_auc", 0.8, 0.75) == pytest.approx(0.05)
    assert improvement("log_loss", 0.30, 0.35) == pytest.approx(0.05)
    assert improvement("ece", 0.05, 0.02) == pytest.approx(-0.03)


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
