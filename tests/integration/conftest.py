"""Shared fixtures for integration tests: a temp home with a trained, promoted model, and a live server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import clean_env, free_port, running, serve_command, train_home


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
    """A home where a messy, drifting export was generated, ingested, trained on (3 trials) and promoted."""
    generate = ("--rows", "4000", "--seed", "3", "--covariate-drift", "0.8")
    return train_home(tmp_path_factory.mktemp("home"), *generate, trials=3)


@pytest.fixture(scope="session")
def server(trained_home: Path) -> Iterator[str]:
    """`scoreloop serve` on a free loopback port; yields its base URL and stops the whole process group."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(serve_command(trained_home, port), f"{url}/readyz", trained_home / "serve.log", clean_env()):
        yield url


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] Spark session for the Spark tests (a JVM costs seconds to start), Arrow batches of 500 rows."""
    from scoreloop.serving.spark import session

    with session("local[2]", batch_rows=500) as started:
        yield started
