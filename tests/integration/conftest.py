"""Shared fixtures for integration tests: a temp home with a trained, promoted model, and a live server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

NOT_FEATURES = ("owner_email", "notes", "crm_internal_id")


def cli(
    home: Path, *args: str, check: bool = True, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real `scoreloop` CLI in a subprocess against `home` (`env` adds variables to a clean environment)."""
    result = subprocess.run(
        [sys.executable, "-m", "scoreloop", "--home", str(home), *args],
        env=clean_env(COLUMNS="200", **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"scoreloop {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True, scope="module")
def tracking_uri_stays_in_its_module() -> Iterator[None]:
    """MLflow exports any URI a test points it at to MLFLOW_TRACKING_URI, which Settings honours: restore the
    variable after each module so that one module's store never becomes the next module's."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where a messy export was generated, ingested, trained on (3 trials) and promoted."""
    home = tmp_path_factory.mktemp("home")
    export, spec, ingested = home / "export.csv", home / "spec.yaml", home / "leads.parquet"
    generate = ["--rows", "4000", "--seed", "3", "--messy", "--covariate-drift", "0.8", "-o", str(export)]
    cli(home, "data", "generate", *generate)
    excluded = [arg for column in NOT_FEATURES for arg in ("--exclude", column)]
    cli(home, "spec", "infer", str(export), "--target", "converted", *excluded, "-o", str(spec))
    cli(home, "ingest", str(export), "--spec", str(spec), "-o", str(ingested))
    cli(home, "train", "--spec", str(spec), "--data", str(ingested), "--trials", "3")
    cli(home, "promote")
    return home


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MLflow/scoreloop settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SCORELOOP_"))}
    return {**env, **extra}


def mlflow_server_command(backend_store_uri: str, folder: Path, port: int, *options: str) -> list[str]:
    """`mlflow server` on a loopback port with one worker, serving artifacts from `folder / "artifacts"`."""
    return [sys.executable, "-m", "mlflow", "server", *options, "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip


@contextmanager
def running(
    command: list[str],
    ready_url: str,
    log_path: Path,
    env: dict[str, str],
    timeout: float = 120,
    cwd: Path | None = None,
):
    """Start `command` in its own process group, wait until `ready_url` answers 200, stop the group after."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"{command[:4]} exited {process.returncode}: {log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{command[:4]} not ready: {log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


@pytest.fixture(scope="session")
def server(trained_home: Path) -> Iterator[str]:
    """`scoreloop serve` on a free loopback port; yields its base URL and stops the whole process group."""
    url = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "scoreloop", "--home", str(trained_home), "serve", "--port", url.rsplit(":", 1)[1]]
    with running(command, f"{url}/readyz", trained_home / "serve.log", clean_env()):
        yield url
