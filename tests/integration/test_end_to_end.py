"""The whole loop through the real CLI: registry state, run structure, drift report (the server: test_serving.py)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.integration.conftest import cli

pytestmark = pytest.mark.slow

MODEL = "scoreloop-model"


@pytest.fixture(scope="module")
def client(trained_home: Path) -> MlflowClient:
    mlflow.set_tracking_uri(f"sqlite:///{trained_home / 'mlflow.db'}")
    return MlflowClient()


def test_ingest_accounts_for_every_row(trained_home: Path) -> None:
    rows_out = len(pd.read_parquet(trained_home / "leads.parquet"))
    quarantined = pd.read_csv(trained_home / "leads.quarantine.csv")
    assert rows_out + len(quarantined) == 4000
    assert quarantined["_reason"].str.len().gt(0).all()


def test_champion_is_the_trained_challenger(client: MlflowClient) -> None:
    champion = client.get_model_version_by_alias(MODEL, "champion")
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert str(champion.version) == str(challenger.version) == "1"
    assert champion.tags["gate.promoted"] == "True"
    assert champion.tags["gate.reason"] == "no champion yet"
    assert 0.6 < float(champion.tags["holdout_roc_auc"]) <= 1.0


def test_trials_are_nested_children_of_the_study_run(client: MlflowClient) -> None:
    experiment = client.get_experiment_by_name("scoreloop")
    parents = client.search_runs([experiment.experiment_id], "tags.`scoreloop.role` = 'study'")
    assert len(parents) == 1
    parent = parents[0]
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(run.data.tags["scoreloop.trial"] for run in children) == ["0", "1", "2"]
    assert all("valid_roc_auc" in run.data.metrics and "depth" in run.data.params for run in children)
    assert {"holdout_roc_auc", "holdout_pr_auc", "holdout_log_loss", "holdout_brier"} <= set(parent.data.metrics)
    contexts = {i.tags[0].value for i in parent.inputs.dataset_inputs}
    assert contexts == {"training", "validation", "holdout"}


def test_registered_model_has_signature_and_card(client: MlflowClient) -> None:
    info = mlflow.models.get_model_info(f"models:/{MODEL}@champion")
    assert info.signature is not None and "employees" in info.signature.inputs.input_names()
    card = info.metadata["scoreloop_card"]
    assert card["spec"]["target"] == "converted"
    assert list(card["tier_cutoffs"]) == ["A", "B", "C"]


def test_gate_refuses_nothing_when_challenger_already_champion(trained_home: Path) -> None:
    result = cli(trained_home, "promote")
    assert "already champion" in result.stdout


def test_monitor_writes_a_drift_report(trained_home: Path, client: MlflowClient) -> None:
    rows = pd.read_parquet(trained_home / "leads.parquet").sort_values("created_at")
    old, new = trained_home / "old.parquet", trained_home / "new.parquet"
    rows.head(1000).to_parquet(old)
    rows.tail(1000).to_parquet(new)
    cli(
        trained_home,
        "monitor",
        "--reference",
        str(old),
        "--current",
        str(new),
        "--spec",
        str(trained_home / "spec.yaml"),
    )
    reports = list((trained_home / "reports").glob("*-drift"))
    assert len(reports) == 1
    assert (reports[0] / "drift.html").stat().st_size > 10_000
    summary = json.loads((reports[0] / "drift.json").read_text())
    assert summary["metrics"]
    experiment = client.get_experiment_by_name("scoreloop-monitoring")
    runs = client.search_runs([experiment.experiment_id])
    assert runs[0].data.tags["scoreloop.model_version"] == "1"
    assert runs[0].data.metrics["drifted_columns"] >= 1  # the export was generated with covariate drift
