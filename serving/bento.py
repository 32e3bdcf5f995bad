"""BentoML adapter: copy the registry's champion into the BentoML model store, then serve or build it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from scoreloop.settings import Settings
from scoreloop.tracking import CHAMPION, configure, version_by_alias

MODEL_TAG_ENV = "SCORELOOP_BENTO_MODEL"
SERVICE = "serving.service:Scorer"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def bentoml_env(settings: Settings, tag: str) -> dict[str, str]:
    """Environment for a BentoML process: its store under the scoreloop home, the home itself (the record store
    lives there), and which model to serve."""
    home = str(settings.home.resolve())
    return {**os.environ, "BENTOML_HOME": str(settings.bentoml_home), "SCORELOOP_HOME": home, MODEL_TAG_ENV: tag}


def use_bentoml_home(settings: Settings) -> None:
    """Point this process's BentoML store at the home. BentoML fixes its home on first use, so check it took."""
    os.environ["BENTOML_HOME"] = str(settings.bentoml_home)
    from bentoml._internal.configuration.containers import BentoMLContainer

    if Path(BentoMLContainer.bentoml_home.get()) != settings.bentoml_home:
        raise RuntimeError(f"BentoML already uses {BentoMLContainer.bentoml_home.get()}, not {settings.bentoml_home}")


def import_champion(settings: Settings) -> str:
    """Import `models:/NAME@champion` into the BentoML store (once per registry version); returns its tag."""
    import bentoml

    configure(settings)
    use_bentoml_home(settings)
    version = version_by_alias(settings.model_name, CHAMPION)
    if version is None:
        raise LookupError(f"model {settings.model_name!r} has no champion: run scoreloop promote first")
    tag = f"{settings.model_name}:mlflow-v{version.version}"
    try:
        bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        bentoml.mlflow.import_model(
            tag,
            f"models:/{settings.model_name}/{version.version}",
            labels={"alias": CHAMPION},
            metadata={
                "registered_model": settings.model_name,
                "version": str(version.version),
                "validation_metrics": validation_metrics(version.run_id),
            },
        )
    return tag


def validation_metrics(run_id: str) -> dict[str, float]:
    """The validation metrics of the trial whose parameters were refit (the study run's `valid_*` otherwise)."""
    client = MlflowClient()
    run = client.get_run(run_id)
    trial = run.data.tags.get("scoreloop.best_trial_run_id")
    metrics = client.get_run(trial).data.metrics if trial else run.data.metrics
    return {
        name.removeprefix("best_").removeprefix("valid_"): value
        for name, value in metrics.items()
        if name.startswith(("valid_", "best_valid_"))
    }


def serve(settings: Settings, host: str, port: int) -> int:
    """Import the champion and run `bentoml serve` until it exits; returns its exit code."""
    tag = import_champion(settings)
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]
    return subprocess.call(command, env=bentoml_env(settings, tag), cwd=PROJECT_ROOT)


def build(settings: Settings) -> int:
    """Import the champion and `bentoml build` a bento holding it (bentofile.yaml); returns the exit code."""
    tag = import_champion(settings)
    command = [sys.executable, "-m", "bentoml", "build", "--bentofile", "bentofile.yaml", "."]
    return subprocess.call(command, env=bentoml_env(settings, tag), cwd=PROJECT_ROOT)
