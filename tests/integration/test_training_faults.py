"""Training when things go wrong: the tracking store unreachable at the start or lost while logging (a real
`mlflow server` killed mid-run), two Optuna workers sharing one PostgreSQL study, no secret in MLflow params/tags.
(The registry's consistency when registering or loading fails is tested at the end of test_training.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from scoreloop.core.tracking import load_version
from tests.support import clean_env, cli, free_port, mlflow_server_command, running

pytestmark = pytest.mark.slow

SMALL = {"SCORELOOP_TRAIN__MAX_ITERATIONS": "120", "SCORELOOP_TRAIN__BASELINES": "false"}
PG = os.environ.get("SCORELOOP_TEST_PG", "")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fault-data")
    cli(folder, "data", "generate", "--rows", "1500", "--seed", "8", "-o", str(folder / "leads.parquet"))
    cli(
        folder, "spec", "infer", str(folder / "leads.parquet"), "--target", "converted", "-o", str(folder / "spec.yaml")
    )
    return folder


def train_args(data: Path, *extra: str) -> list[str]:
    return ["train", "--spec", str(data / "spec.yaml"), "--data", str(data / "leads.parquet"), *extra]


def test_unreachable_store_fails_fast_in_one_line(data: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result = cli(
        tmp_path, *train_args(data), check=False, env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    )
    assert result.returncode == 2
    assert "is unreachable" in result.stdout and "nothing was trained" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert time.monotonic() - started < 60  # no retries with backoff: interpreter start-up is most of it
    assert not (tmp_path / "pending").exists() and not (tmp_path / "optuna.journal").exists()


def mlflow_server(folder: Path, port: int) -> list[str]:
    return mlflow_server_command(f"sqlite:///{folder / 'mlflow.db'}", folder, port)


def wait_for_trials(client: MlflowClient, count: int, timeout: float = 300) -> None:
    """Until `count` trial runs have ended: tuning is over and refit/logging is next."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        experiments = [experiment.experiment_id for experiment in client.search_experiments()]
        runs = client.search_runs(experiments, "tags.`scoreloop.trial` != ''") if experiments else []
        if sum(run.info.status in ("FINISHED", "KILLED") for run in runs) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} trials did not finish in {timeout} s")


def test_model_trained_while_the_store_goes_away_is_kept_and_logged_later(data: Path, tmp_path: Path) -> None:
    server_dir, home, port = tmp_path / "server", tmp_path / "home", free_port()
    server_dir.mkdir()
    url = f"http://127.0.0.1:{port}"
    # MLflow retries each request with backoff (minutes by default); one retry keeps the test short
    env = {**SMALL, "MLFLOW_TRACKING_URI": url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}  # fmt: skip
    command = [sys.executable, "-m", "scoreloop", "--home", str(home), *train_args(data, "--trials", "3")]
    with running(mlflow_server(server_dir, port), f"{url}/health", tmp_path / "server1.log", clean_env()) as server:
        training = subprocess.Popen(
            [*command, "--study", "s"], env=clean_env(COLUMNS="200", **env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for_trials(MlflowClient(url), 3)
        os.killpg(server.pid, signal.SIGKILL)  # the store dies between tuning and logging
        server.wait()
        out, err = training.communicate(timeout=300)
    assert training.returncode == 2, out + err
    assert "became unreachable while logging" in out and "--resume-logging" in out and "Traceback" not in out + err
    kept = list((home / "pending").iterdir())
    assert len(kept) == 1 and (kept[0] / "model.cbm").stat().st_size > 0
    assert (kept[0] / "artifacts" / "holdout" / "holdout.parquet").exists() and (kept[0] / "card.json").exists()

    down = cli(home, "train", "--resume-logging", check=False, env=env)  # still down: kept, not lost
    assert down.returncode == 2 and "became unreachable while logging" in down.stdout and kept[0].exists()

    with running(mlflow_server(server_dir, port), f"{url}/health", tmp_path / "server2.log", clean_env()):
        cli(home, "train", "--resume-logging", env=env)
        client = MlflowClient(url)
        challenger = client.get_model_version_by_alias("scoreloop-model", "challenger")
        run = client.get_run(challenger.run_id)
        assert run.data.tags["scoreloop.study"] == "s" and run.info.status == "FINISHED"
        assert "holdout_roc_auc" in run.data.metrics and "best.depth" in run.data.params
        assert (
            len(client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")) == 3
        )
        mlflow.set_tracking_uri(url)
        model = load_version("scoreloop-model", challenger.version)
        assert model.card.run_id == run.info.run_id
        assert not kept[0].exists()
        assert "nothing to log" in cli(home, "train", "--resume-logging", env=env).stdout


@pytest.mark.postgres
@pytest.mark.skipif(not PG, reason="SCORELOOP_TEST_PG is not set (.ci/run starts a PostgreSQL and sets it)")
def test_two_workers_share_one_postgres_study_and_no_secret_reaches_mlflow(data: Path, tmp_path: Path) -> None:
    study = f"pg-{uuid.uuid4().hex[:8]}"  # the database outlives one test run
    password = PG.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    env = {**SMALL, "SCORELOOP_OPTUNA_STORAGE": f"{PG}/optuna"}
    cli(tmp_path, *train_args(data, "--trials", "4", "--workers", "2", "--study", study), env=env)
    cli(tmp_path, *train_args(data, "--trials", "2", "--study", study), env=env)  # resumed from another process

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("scoreloop").experiment_id
    parents = client.search_runs([experiment], "tags.`scoreloop.role` = 'study'", order_by=["attributes.start_time"])
    first, second = [
        client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{p.info.run_id}'") for p in parents
    ]
    assert len({run.data.tags["scoreloop.pid"] for run in first}) == 2 and len(first) == 4
    assert sorted(int(run.data.tags["scoreloop.trial"]) for run in second) == [4, 5]
    assert parents[1].data.metrics["study_trials"] == 6
    assert parents[0].data.params["optuna_storage"] == f"{PG}/optuna".replace(password, "***")
    for run in [*parents, *first, *second]:
        values = [*run.data.params.values(), *run.data.tags.values()]
        assert not any(password in value for value in values), run.info.run_name
    assert not (tmp_path / "optuna.journal").exists()
