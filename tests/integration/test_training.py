"""Training through the real CLI on small generated data: parallel nested trials, resume, pruning, reproducibility,
what a run records, `runs`, the promotion gate, history, rollback and the registry's consistency.

One module-scoped story in one home keeps the cost down (five small trainings):
  v1 `par`  --workers 2, 4 trials                     nested structure with two worker processes
  v2 `rep`  5 trials, baselines on                    metrics, plots, lineage, baselines; promoted (first champion)
  v3 `rep`  3 more trials                             the study is resumed
  v4 `rep2` 5 trials, same seed/data/config as v2     reproducibility
  v5 `bad`  crippled search space, tuned candidate only refused by the gate, forced through, rolled back
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from scoreloop.core.settings import Settings
from scoreloop.core.tracking import load_registered
from tests.support import cli

pytestmark = pytest.mark.slow

MODEL = "scoreloop-model"
# The story tunes on the validation slice (cross-validation has its own test: test_training_selection.py).
SMALL = {
    "SCORELOOP_TRAIN__MAX_ITERATIONS": "120",
    "SCORELOOP_TRAIN__BASELINES": "false",
    "SCORELOOP_TRAIN__CV_BELOW_ROWS": "0",
}
# Depth-1 stumps, 10 trees at a learning rate of 0.001: ranking far worse than a tuned model's. Selection is
# restricted to the tuned candidate, or it would pick CatBoost's defaults instead.
CRIPPLED = {
    **SMALL,
    "SCORELOOP_TRAIN__CANDIDATES": '["tuned"]',
    "SCORELOOP_TRAIN__MAX_ITERATIONS": "10",
    "SCORELOOP_TRAIN__SEARCH__DEPTH": "[1, 1]",
    "SCORELOOP_TRAIN__SEARCH__LEARNING_RATE": "[0.001, 0.001]",
}
LAX_GATE = {"SCORELOOP_GATE__MARGIN": "-1", "SCORELOOP_GATE__ECE_TOLERANCE": "1"}


def train(home: Path, study: str, trials: int, *extra: str, env: dict[str, str] | None = None) -> dict:
    """Run `scoreloop train` and return the parent run's data (params, metrics, tags) from the store."""
    cli(
        home,
        "train",
        "--spec",
        str(home / "spec.yaml"),
        "--data",
        str(home / "leads.parquet"),
        "--trials",
        str(trials),
        "--study",
        study,
        *extra,
        env=env or SMALL,
    )
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("scoreloop")
    query = f"tags.`scoreloop.study` = '{study}' and tags.`scoreloop.role` = 'study'"
    runs = client.search_runs([experiment.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return {"run": runs[0], "children": children(client, runs[0].info.run_id)}


def children(client: MlflowClient, parent_id: str) -> list:
    experiment = client.get_experiment_by_name("scoreloop")
    return client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("training")
    cli(home, "data", "generate", "--rows", "2000", "--seed", "5", "-o", str(home / "leads.parquet"))
    cli(home, "spec", "infer", str(home / "leads.parquet"), "--target", "converted", "-o", str(home / "spec.yaml"))
    found = {"home": home}
    found["par"] = train(home, "par", 4, "--workers", "2")
    found["rep"] = train(home, "rep", 5, env={**SMALL, "SCORELOOP_TRAIN__BASELINES": "true"})
    found["first_promote"] = cli(home, "promote").stdout
    found["rep_resumed"] = train(home, "rep", 3)
    found["rep2"] = train(home, "rep2", 5)
    found["bad"] = train(home, "bad", 1, env=CRIPPLED)
    found["refused"] = cli(home, "promote").stdout
    found["refused_tags"] = MlflowClient(f"sqlite:///{home / 'mlflow.db'}").get_model_version(MODEL, "5").tags
    found["forced"] = cli(home, "promote", env=LAX_GATE).stdout
    found["rollback"] = cli(home, "rollback", "--reason", "bad model in production").stdout
    found["after_rollback"] = cli(home, "promote", env=LAX_GATE).stdout
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    return found


@pytest.fixture(scope="module")
def client(story: dict) -> MlflowClient:
    return MlflowClient(f"sqlite:///{story['home'] / 'mlflow.db'}")


def test_parallel_workers_nest_every_trial_under_the_one_parent(story: dict) -> None:
    par = story["par"]
    trials = par["children"]
    assert sorted(int(run.data.tags["scoreloop.trial"]) for run in trials) == [0, 1, 2, 3]
    assert {run.data.tags["mlflow.parentRunId"] for run in trials} == {par["run"].info.run_id}
    assert len({run.data.tags["scoreloop.pid"] for run in trials}) == 2  # two worker processes ran them
    assert {run.data.tags["scoreloop.worker"] for run in trials} == {"0", "1"}
    assert all(run.info.status in ("FINISHED", "KILLED") and "valid_roc_auc" in run.data.metrics for run in trials)
    assert par["run"].data.params["workers"] == "2"


def test_same_study_name_resumes_the_study(story: dict) -> None:
    first, resumed = story["rep"]["run"], story["rep_resumed"]["run"]
    assert first.info.run_id != resumed.info.run_id  # a new parent run ...
    assert first.data.metrics["study_trials"] == 5
    assert resumed.data.metrics["study_trials"] == 8  # ... on the same, growing study
    assert sorted(int(run.data.tags["scoreloop.trial"]) for run in story["rep_resumed"]["children"]) == [5, 6, 7]


def test_pruning_stops_trials_that_cannot_win(story: dict) -> None:
    trials = [run for key in ("rep", "rep_resumed", "rep2") for run in story[key]["children"]]
    pruned = [run for run in trials if run.data.tags["scoreloop.trial_state"] == "pruned"]
    complete = [run for run in trials if run.data.tags["scoreloop.trial_state"] == "complete"]
    assert pruned and complete
    assert all(run.info.status == "KILLED" for run in pruned)
    # a pruned trial stopped growing trees before early stopping would have stopped it
    assert all(run.data.metrics["iterations_grown"] < run.data.metrics["best_iteration"] + 1 + 40 for run in pruned)
    assert sum(story["rep"]["run"].data.metrics[f"trials_{s}"] for s in ("complete", "pruned")) == 5


def test_same_seed_data_and_config_give_the_same_best_params(story: dict) -> None:
    def best(run) -> dict:
        return {k: v for k, v in run.data.params.items() if k.startswith("best.")}

    first, again = story["rep"]["run"], story["rep2"]["run"]
    assert best(first) and best(first) == best(again)
    assert first.data.metrics["best_valid_roc_auc"] == again.data.metrics["best_valid_roc_auc"]
    by_trial = {run.data.tags["scoreloop.trial"]: run.data.params for run in story["rep"]["children"]}
    assert by_trial == {run.data.tags["scoreloop.trial"]: run.data.params for run in story["rep2"]["children"]}


def test_run_records_metrics_plots_lineage_and_baselines(story: dict, client: MlflowClient) -> None:
    run = story["rep"]["run"]
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    for name in (
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "ece",
        "precision_at_10pct",
        "lift_at_10pct",
        "decile_01_conversion",
        "decile_10_lift",
    ):
        assert f"holdout_{name}" in metrics, name
    assert metrics["holdout_lift_at_10pct"] > 1.5 and 0 <= metrics["holdout_ece"] < 0.2
    for baseline in ("catboost", "hgb"):
        assert 0.6 < metrics[f"baseline_{baseline}_roc_auc"] <= 1
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots >= {
        "roc.png",
        "precision_recall.png",
        "calibration.png",
        "lift_gain.png",
        "feature_importance.png",
        "shap_summary.png",
        "optuna_history.png",
        "optuna_param_importances.png",
    }
    png = Path(client.download_artifacts(run.info.run_id, "plots/shap_summary.png", str(story["home"])))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    deciles = json.loads(
        Path(client.download_artifacts(run.info.run_id, "evaluation/deciles.json", str(story["home"]))).read_text()
    )
    assert len(deciles["data"]) == 10
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "holdout"} and all(d.digest for d in inputs.values())
    assert {Path(a.path).name for a in client.list_artifacts(run.info.run_id)} >= {"spec.yaml", "windows.json"}
    assert params["seed"] == "42" and params["window.order"] == "created_at" and params["window.holdout_end"]
    assert params["lib.catboost"].startswith("1.2") and params["lib.optuna"].startswith("5.")
    assert len(tags["scoreloop.git_commit"]) == 40


def test_runs_lists_studies_and_compare_shows_differences(story: dict) -> None:
    listing = cli(story["home"], "runs").stdout
    for study in ("par", "rep", "rep2", "bad"):
        assert f"│ {study} " in listing
    compared = cli(story["home"], "runs", "compare", "rep", "bad").stdout
    assert "best.depth" in compared and "holdout_roc_auc" in compared
    holdout_row = next(line for line in compared.splitlines() if "│ holdout_roc_auc " in line)
    a, b, diff = (float(cell) for cell in holdout_row.split("│")[2:5])
    assert diff == pytest.approx(b - a, abs=2e-4) and diff < 0
    same = cli(story["home"], "runs", "compare", "rep", "rep2").stdout
    assert "best.depth" not in same  # equal parameters are hidden unless --all
    missing = cli(story["home"], "runs", "compare", "rep", "nope", check=False)
    assert missing.returncode == 2 and "no run matches 'nope'" in missing.stdout


def test_gate_refuses_a_worse_challenger_and_records_why(story: dict) -> None:
    assert "not promoted" in story["refused"]
    tags = story["refused_tags"]  # as they were right after the decision (later decisions on v5 overwrite them)
    assert tags["gate.promoted"] == "False"
    reason = tags["gate.reason"]
    assert "the gain's lower end" in reason and "misses the margin" in reason and "; ECE " in reason
    assert float(tags["gate.challenger_value"]) < float(tags["gate.champion_value"])
    assert float(tags["gate.challenger_ece"]) >= 0  # calibrated: ranking, not calibration, is what it lost on
    assert tags["gate.champion_version"] == "2"
    history = cli(story["home"], "history").stdout
    reasons = " ".join(" ".join(line.split("│")[-2].split()) for line in history.splitlines() if line.startswith("│"))
    assert "refused" in history and "misses the margin" in reasons  # the last column, folded over several lines


def test_history_and_rollback_restore_the_previous_champion(story: dict, client: MlflowClient) -> None:
    assert "champion is version 2 again" in story["rollback"]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert "scoreloop.rolled_back" in client.get_model_version(MODEL, "5").tags
    assert "was rolled back" in story["after_rollback"]  # the demoted challenger is not promoted again
    history = cli(story["home"], "history").stdout
    cells = [line.split("│")[3].strip() for line in history.splitlines() if line.startswith("│")]
    actions = [cell for cell in cells if cell]  # folded rows continue on lines with an empty action cell
    assert actions == ["promoted", "refused", "promoted", "rolled_back", "refused"]
    assert "bad model in production" in history


def test_registry_stays_consistent_when_registering_or_loading_fails(story: dict, client: MlflowClient) -> None:
    home = story["home"]
    # a crash between registering and aliasing leaves a version with no alias: nothing moves
    orphan = mlflow.register_model(f"runs:/{story['rep2']['run'].info.run_id}/model", MODEL)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert "version 5 was rolled back" in cli(home, "promote").stdout  # the gate still judges the aliased challenger
    # a version whose files never arrived can be made challenger, but never champion
    broken = client.create_model_version(MODEL, source=str(home / "missing-model"), run_id=orphan.run_id)
    client.set_registered_model_alias(MODEL, "challenger", str(broken.version))
    result = cli(home, "promote", env=LAX_GATE)
    assert "not promoted" in result.stdout
    assert "cannot be loaded" in client.get_model_version(MODEL, str(broken.version)).tags["gate.reason"]
    rollback = cli(home, "rollback", "--to", str(broken.version), check=False)
    assert rollback.returncode == 2 and "cannot be loaded" in rollback.stdout
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "2"
    holdout = pd.read_parquet(client.download_artifacts(champion.run_id, "holdout/holdout.parquet", str(home)))
    assert load_registered(Settings(home=home)).predict_proba(holdout).shape == (len(holdout),)
