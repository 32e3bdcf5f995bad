"""An MLflow server with basic auth: scoreloop uses credentials from the environment and leaks none of them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support import clean_env, cli, free_port, mlflow_server_command, running

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = secrets.token_hex(16)


def _server_command(folder: Path, port: int) -> list[str]:
    return mlflow_server_command(f"sqlite:///{folder / 'mlflow.db'}", folder, port, "--app-name", "basic-auth")


def _server_env(folder: Path, password: str) -> dict[str, str]:
    ini = folder / "auth.ini"
    ini.write_text(
        (PROJECT / "deploy/mlflow-basic-auth.ini")
        .read_text()
        .replace("sqlite:///basic_auth.db", f"sqlite:///{folder / 'basic_auth.db'}")
    )
    return clean_env(
        MLFLOW_AUTH_CONFIG_PATH=str(ini),
        MLFLOW_AUTH_ADMIN_PASSWORD=password,
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(32),
    )


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("auth-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        _server_command(folder, port), f"{url}/health", folder / "server.log", _server_env(folder, ADMIN_PASSWORD)
    ):
        yield url


def test_the_shipped_config_has_no_password_and_an_empty_one_is_refused(tmp_path: Path) -> None:
    assert "admin_password" not in (PROJECT / "deploy/mlflow-basic-auth.ini").read_text()
    port = free_port()
    with (
        pytest.raises(AssertionError, match="exited"),
        running(
            _server_command(tmp_path, port),
            f"http://127.0.0.1:{port}/health",
            tmp_path / "server.log",
            _server_env(tmp_path, ""),
            timeout=60,
        ),
    ):
        pass


def test_scoreloop_trains_with_credentials_and_refuses_without(
    auth_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, spec = tmp_path / "leads.csv", tmp_path / "spec.yaml"
    cli(tmp_path, "data", "generate", "--rows", "1500", "--seed", "2", "-o", str(data))
    cli(tmp_path, "spec", "infer", str(data), "--target", "converted", "-o", str(spec))
    train = ("train", "--spec", str(spec), "--data", str(data), "--trials", "1")

    anonymous = cli(tmp_path, *train, check=False, env={"MLFLOW_TRACKING_URI": auth_server})
    assert anonymous.returncode == 2 and "refused access" in anonymous.stdout
    empty = cli(
        tmp_path, *train, check=False, env={"MLFLOW_TRACKING_URI": auth_server, "MLFLOW_TRACKING_USERNAME": "admin"}
    )
    assert empty.returncode == 2 and "MLFLOW_TRACKING_PASSWORD is empty" in empty.stdout

    credentials = {
        "MLFLOW_TRACKING_URI": auth_server,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
    }
    # This is about credentials, not quality: no baselines for the gate to weigh on a 225-row holdout.
    trained = cli(tmp_path, *train, env={**credentials, "SCORELOOP_TRAIN__BASELINES": "false"})
    promoted = cli(tmp_path, "promote", env=credentials)
    assert ADMIN_PASSWORD not in trained.stdout + trained.stderr + promoted.stdout + promoted.stderr

    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(auth_server)
    champion = client.get_model_version_by_alias("scoreloop-model", "champion")
    run = client.get_run(champion.run_id)
    recorded = [*run.data.params.values(), *run.data.tags.values(), *champion.tags.values()]
    assert not any(ADMIN_PASSWORD in value for value in recorded)
