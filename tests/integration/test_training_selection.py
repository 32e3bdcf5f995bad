"""Model selection and calibration through `train_rows` with a real MLflow store in a temp dir, on small data
(cross-validated): a crippled search space makes CatBoost's defaults the winner, every trial logs its folds, the
card carries the calibration, a model trained on a tiny window predicts the base rate, not 0.5, and the CLI
prints the data floor as one error line."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from scoreloop.core.coerce import read_frame
from scoreloop.core.infer import infer_spec
from scoreloop.core.settings import SearchSpace, Settings, TrainSettings
from scoreloop.core.synthetic import WorldConfig, generate_leads
from scoreloop.core.tracking import CHALLENGER, load_registered
from scoreloop.training.train import TrainResult, train_rows
from tests.support import cli

pytestmark = pytest.mark.slow

# Depth-1 stumps on one border per feature at a learning rate of 0.001 for at most 80 trees: a tuned model that
# ranks on a few coarse splits.
CRIPPLED = SearchSpace(
    depth=(1, 1), learning_rate=(0.001, 0.001), border_count=[1], auto_class_weights=["SqrtBalanced"]
)


def leads(rows: int, seed: int):
    frame = generate_leads(WorldConfig(rows=rows, seed=seed)).drop(columns="p_true")
    spec = infer_spec(frame, "converted", id_column="lead_id", time_column="created_at")
    return spec, read_frame(frame, spec, with_target=True).frame().reset_index(drop=True)


def trained(home: Path, rows: int, config: TrainSettings) -> tuple[TrainResult, Settings]:
    spec, frame = leads(rows, seed=4)
    settings = Settings(home=home, train=config)
    try:
        return train_rows(settings, spec, frame, source="generated"), settings
    finally:
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def crippled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    config = TrainSettings(trials=2, max_iterations=80, search=CRIPPLED, min_rows=500, min_positives=50)
    result, settings = trained(tmp_path_factory.mktemp("crippled"), 1500, config)
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(result.run_id)
    query = f"tags.`mlflow.parentRunId` = '{result.run_id}'"
    children = client.search_runs([run.info.experiment_id], query)
    return {"result": result, "run": run, "children": children, "settings": settings}


def test_selection_picks_catboost_defaults_over_a_worse_tuned_model(crippled: dict) -> None:
    run = crippled["run"]
    metrics = run.data.metrics
    assert run.data.tags["selection.winner"] == run.data.params["selection.winner"] == "defaults"
    assert metrics["selection_defaults_roc_auc"] > metrics["selection_tuned_roc_auc"] + 0.01, metrics
    assert metrics["selection_tuned_lead_low"] < 0  # the tuned model is not clearly better than the defaults
    assert "selection_tuned_unweighted_roc_auc" in metrics  # tuning chose class weights: the unweighted candidate
    assert run.data.params["folds"] == "5" and run.data.params["model.calibration"] == "platt"
    # the defaults candidate is also the catboost baseline: same recipe, same holdout figures
    assert metrics["holdout_roc_auc"] == pytest.approx(metrics["baseline_catboost_roc_auc"], abs=1e-9)


def test_every_trial_logs_its_folds(crippled: dict) -> None:
    trials = crippled["children"]
    assert len(trials) == 2
    for trial in trials:
        folds = [trial.data.metrics[f"fold_{k}_valid_roc_auc"] for k in range(5)]
        assert trial.data.metrics["valid_roc_auc"] == pytest.approx(np.mean(folds))


def test_calibration_is_logged_and_travels_with_the_model(crippled: dict) -> None:
    metrics = crippled["run"].data.metrics
    assert {"holdout_ece_raw", "holdout_ece"} <= set(metrics)
    model = load_registered(crippled["settings"], CHALLENGER)
    assert (
        model.card.calibration.method == "platt" and model.card.calibration.rows == 1275 - 212
    )  # OOF: all but the first of 6 time blocks of train+valid
    artifacts = {a.path for a in MlflowClient(crippled["settings"].tracking_uri).list_artifacts(
        crippled["run"].info.run_id, "plots")}  # fmt: skip
    assert "plots/calibration.png" in artifacts


def test_a_model_trained_on_a_tiny_window_predicts_about_the_base_rate(tmp_path: Path) -> None:
    config = TrainSettings(trials=1, max_iterations=100, min_rows=100, min_positives=10)
    _, settings = trained(tmp_path, 300, config)
    spec, fresh = leads(2000, seed=9)
    try:
        proba = load_registered(settings, CHALLENGER).predict_proba(fresh)
    finally:
        mlflow.set_tracking_uri(None)
    base_rate = fresh[spec.target].mean()
    assert abs(proba.mean() - base_rate) < 0.05 and np.median(np.abs(proba - 0.5)) > 0.25, (proba.mean(), base_rate)


def test_the_cli_prints_the_floor_as_one_error_line(tmp_path: Path) -> None:
    data, spec = tmp_path / "leads.parquet", tmp_path / "spec.yaml"
    cli(tmp_path, "data", "generate", "--rows", "300", "--seed", "1", "-o", str(data))
    cli(tmp_path, "spec", "infer", str(data), "--target", "converted", "-o", str(spec))
    refused = cli(tmp_path, "train", "--spec", str(spec), "--data", str(data), "--trials", "1", check=False)
    assert refused.returncode == 2
    assert refused.stdout.strip().startswith("error: too little data to train: 300 labelled rows with ")
    assert len(refused.stdout.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
