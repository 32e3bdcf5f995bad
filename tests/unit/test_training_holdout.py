"""Training's holdout figures from probabilities alone (no model, no store), and the names MLflow logs them under."""

from __future__ import annotations

import numpy as np
import pytest

from scoreloop.core.metrics import evaluate, roc_auc
from scoreloop.core.settings import TrainSettings
from scoreloop.training import plots
from scoreloop.training.baselines import Baseline
from scoreloop.training.train import holdout_figures

RNG = np.random.default_rng(0)
Y_HOLDOUT, P_HOLDOUT = (RNG.random(200) < 0.3).astype(int), RNG.random(200)
Y_VALID = (RNG.random(100) < 0.3).astype(int)


def test_the_model_and_each_baseline_are_scored_with_the_gates_definitions() -> None:
    config = TrainSettings(top_k=0.2)
    hgb = Baseline(valid_proba=RNG.random(100), holdout_proba=RNG.random(200))
    figures = holdout_figures(Y_HOLDOUT, P_HOLDOUT, Y_VALID, {"hgb": hgb}, config)
    assert figures.metrics == evaluate(Y_HOLDOUT, P_HOLDOUT, 0.2, config.calibration_bins)
    assert figures.deciles["rows"].sum() == 200 and len(figures.deciles) == 10
    assert figures.baselines["baseline_hgb_ece"] == evaluate(Y_HOLDOUT, hgb.holdout_proba, 0.2)["ece"]
    assert figures.baselines["baseline_hgb_valid_roc_auc"] == roc_auc(Y_VALID, hgb.valid_proba)


def test_the_logged_metric_names_stay_stable() -> None:
    hgb = Baseline(valid_proba=RNG.random(100), holdout_proba=RNG.random(200))
    logged = holdout_figures(Y_HOLDOUT, P_HOLDOUT, Y_VALID, {"hgb": hgb}, TrainSettings()).logged()
    holdout = {"roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision_at_10pct", "lift_at_10pct"}
    assert {f"holdout_{m}" for m in holdout} | {f"baseline_hgb_{m}" for m in holdout} <= set(logged)
    assert {"holdout_decile_01_conversion", "holdout_decile_10_lift", "baseline_hgb_valid_roc_auc"} <= set(logged)
    assert len(logged) == 2 * len(holdout) + 20 + 1
    without = holdout_figures(Y_HOLDOUT, P_HOLDOUT, Y_VALID, {}, TrainSettings())
    assert not any(name.startswith("baseline_") for name in without.logged())


def test_the_reliability_diagram_plots_the_shared_calibration_table() -> None:
    figure = plots.calibration_figure(Y_HOLDOUT, P_HOLDOUT, bins=10)
    line = figure.axes[0].get_lines()[1]
    assert len(line.get_xdata()) == 10  # equal-count bins: all ten hold records
    assert np.mean(line.get_xdata()) == pytest.approx(np.mean(P_HOLDOUT), abs=0.01)
