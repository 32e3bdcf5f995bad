"""Selection, calibration, the data floor and the baseline gate, on small inline data (real CatBoost, no store)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.calibration import MIN_SLOPE, fit_calibration
from scoreloop.core.metrics import expected_calibration_error
from scoreloop.core.settings import GateSettings, Settings, TrainSettings
from scoreloop.core.spec import DatasetSpec
from scoreloop.loop.retrain import TOO_LITTLE_DATA, retrain_findings, retrain_page
from scoreloop.training.promote import beats_baselines
from scoreloop.training.select import Candidate, candidate_params, choose, cross_validate, refit, selection_figures
from scoreloop.training.split import cv_folds, time_split
from scoreloop.training.train import TooLittleData, check_floor
from scoreloop.training.tune import TuningData

SPEC = DatasetSpec(target="y", positive_label="1", numeric=["a", "b", "c"], time_column="t")
UNTIMED = SPEC.model_copy(update={"time_column": None})


def world(rows: int, seed: int, base: float = -2.0) -> pd.DataFrame:
    """Three numeric features; about 15% positives through a logistic link on two of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    p = 1 / (1 + np.exp(-(base + 1.2 * x[:, 0] - 0.8 * x[:, 1])))
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=(rng.random(rows) < p).astype(int))
    return frame.assign(t=pd.date_range("2024-01-01", periods=rows, freq="h"))


def candidate(name: str, scores: tuple[float, ...]) -> Candidate:
    return Candidate(name, {}, scores, 10, np.zeros(2), np.zeros(2), None)


def test_the_best_mean_fold_score_wins_and_the_run_records_every_candidate() -> None:
    tuned, defaults = candidate("tuned", (0.70, 0.74)), candidate("defaults", (0.75, 0.77))
    assert choose([tuned, defaults]) is defaults
    figures = selection_figures([tuned, defaults], defaults)
    assert figures["selection_tuned_roc_auc"] == pytest.approx(0.72)
    assert figures["selection_defaults_fold_1_roc_auc"] == 0.77
    assert figures["selection_margin"] == pytest.approx(0.04)


def test_class_weighted_tuning_adds_an_unweighted_candidate() -> None:
    assert set(candidate_params({"depth": 6, "auto_class_weights": "None"})) == {"tuned", "defaults"}
    weighted = candidate_params({"depth": 6, "auto_class_weights": "SqrtBalanced"})
    assert weighted["tuned_unweighted"] == {"depth": 6, "auto_class_weights": "None"} and weighted["defaults"] == {}


@pytest.mark.parametrize("spec", [SPEC, UNTIMED], ids=["time-ordered", "stratified"])
def test_folds_never_validate_on_the_past_and_cover_the_rows_once(spec: DatasetSpec) -> None:
    rows = world(600, 0)
    folds = cv_folds(rows, spec, 5, seed=0)
    assert len(folds) == 5
    for fold in folds:
        assert not set(fold.train.index) & set(fold.valid.index)
        if spec.time_column:
            assert fold.train["t"].max() < fold.valid["t"].min()  # expanding window: train precedes valid
        else:
            assert fold.valid["y"].mean() == pytest.approx(rows["y"].mean(), abs=0.03)  # stratified
    if not spec.time_column:
        assert sorted(i for fold in folds for i in fold.valid.index) == list(rows.index)


def test_without_a_time_column_the_split_is_stratified_and_random() -> None:
    rows = world(2000, 1).sort_values("y")  # a file sorted by its outcome
    split = time_split(rows, UNTIMED, 0.15, 0.15, seed=3)
    for part in (split.train, split.valid, split.holdout):
        assert part["y"].mean() == pytest.approx(rows["y"].mean(), abs=0.01)
    assert split.windows["order"].startswith("stratified random")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_undoes_class_weights_on_unseen_rows(seed: int) -> None:
    """Balanced class weights inflate every probability (a deliberately miscalibrated model); Platt scaling fitted on
    the validation rows brings the holdout ECE down and the mean probability back to the base rate."""
    rows = world(3000, seed)
    split = time_split(rows, SPEC, 0.25, 0.25)
    config = TrainSettings(max_iterations=200)
    fold = TuningData(SPEC, split.train, split.valid)
    weighted = cross_validate("tuned", {"auto_class_weights": "Balanced", "depth": 4}, [fold], config)
    model = refit(weighted, split.train, SPEC, config, None)
    raw = model.predict_proba(split.holdout[["a", "b", "c"]])[:, 1]
    calibrated = fit_calibration(weighted.y, weighted.raw, "platt").apply(raw)
    y = split.holdout["y"].to_numpy()
    before, after = expected_calibration_error(y, raw), expected_calibration_error(y, calibrated)
    assert before > 0.15 and after < 0.05 and after < before / 3, (before, after)
    assert calibrated.mean() == pytest.approx(y.mean(), abs=0.03)  # the weights do not reach the user


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_early_stopped_model_on_a_tiny_window_predicts_the_base_rate_not_one_half(seed: int) -> None:
    rows = world(240, seed, base=-2.5)  # ~10% positives, almost no signal to learn from 120 rows
    config = TrainSettings(max_iterations=300, early_stopping_rounds=5)
    fold = TuningData(SPEC, rows.iloc[:120], rows.iloc[120:])
    tiny = cross_validate("tuned", {"learning_rate": 0.3}, [fold], config)
    assert tiny.raw.mean() == pytest.approx(rows["y"].iloc[:120].mean(), abs=0.05)
    assert np.median(tiny.raw) < 0.25  # not the ~0.5 everywhere CatBoost started from before boost_from_average


def test_the_floor_refuses_in_one_line_with_the_figures() -> None:
    rows = world(400, 0)
    with pytest.raises(TooLittleData, match=r"^too little data to train: 400 labelled rows with \d+ positives, the "
                       r"floor is 1000 rows with 100 positives \(SCORELOOP_TRAIN__MIN_ROWS"):  # fmt: skip
        check_floor(rows, SPEC, TrainSettings())
    check_floor(rows, SPEC, TrainSettings(min_rows=400, min_positives=10))
    with pytest.raises(TooLittleData, match="with 0 positives"):
        check_floor(rows.assign(y=0), SPEC, TrainSettings(min_rows=10))


def test_the_floor_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORELOOP_TRAIN__MIN_ROWS", "50")
    assert Settings().train.min_rows == 50 and Settings().train.min_positives == 100


def test_a_retrain_below_the_floor_records_a_refusal_and_trains_nothing(tmp_path) -> None:
    from scoreloop.loop.retrain import _train_and_gate

    rows = world(300, 0).assign(propensity=1.0, policy="exploit")
    trained, decision, reason, refused = _train_and_gate(
        Settings(home=tmp_path), SPEC, rows, rows, False, "log", None, (None, None)
    )
    assert trained is None and decision is None and refused and reason.startswith("too little data to train: 300")
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was opened
    findings = retrain_findings(rows, rows.iloc[:0], (300, 0), SPEC, None, window={"start": "2024-01-01",
                                "end": "2024-02-01"}, params={}, ipw=False, trained=None, decision=None,
                                failure=reason, too_little_data=True)  # fmt: skip
    assert findings.outcome == TOO_LITTLE_DATA
    summary, body = retrain_page(findings, "run")
    assert summary["status"] == "refused" and "too little data to train" in body


def _holdout_predictions(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a weak challenger's and a strong baseline's probabilities on the same holdout records."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.02, 0.98, rows)
    y = (rng.uniform(size=rows) < truth).astype(int)
    weak = np.clip(truth + rng.normal(0, 0.45, rows), 0.01, 0.99)
    strong = np.clip(truth + rng.normal(0, 0.05, rows), 0.01, 0.99)
    return y, weak, strong


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_gate_refuses_a_challenger_that_clearly_loses_to_a_baseline_on_its_holdout(seed: int) -> None:
    gate = GateSettings(baseline_tolerance=0.002)
    y, weak, strong = _holdout_predictions(3000, seed)
    fair, reason = beats_baselines("roc_auc", y, weak, {"catboost": strong, "hgb": weak}, gate)
    assert not fair
    assert "loses clearly to catboost:" in reason and "baseline hgb" in reason and "(3000 rows)" in reason
    assert beats_baselines("roc_auc", y, strong, {"catboost": weak}, gate)[0]  # it beats the baseline
    assert not beats_baselines("log_loss", y, weak, {"catboost": strong}, gate)[0]  # lower is better, still a loss
    assert beats_baselines("roc_auc", y, weak, {}, gate)[0]  # no baseline predictions: nothing to lose to


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_gap_within_the_holdouts_noise_is_not_a_clear_loss(seed: int) -> None:
    """The same model family scored twice with independent noise: a small gap on 300 rows either way is luck."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.02, 0.98, 300)
    y = (rng.uniform(size=300) < truth).astype(int)
    one, two = (np.clip(truth + rng.normal(0, 0.2, 300), 0.01, 0.99) for _ in range(2))
    assert beats_baselines("roc_auc", y, one, {"catboost": two}, GateSettings())[0]


@pytest.mark.parametrize("seed", range(3))
def test_platt_never_reverses_a_ranking_that_looks_backwards_on_a_small_slice(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.random(60)
    y = (rng.random(60) < 0.8 - 0.6 * raw).astype(float)  # on this slice, the model ranks upside down
    calibration = fit_calibration(y, raw, "platt")
    assert calibration.slope == pytest.approx(MIN_SLOPE)
    calibrated = calibration.apply(raw)
    assert np.all(np.diff(calibrated[np.argsort(raw)]) > 0)  # the ranking is kept
    assert calibrated.mean() == pytest.approx(y.mean(), abs=1e-6)  # at the observed rate, unsure
