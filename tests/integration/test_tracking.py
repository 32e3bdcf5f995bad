"""The tracking adapter against real SQLite MLflow stores."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

from scoreloop.core.settings import Settings
from scoreloop.core.tracking import configure


def test_each_home_keeps_its_own_store_within_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow exports the URI it is given; a second home configured later in the process must not inherit it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("first", "second"):
        settings = Settings(home=tmp_path / name)
        configure(settings)
        with mlflow.start_run(run_name=name):
            pass
        assert mlflow.get_tracking_uri() == f"sqlite:///{(tmp_path / name).resolve() / 'mlflow.db'}"
        assert "MLFLOW_TRACKING_URI" not in os.environ
    runs = mlflow.search_runs(search_all_experiments=True)
    assert runs["tags.mlflow.runName"].tolist() == ["second"]


def test_a_tracking_uri_the_user_set_wins_over_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    configure(Settings(home=tmp_path / "home"))
    assert mlflow.get_tracking_uri() == shared
    assert os.environ["MLFLOW_TRACKING_URI"] == shared
    assert not (tmp_path / "home" / "mlflow.db").exists()
