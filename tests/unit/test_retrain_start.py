"""What a retrain starts from beyond its window: older fully labelled rows with a decay (weights, and never in a
validation slice or the holdout the gate judges), read from the champion's lineage; and the warm start from the
champion (a served sum that scores like any model, and a tiny window that refines the champion rather than
replacing it). Real CatBoost and a real MLflow store in a temp dir."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier

from scoreloop.core.calibration import fit_calibration, sigmoid
from scoreloop.core.ingest import write_rows
from scoreloop.core.metrics import roc_auc
from scoreloop.core.model import ModelCard, ScoringModel, fit_card_scale, make_pool, model_frame
from scoreloop.core.settings import RetrainSettings, Settings, TrainSettings
from scoreloop.core.spec import DatasetSpec
from scoreloop.loop.retrain import decayed_weights, older_rows
from scoreloop.training.baselines import hist_gradient_boosting
from scoreloop.training.select import Candidate, refit
from scoreloop.training.split import Older, time_split, tuning_folds, with_older
from scoreloop.training.tune import fit_catboost
from scoreloop.training.warm import start_values

SPEC = DatasetSpec(target="y", positive_label="1", numeric=["a", "b", "c"], time_column="t")
START = datetime(2024, 3, 1)
WINDOW = timedelta(days=28)


def world(rows: int, seed: int, start: str = "2024-03-01", freq: str = "h") -> pd.DataFrame:
    """Three numeric features; about 15% positives through a logistic link on two of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    p = 1 / (1 + np.exp(-(-2.0 + 1.2 * x[:, 0] - 0.8 * x[:, 1])))
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=(rng.random(rows) < p).astype(int))
    return frame.assign(t=pd.date_range(start, periods=rows, freq=freq))


def test_older_rows_weigh_decay_to_the_power_of_their_age_in_windows() -> None:
    times = pd.Series(pd.to_datetime([START, START - WINDOW, START - 2 * WINDOW, START - WINDOW / 2]))
    weights = decayed_weights(times, START, WINDOW, 0.5)
    assert weights.to_numpy() == pytest.approx([1.0, 0.5, 0.25, 0.5**0.5])


def test_older_rows_train_every_fold_but_are_never_validated_or_held_out() -> None:
    window = world(600, 0).set_axis(pd.RangeIndex(600))  # indexes collide with the older rows' on purpose
    old = world(400, 1, start="2024-01-01").set_axis(pd.RangeIndex(400))
    ipw = pd.Series(np.where(np.arange(600) % 10 == 0, 5.0, 0.6), index=window.index)
    decay = decayed_weights(old["t"], START, WINDOW, 0.5)
    rows, weights, older = with_older(window, ipw, Older(old, decay, "pilot.parquet"))
    split = replace(time_split(rows, SPEC, 0.15, 0.15), older=older.rows)
    alone = time_split(window, SPEC, 0.15, 0.15)
    assert split.holdout["t"].tolist() == alone.holdout["t"].tolist()  # the gate's span does not move
    assert split.windows == alone.windows
    assert rows.index.intersection(older.rows.index).empty and len(weights) == 1000
    assert weights.loc[older.rows.index].to_numpy() == pytest.approx(decay.to_numpy())
    assert weights.loc[rows.index].to_numpy() == pytest.approx(ipw.to_numpy())  # the window keeps its IPW weights
    for cv_below in (10_000, 0):  # k folds (small data) and the one validation slice
        folds = tuning_folds(split, SPEC, cv_below, 5, 0)
        for fold in folds:
            assert set(older.rows.index) <= set(fold.train.index)
            assert fold.valid.index.intersection(older.rows.index).empty
            assert fold.valid["t"].min() >= START  # validation (and so calibration) is on the window only
    assert len(split.fitted) == 1000 - len(split.holdout)


def test_unweighted_window_rows_count_once_beside_decayed_older_rows() -> None:
    window, old = world(50, 0), world(20, 1, start="2024-01-01")
    _, weights, older = with_older(window, None, Older(old, pd.Series(0.3, index=old.index), "f"))
    assert weights.drop(older.rows.index).eq(1.0).all() and weights.loc[older.rows.index].eq(0.3).all()


def test_the_hgb_baseline_learns_from_the_older_rows_the_challenger_learns_from() -> None:
    """A window too small and noisy to learn from alone, beside older rows that carry the signal: the gate's HGB
    baseline must see them too, or it is no fair comparison for a challenger that did."""
    window = world(300, 0).assign(y=lambda f: np.random.default_rng(5).permutation(f["y"].to_numpy()))
    old = world(3000, 1, start="2023-09-01")
    rows, weights, older = with_older(window, None, Older(old, pd.Series(0.8, index=old.index), "pilot.parquet"))
    config = TrainSettings(max_iterations=200)
    with_old = hist_gradient_boosting(replace(time_split(rows, SPEC, 0.15, 0.15), older=older.rows), SPEC, config,
                                      weights)  # fmt: skip
    split = time_split(window, SPEC, 0.15, 0.15)
    alone, holdout = hist_gradient_boosting(split, SPEC, config, None), split.holdout
    assert len(with_old.holdout_proba) == len(alone.holdout_proba) == len(holdout)  # the same holdout rows
    signal = 1.2 * holdout["a"] - 0.8 * holdout["b"]  # the world's log-odds, which only the older rows teach
    ranked = {name: signal.corr(pd.Series(b.holdout_proba, index=signal.index), method="spearman")
              for name, b in (("with older rows", with_old), ("alone", alone))}  # fmt: skip
    assert ranked["with older rows"] > 0.7 and ranked["alone"] < 0.4, ranked  # seeds 0-4: >= 0.77 and <= 0.21


def champion_card(run_id: str | None) -> ModelCard:
    return ModelCard(spec=SPEC, score_quantiles=[0.0] * 101, tier_cutoffs={"A": 0.5}, run_id=run_id)


def test_older_rows_come_from_the_file_the_champions_lineage_names(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, retrain=RetrainSettings(older_decay=0.5))
    pilot = world(24 * 60, 2, start="2024-01-01")  # January and February, then the window's first day
    path = tmp_path / "pilot.parquet"
    write_rows(pilot, SPEC, path)
    mlflow.set_tracking_uri(settings.tracking_uri)
    try:
        mlflow.set_experiment("lineage")  # an earlier test may have left another store's experiment active
        with mlflow.start_run() as run:
            mlflow.log_params({"data": str(path)})
        with mlflow.start_run() as retrained:  # a champion from a retrain names the older file it added
            mlflow.log_params({"data": "scoring log 20240101 to 20240301", "older_data": str(path)})
        with mlflow.start_run() as from_log:
            mlflow.log_params({"data": "scoring log 20240101 to 20240301"})
        model = CatBoostClassifier()
        found = older_rows(settings, SPEC, ScoringModel(model, champion_card(run.info.run_id), "m", "1"), START, WINDOW)
        again = older_rows(settings, SPEC, ScoringModel(model, champion_card(retrained.info.run_id), "m", "2"),
                           START, WINDOW)  # fmt: skip
        nothing = older_rows(settings, SPEC, ScoringModel(model, champion_card(from_log.info.run_id), "m", "3"),
                             START, WINDOW)  # fmt: skip
        off = older_rows(settings.model_copy(update={"retrain": RetrainSettings(older_decay=0)}), SPEC,
                         ScoringModel(model, champion_card(run.info.run_id), "m", "1"), START, WINDOW)  # fmt: skip
    finally:
        mlflow.set_tracking_uri(None)
    assert found is not None and again is not None and nothing is None and off is None
    assert found.rows["t"].max() < pd.Timestamp(START) and len(found.rows) == (pilot["t"] < START).sum()
    assert found.source == str(path) and again.rows.equals(found.rows)
    newest, oldest = found.weights.iloc[found.rows["t"].argmax()], found.weights.iloc[found.rows["t"].argmin()]
    assert newest == pytest.approx(1.0, abs=0.01) and oldest == pytest.approx(0.5 ** (60 / 28), rel=0.01)


@pytest.fixture(scope="module")
def champion() -> tuple[CatBoostClassifier, pd.DataFrame]:
    """A champion fitted on 3,000 fully labelled rows, and fresh rows to judge on."""
    rows, judge = world(3000, 3), world(3000, 4)
    model = fit_catboost({"depth": 4}, make_pool(rows, SPEC, rows["y"]), None, TrainSettings(), iterations=200)
    return model, judge


def test_a_warm_started_model_is_one_classifier_that_scores_like_any_other(
    champion: tuple[CatBoostClassifier, pd.DataFrame], tmp_path: Path
) -> None:
    model, judge = champion
    window = world(400, 5)
    tuned = Candidate(
        "tuned", {"depth": 3, "learning_rate": 0.05}, (0.7,), 30, np.zeros(2), np.zeros(2), None, np.zeros(2)
    )
    summed = refit(tuned, window, SPEC, TrainSettings(), None, model)
    correction = fit_catboost(tuned.params, make_pool(window, SPEC, window["y"], None,
                              start_values(model, window, SPEC)), None, TrainSettings(), iterations=30)  # fmt: skip
    expected = sigmoid(start_values(model, judge, SPEC) + correction.predict(model_frame(judge, SPEC), "RawFormulaVal"))
    path = tmp_path / "model.cbm"
    summed.save_model(str(path))  # as training keeps and MLflow logs it
    served = CatBoostClassifier()
    served.load_model(str(path))
    raw = summed.predict_proba(model_frame(judge, SPEC))[:, 1]
    calibration = fit_calibration(judge["y"].to_numpy(), raw)
    card = champion_card(None).model_copy(update={"calibration": calibration})
    card.score_quantiles, card.tier_cutoffs = fit_card_scale(calibration.apply(raw), {"A": 0.1})
    scored = ScoringModel(served, card, "m", "2")
    assert scored.raw_proba(judge) == pytest.approx(expected, abs=1e-9)
    assert scored.predict_proba(judge) == pytest.approx(calibration.apply(expected), abs=1e-9)
    assert scored.score(judge)["probability"].to_numpy() == pytest.approx(scored.predict_proba(judge))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_retrain_on_a_tiny_window_starts_near_the_champion_not_the_base_rate(
    champion: tuple[CatBoostClassifier, pd.DataFrame], seed: int
) -> None:
    model, judge = champion
    tiny = world(80, 10 + seed)
    fast = Candidate("tuned", {"learning_rate": 0.3}, (0.5,), 3, np.zeros(2), np.zeros(2), None, np.zeros(2))
    cold, warm = refit(fast, tiny, SPEC, TrainSettings(), None), refit(fast, tiny, SPEC, TrainSettings(), None, model)
    y, truth = judge["y"].to_numpy(), model.predict_proba(model_frame(judge, SPEC))[:, 1]
    cold_p, warm_p = (m.predict_proba(model_frame(judge, SPEC))[:, 1] for m in (cold, warm))
    assert np.corrcoef(warm_p, truth)[0, 1] > 0.95 and roc_auc(y, warm_p) > roc_auc(y, truth) - 0.01
    assert np.std(cold_p) < np.std(truth) / 2  # three trees on 80 rows: still near the base rate
    assert roc_auc(y, warm_p) > roc_auc(y, cold_p)
