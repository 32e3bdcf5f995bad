"""MLflow's own UI on the experiments scoreloop creates: tagged as model training (new ones, and an older home's when
next used), and the runs page scoreloop prints renders the runs, checked in a real `mlflow server` with headless
Chromium (a screenshot of each page is kept in the test's temp dir)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from scoreloop.core.settings import Settings
from scoreloop.core.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING, configure, runs_page
from tests.support import clean_env, free_port, mlflow_server_command, running

RUN_NAME = "scoreloop-ui-check"
GENAI_OVERVIEW = "Token Usage"  # a chart of the GenAI overview MLflow 3.17 opens experiments on by default


def test_experiments_are_tagged_as_model_training(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    client = MlflowClient(settings.tracking_uri)
    older = client.create_experiment(settings.experiment)  # a home from before the tag
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(older).tags
    assert configure(settings) == older
    fresh = configure(settings, experiment="fresh")
    configure(settings, experiment="chosen")
    kinds = {i: client.get_experiment(i).tags.get(EXPERIMENT_KIND_TAG) for i in (older, fresh, chosen)}
    assert kinds == {older: MODEL_TRAINING, fresh: MODEL_TRAINING, chosen: "genai_development"}


def test_runs_page_drops_credentials_and_carries_the_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        runs_page(Settings(home=tmp_path), "3") == "http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ana:secret@mlflow.example.com/")
    assert runs_page(Settings(home=tmp_path), "3").startswith("https://mlflow.example.com/#/experiments/3?")


def render(url: str, screenshot: Path) -> str:
    """The text of `url`'s page after MLflow's scripts ran, in a fresh browser profile; a screenshot to `screenshot`."""
    browser = subprocess.run(
        ["chromium", "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={screenshot.with_suffix('')}",
         "--window-size=1400,900", "--virtual-time-budget=20000", f"--screenshot={screenshot}", "--dump-dom", url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert "</body>" in browser.stdout, browser.stderr[-2000:]
    assert screenshot.stat().st_size > 0
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", browser.stdout, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (CI installs Debian's chromium)")
def test_the_mlflow_ui_opens_scoreloops_experiment_on_its_runs(tmp_path: Path) -> None:
    """MLflow 3.17 lands on its GenAI overview (traces) unless told otherwise: the bare experiment link of an
    experiment without a kind shows that overview and not the run (so the check below can fail); the page scoreloop
    prints shows the runs table with the run."""
    settings = Settings(home=tmp_path / "home")
    experiment_id = configure(settings)
    with mlflow.start_run(run_name=RUN_NAME):
        mlflow.log_metric("valid_roc_auc", 0.8)
    untagged = MlflowClient().create_experiment("untagged")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = mlflow_server_command(settings.tracking_uri, tmp_path, port)
    with running(command, f"{url}/health", tmp_path / "mlflow.log", clean_env()):
        bare = render(f"{url}/#/experiments/{untagged}", tmp_path / "bare.png")
        page = render(runs_page(settings, experiment_id).replace("http://127.0.0.1:5000", url), tmp_path / "runs.png")
    assert GENAI_OVERVIEW in bare and "matching run" not in bare
    assert RUN_NAME in page and "1 matching run" in page and GENAI_OVERVIEW not in page
