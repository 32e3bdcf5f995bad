"""BentoML adapter: copy the registry's champion into the BentoML model store, then serve or build it."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

import scoreloop
from scoreloop.core.model import ScoringModel, load_scoring_model
from scoreloop.core.settings import Settings, redact
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import CHAMPION, configure, download_model, one_line, version_by_alias
from scoreloop.serving.access import bind_problem

MODEL_TAG_ENV = "SCORELOOP_BENTO_MODEL"
MLFLOW_DIR = "mlflow_model"  # where bentoml.mlflow.import_model puts the MLflow model inside a BentoML model
SERVICE = "scoreloop.serving.service:Scorer"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(scoreloop.__file__).resolve().parent  # the core, wherever the stages are installed from


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
    """Copy `models:/NAME@champion` into the BentoML store (once per registry version), with a digest of its files
    that the service checks before it serves; returns its tag."""
    configure(settings)
    version = version_by_alias(settings.model_name, CHAMPION)
    if version is None:
        raise LookupError(f"model {settings.model_name!r} has no champion: run scoreloop promote first")
    return import_version(settings, version)


def import_version(settings: Settings, version: ModelVersion) -> str:
    """Copy one registry version into the BentoML store unless it is there; returns its tag. A file lock in the
    store makes the processes importing it at once (every worker of a server following the champion) take turns."""
    import bentoml

    use_bentoml_home(settings)
    tag = f"{settings.model_name}:mlflow-v{version.version}"
    settings.bentoml_home.mkdir(parents=True, exist_ok=True)
    with (settings.bentoml_home / "import.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            bentoml.models.get(tag)
        except bentoml.exceptions.NotFound:
            with tempfile.TemporaryDirectory() as tmp:
                model_dir = download_model(settings.model_name, version.version, Path(tmp))
                with bentoml.models.create(
                    tag,
                    labels={"alias": CHAMPION},
                    metadata={
                        "registered_model": settings.model_name,
                        "version": str(version.version),
                        "validation_metrics": validation_metrics(version.run_id) if version.run_id else {},
                        "digest": tree_digest(model_dir),
                    },
                ) as model:
                    shutil.copytree(model_dir, model.path_of(MLFLOW_DIR))
    return tag


def tree_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes: recorded at import, checked before serving."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


class ModelRefused(RuntimeError):
    """The stored model is missing, altered or unreadable: the server must not start on it."""


def load_verified(stored: Any) -> ScoringModel:
    """Load a BentoML model reference (`bentoml.models.BentoModel`) after checking its files against the digest
    recorded at import, so a server refuses to start rather than serve a missing, altered or unreadable model."""
    import bentoml

    try:
        model = stored.resolve()
    except bentoml.exceptions.NotFound as exc:
        raise ModelRefused(f"refusing to serve: {exc}; run `scoreloop serve` to import the champion") from exc
    folder = Path(model.path_of(MLFLOW_DIR))
    metadata = model.info.metadata
    fix = f"delete it (`bentoml models delete {model.tag}`) and run `scoreloop serve` to import the champion again"
    if "digest" not in metadata:
        raise ModelRefused(f"refusing to serve {model.tag}: it has no digest recorded at import; {fix}")
    if not folder.is_dir() or tree_digest(folder) != metadata["digest"]:
        raise ModelRefused(f"refusing to serve {model.tag}: its files in {folder} are missing or changed; {fix}")
    try:
        return load_scoring_model(folder, metadata["registered_model"], metadata["version"])
    except Exception as exc:  # a digest match that still fails to load: say why, never serve it
        raise ModelRefused(f"refusing to serve {model.tag}: cannot load it ({exc}); {fix}") from exc


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
    """Import the champion and run `bentoml serve` until it exits; returns its exit code.

    A SIGTERM sent to this process alone (systemd, a container runtime) is passed on, and this process waits for
    the server's graceful stop (the scoring log drained) instead of exiting and leaving it behind. Ctrl-C reaches
    the server from the terminal itself, so here it is only waited out. A non-loopback `host` without an API key
    (and without the opt-out) is a `PermissionError` before anything starts.
    """
    check_bind(settings, host)
    tag = import_champion(settings)
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]
    server = subprocess.Popen(command, env=bentoml_env(settings, tag), cwd=PROJECT_ROOT)
    signal.signal(signal.SIGTERM, lambda signum, _frame: server.send_signal(signum))
    signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    return server.wait()


def check_bind(settings: Settings, host: str) -> None:
    """A one-line `PermissionError` when `host` is not loopback and no API key (nor the opt-out) is set."""
    if problem := bind_problem(host, settings.serve):
        raise PermissionError(problem)


def check_store(settings: Settings) -> None:
    """A `ConnectionError` naming the record store (password redacted) and why it takes no writes, if it does not:
    checked before serving, since a server's worker would restart on it forever."""
    try:
        reason = RecordStore(settings.record_store_url, busy_seconds=settings.serve.store_wait_seconds).unavailable()
    except sa.exc.DBAPIError as exc:
        reason = f"{redact(settings.record_store_url)} is unreachable: {one_line(exc.orig)}"
    if reason is not None:
        raise ConnectionError(f"the record store does not take writes: {reason}")


def build(settings: Settings) -> int:
    """Import the champion and `bentoml build` a bento holding it (bentofile.yaml); returns the exit code."""
    tag = import_champion(settings)
    with tempfile.TemporaryDirectory() as context:
        stage_build_context(Path(context))
        command = [sys.executable, "-m", "bentoml", "build", "--bentofile", "bentofile.yaml", "."]
        return subprocess.call(command, env=bentoml_env(settings, tag), cwd=context)


def stage_build_context(context: Path) -> None:
    """The serving code laid out as the installed package imports it (the repository keeps `serving/` at its top
    level), beside the bentofile and the serving requirements."""
    package = context / "scoreloop"
    shutil.copytree(PACKAGE_ROOT / "core", package / "core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(Path(__file__).parent, package / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(PACKAGE_ROOT / "__init__.py", package / "__init__.py")
    for name in ("bentofile.yaml", "requirements.serving.txt"):
        shutil.copy2(PROJECT_ROOT / name, context / name)
