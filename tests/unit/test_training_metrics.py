"""The pure metric functions on tiny arrays, against figures computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from scoreloop.training.metrics import (
    calibration_table,
    decile_table,
    evaluate,
    expected_calibration_error,
    improvement,
    k_label,
    lift_at_k,
    precision_at_k,
    top_k_rows,
)

# ten records already in descending score order: positives at ranks 1, 3 and 10 (base rate 0.3)
Y10 = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
P10 = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_ece_is_the_row_weighted_gap_between_predicted_and_observed() -> None:
    # two bins of two rows: predicted 0.15 vs observed 0.5, predicted 0.85 vs observed 0.5 -> 0.35 each
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.8, 0.9])
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.35)
    # uneven bins are weighted by their rows: (3 * |0.2 - 1/3| + 1 * |0.9 - 1|) / 4
    y, p = np.array([0, 0, 1, 1]), np.array([0.2, 0.2, 0.2, 0.9])
    assert expected_calibration_error(y, p, bins=10) == pytest.approx((3 * (1 / 3 - 0.2) + 0.1) / 4)


def test_ece_is_zero_when_calibrated_and_probability_one_lands_in_the_top_bin() -> None:
    assert expected_calibration_error(np.array([0, 0, 0, 1]), np.full(4, 0.25)) == pytest.approx(0)
    table = calibration_table(np.array([1, 0]), np.array([1.0, 0.0]), bins=10)
    assert list(table["lower"]) == [0.0, 0.9] and list(table["rows"]) == [1, 1]


def test_precision_and_lift_in_the_top_k() -> None:
    assert precision_at_k(Y10, P10, 0.2) == pytest.approx(0.5)  # ranks 1-2: one positive
    assert lift_at_k(Y10, P10, 0.2) == pytest.approx(0.5 / 0.3)
    assert precision_at_k(Y10, P10, 0.3) == pytest.approx(2 / 3)
    assert lift_at_k(Y10, P10, 0.3) == pytest.approx((2 / 3) / 0.3)
    shuffled = np.random.default_rng(0).permutation(10)  # input order does not matter, only the scores
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
    assert figures["roc_auc"] == pytest.approx(13 / 21)  # 7 + 6 + 0 of the 3 x 7 positive-negative pairs
    assert k_label(0.025) == "2.5pct"


def test_improvement_points_the_right_way_for_each_metric() -> None:
    assert improvement("roc_auc", 0.8, 0.75) == pytest.approx(0.05)
    assert improvement("log_loss", 0.30, 0.35) == pytest.approx(0.05)
    assert improvement("ece", 0.05, 0.02) == pytest.approx(-0.03)
