"""MLproject entry points run the same functions as the CLI, inside the run MLflow opens for them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support import clean_env, cli

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[2]


def mlflow_run(home: Path, entry: str, **params: str) -> None:
    args = [arg for key, value in {**params, "home": str(home)}.items() for arg in ("-P", f"{key}={value}")]
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `--env-manager local`: our venv
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(PROJECT),
            "-e",
            entry,
            "--env-manager",
            "local",
            "--experiment-name",
            "scoreloop",
            *args,
        ],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_train_and_promote_entry_points(tmp_path: Path) -> None:
    data, spec = tmp_path / "leads.csv", tmp_path / "spec.yaml"
    cli(tmp_path, "data", "generate", "--rows", "2000", "--seed", "5", "-o", str(data))
    cli(tmp_path, "spec", "infer", str(data), "--target", "converted", "-o", str(spec))
    mlflow_run(tmp_path, "train", spec=str(spec), data=str(data), trials="2")
    mlflow_run(tmp_path, "promote")

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("scoreloop")
    study = client.search_runs([experiment.experiment_id], "tags.`scoreloop.role` = 'study'")
    assert len(study) == 1 and study[0].data.tags.get("mlflow.project.entryPoint") == "train"
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{study[0].info.run_id}'")
    assert len(children) == 2
    champion = client.get_model_version_by_alias("scoreloop-model", "champion")
    assert champion.run_id == study[0].info.run_id
