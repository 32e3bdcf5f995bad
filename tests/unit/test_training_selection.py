"""Selection, calibration, the data floor and the baseline gate, on small inline data (real CatBoost, no store)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.calibration import MIN_SLOPE, fit_calibration, logit, sigmoid
from scoreloop.core.metrics import binary_metric, expected_calibration_error, roc_auc
from scoreloop.core.model import ModelCard, ScoringModel, fit_card_scale, make_pool
from scoreloop.core.settings import GateSettings, Settings, TrainSettings
from scoreloop.core.spec import DatasetSpec
from scoreloop.loop.retrain import TOO_LITTLE_DATA, retrain_findings, retrain_page
from scoreloop.training.promote import beats_baselines
from scoreloop.training.select import (
    Candidate,
    blend_models,
    candidate_params,
    choose,
    cross_validate,
    refit,
    selection_figures,
    with_blend,
)
from scoreloop.training.split import cv_folds, time_split
from scoreloop.training.train import TooLittleData, check_floor
from scoreloop.training.tune import TuningData, fit_catboost, fit_folds, objective_curve

SPEC = DatasetSpec(target="y", positive_label="1", numeric=["a", "b", "c"], time_column="t")
UNTIMED = SPEC.model_copy(update={"time_column": None})


def world(rows: int, seed: int, base: float = -2.0) -> pd.DataFrame:
    """Three numeric features; about 15% positives through a logistic link on two of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    p = 1 / (1 + np.exp(-(base + 1.2 * x[:, 0] - 0.8 * x[:, 1])))
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=(rng.random(rows) < p).astype(int))
    return frame.assign(t=pd.date_range("2024-01-01", periods=rows, freq="h"))


def candidate(name: str, y: np.ndarray, raw: np.ndarray, folds: int = 5) -> Candidate:
    """A candidate whose out-of-fold rows are `y` and `raw`, dealt round-robin into `folds` folds."""
    fold = np.arange(len(y)) % folds
    scores = tuple(roc_auc(y[fold == k], raw[fold == k]) for k in range(folds))
    return Candidate(name, {}, scores, 10, y, raw, None, fold)


def out_of_fold(rows: int, seed: int, noise: dict[str, float]) -> dict[str, Candidate]:
    """Candidates predicting the same labels from the same true probabilities with their own noise (log-odds sd)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(-1.5, 1.5, rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-truth))).astype(int)
    return {name: candidate(name, y, 1 / (1 + np.exp(-(truth + rng.normal(0, sd, rows))))) for name, sd in
            noise.items()}  # fmt: skip


def test_a_lead_within_the_noise_keeps_the_defaults() -> None:
    """Two models of the same quality: on 1,500 out-of-fold rows one leads the other by luck; the lead's interval
    covers 0, so the one-liner stays, where the best mean (the old rule) takes the tuned one whenever it was luckier."""
    lucky = 0
    for seed in range(6):
        both = out_of_fold(1500, seed, {"tuned": 1.0, "defaults": 1.0})
        winner, leads = choose([both["tuned"], both["defaults"]], TrainSettings())
        assert winner.name == "defaults" and leads["selection_tuned_lead_low"] < 0, (seed, leads)
        lucky += both["tuned"].score > both["defaults"].score
    assert lucky >= 2  # the case the rule exists for did occur


@pytest.mark.parametrize("seed", range(3))
def test_a_clear_lead_wins_and_the_best_clear_one_is_chosen(seed: int) -> None:
    many = out_of_fold(1500, seed, {"tuned": 0.3, "tuned_unweighted": 0.6, "defaults": 1.5})
    winner, leads = choose(list(many.values()), TrainSettings())
    assert winner.name == "tuned" and leads["selection_tuned_unweighted_lead_low"] > 0, leads
    assert leads["selection_tuned_lead_low"] == max(leads.values())  # the surest lead
    figures = selection_figures(list(many.values()), winner)
    assert figures["selection_margin"] == pytest.approx(many["tuned"].score - many["tuned_unweighted"].score)
    assert figures["selection_defaults_fold_4_roc_auc"] == many["defaults"].fold_scores[4]


def test_without_the_defaults_the_best_mean_wins() -> None:
    many = out_of_fold(600, 0, {"tuned": 1.5, "tuned_unweighted": 0.3})
    assert choose(list(many.values()), TrainSettings())[0].name == "tuned_unweighted"


def test_the_blend_scores_as_the_average_of_its_parts_log_odds() -> None:
    many = out_of_fold(1500, 0, {"tuned": 1.0, "tuned_unweighted": 1.2, "defaults": 1.0})
    compared = with_blend(list(many.values()))
    mixed = compared[-1]
    assert mixed.name == "blend" and [p.name for p in mixed.parts] == ["tuned", "defaults"]
    expected = sigmoid((logit(many["tuned"].raw) + logit(many["defaults"].raw)) / 2)
    np.testing.assert_allclose(mixed.raw, expected)
    assert mixed.fold_scores[2] == pytest.approx(roc_auc(mixed.y[mixed.fold == 2], expected[mixed.fold == 2]))
    # averaging two equally good, independently noisy predictions ranks better than either alone
    assert mixed.score > max(many["tuned"].score, many["defaults"].score)


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


def test_a_blend_refit_predicts_the_average_log_odds_and_serves_like_any_model() -> None:
    rows = world(1500, 0)
    config = TrainSettings(max_iterations=120)
    tuned = fit_catboost({"depth": 4, "auto_class_weights": "Balanced"}, make_pool(rows, UNTIMED, rows["y"]), None,
                         config, iterations=120)  # fmt: skip
    defaults = fit_catboost({}, make_pool(rows, UNTIMED, rows["y"]), None, config, iterations=200)
    mixed = blend_models([tuned, defaults])
    fresh = world(500, 1)
    frame = fresh[["a", "b", "c"]]
    expected = sigmoid((logit(tuned.predict_proba(frame)[:, 1]) + logit(defaults.predict_proba(frame)[:, 1])) / 2)
    np.testing.assert_allclose(mixed.predict_proba(frame)[:, 1], expected, rtol=1e-6)
    quantiles, cutoffs = fit_card_scale(expected, TrainSettings().tiers)
    card = ModelCard(spec=UNTIMED, score_quantiles=quantiles, tier_cutoffs=cutoffs, windows={}, metrics={},
                     run_id="r", calibration=fit_calibration(fresh["y"].to_numpy(), expected))  # fmt: skip
    served = ScoringModel(mixed, card, "m", "1")
    np.testing.assert_allclose(served.raw_proba(fresh), expected, rtol=1e-6)
    scored = served.score(fresh)
    assert scored["probability"].between(0, 1).all() and set(scored["tier"]) <= {"A", "B", "C", "D"}
    shap = mixed.get_feature_importance(make_pool(fresh, UNTIMED), type="ShapValues")
    np.testing.assert_allclose(shap.sum(axis=1), logit(expected), atol=1e-4)  # reasons add up to the log-odds


@pytest.mark.parametrize("params", [{}, {"auto_class_weights": "Balanced"}], ids=["unweighted", "class-weighted"])
def test_a_log_loss_objective_scores_a_trial_by_its_real_log_loss(params: dict) -> None:
    """With class weights CatBoost's own Logloss is the weighted one; a trial must be scored on what a user would
    get (before calibration), so that class-weighted and unweighted trials compare."""
    rows = world(1200, 0)
    config = TrainSettings(objective="log_loss", max_iterations=60)
    train, valid = TuningData(UNTIMED, rows.iloc[:900], rows.iloc[900:]).pools()
    model = fit_catboost(params, train, valid, config)
    value = objective_curve(model.get_evals_result()["validation"], "log_loss")[model.get_best_iteration()]
    y, proba = rows["y"].iloc[900:].to_numpy(), model.predict_proba(valid)[:, 1]
    assert value == pytest.approx(binary_metric("log_loss", y, proba), rel=1e-6)
    assert fit_folds(params, [(train, valid)], config, 1, None)[0]["valid_log_loss"] == pytest.approx(value)
