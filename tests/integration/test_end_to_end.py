"""The whole loop through the real CLI: registry state, run structure, drift report (the server: test_serving.py)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from scoreloop.core.pages import fmt
from scoreloop.core.settings import MonitorSettings
from scoreloop.core.spec import DatasetSpec
from tests.support import cli

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
    report, spec = reports[0], DatasetSpec.load(trained_home / "spec.yaml")
    compared = {*spec.numeric, *spec.categorical}
    snapshot = json.loads((report / "drift.json").read_text())
    evidently = {
        m["config"]["column"]: m["value"] for m in snapshot["metrics"] if m["config"]["type"].endswith(":ValueDrift")
    }
    assert set(evidently) == compared  # Evidently tested every feature the model consumes, and nothing else
    summary = json.loads((report / "summary.json").read_text())
    figures = summary["figures"]
    assert "source" in figures["drifted"]  # the generator shifts the lead-source mix most over its months
    assert set(figures["drifted"]) <= compared and figures["drift_score"] == pytest.approx(evidently)
    assert all(column in (report / "drift.html").read_text() for column in compared)  # Evidently's page names them

    tables = read_tables((report / "summary.html").read_text())
    features = {row["feature"]: row for row in tables["Features"]}
    assert set(features) == compared
    assert {column for column, row in features.items() if row["drifted"] == "yes"} == set(figures["drifted"])
    assert all(row["drift score"] == fmt(evidently[column]) for column, row in features.items())
    share = tables["Checks"][0]
    assert share["check"] == "max feature drift share" and share["figure"] == fmt(figures["share_drifted"])
    assert share["status"] == ("fail" if figures["share_drifted"] > MonitorSettings().max_drift_share else "pass")
    assert summary["status"] == ("fail" if any(row["status"] == "fail" for row in tables["Checks"]) else "pass")

    experiment = client.get_experiment_by_name("scoreloop-monitoring")
    run = client.search_runs([experiment.experiment_id])[0]
    assert run.data.tags["scoreloop.model_version"] == "1" and run.data.tags["scoreloop.status"] == summary["status"]
    assert run.data.metrics["drifted_columns"] == figures["drifted_columns"] >= 1
    assert run.data.metrics["drift_score.source"] == pytest.approx(evidently["source"])


class _Tables(HTMLParser):
    """A page's tables as rows of {header: cell text}, each under the text of the heading before it."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.heading, self.text = "", None
        self.header: list[str] = []
        self.row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("h1", "h2", "h3", "th", "td"):
            self.text = ""
        elif tag == "table":
            self.tables[self.heading], self.header = [], []
        elif tag == "tr":
            self.row = []

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self.heading = self.text.strip()
        elif tag == "th":
            self.header.append(self.text)
        elif tag == "td":
            self.row.append(self.text)
        elif tag == "tr" and self.row:
            self.tables[self.heading].append(dict(zip(self.header, self.row, strict=True)))
        if tag in ("h1", "h2", "h3", "th", "td"):
            self.text = None


def read_tables(page: str) -> dict[str, list[dict[str, str]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables
