"""Team mode on real servers: an MLflow server backed by PostgreSQL, and the record store on PostgreSQL.

Needs `SCORELOOP_TEST_PG` (a base URL such as postgresql://user:pw@127.0.0.1:55432); `.ci/run` starts a
throwaway PostgreSQL and sets it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from scoreloop.core.store import Outcome, RecordStore, ScoredBatch
from tests.support import clean_env, cli, free_port, mlflow_server_command, running

PG = os.environ.get("SCORELOOP_TEST_PG", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not PG, reason="SCORELOOP_TEST_PG is not set (.ci/run starts a PostgreSQL and sets it)"),
]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` with a PostgreSQL backend store and artifacts served from a local folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = mlflow_server_command(f"{PG}/mlflow", folder, port)
    with running(command, f"{url}/health", folder / "server.log", clean_env()):
        yield url


def test_train_and_promote_against_a_postgres_backed_server(mlflow_server: str, tmp_path: Path) -> None:
    name = f"team-{uuid.uuid4().hex[:8]}"  # the database outlives one test run
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "SCORELOOP_MODEL_NAME": name, "SCORELOOP_EXPERIMENT": name}
    data, spec = tmp_path / "leads.csv", tmp_path / "spec.yaml"
    cli(tmp_path, "data", "generate", "--rows", "2000", "--seed", "11", "-o", str(data))
    cli(tmp_path, "spec", "infer", str(data), "--target", "converted", "-o", str(spec))
    cli(tmp_path, "train", "--spec", str(spec), "--data", str(data), "--trials", "2", env=env)
    cli(tmp_path, "promote", env=env)

    client = MlflowClient(mlflow_server)
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["gate.reason"] == "no champion yet"
    assert not (tmp_path / "mlflow.db").exists()  # the server's store was used, not the home's SQLite
    assert not (tmp_path / "artifacts").exists()  # artifacts went to the server
    holdout = client.download_artifacts(champion.run_id, "holdout/holdout.parquet", str(tmp_path))
    assert len(pd.read_parquet(holdout)) == 300


def test_record_store_on_postgres_keeps_what_it_acknowledged() -> None:
    url = f"{PG}/records"
    record = f"lead-{uuid.uuid4().hex[:8]}"
    features = pd.DataFrame({"industry": ["saas"], "employees": [12.0]})
    scored = pd.DataFrame({"probability": [0.4], "score": [80], "tier": ["B"]})
    writer = RecordStore(url)
    writer.log_scores([ScoredBatch(features, scored, model_name="m", model_version="3", record_ids=[record])])
    writer.add_outcomes([Outcome(record, 1)])
    writer.engine.dispose()

    reader = RecordStore(url)  # a fresh connection pool sees only what was committed
    labelled = reader.labelled()
    row = labelled[labelled["record_id"] == record].iloc[0]
    assert (row["outcome"], row["model_version"], row["industry"]) == (1, "3", "saas")
