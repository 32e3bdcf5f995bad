"""The one adapter around MLflow tracking and the Model Registry: URIs, experiments, aliases, model download."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Experiment
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from scoreloop.core.model import ScoringModel, load_scoring_model
from scoreloop.core.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
# MLflow 3's experiment kind, as its UI writes it when a user picks "Machine learning" for an experiment.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
# MLflow 3.17's UI lands on the view of its GenAI/Model training switch (default GenAI) whatever the kind: a link
# carries the switch so that it opens on the runs.
RUNS_VIEW = "workflowType=machine_learning"
DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens


def configure(settings: Settings, experiment: str | None = None) -> str:
    """Point MLflow at the settings' store and make sure the experiment exists; returns its id.

    With the embedded SQLite default, artifacts go under the home rather than the working directory. Under
    `mlflow run` (which exports MLFLOW_RUN_ID), the run MLflow opened is used, in its own experiment.
    """
    settings.ensure_home()
    if os.environ.get("MLFLOW_TRACKING_USERNAME") and not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        raise PermissionError("MLFLOW_TRACKING_USERNAME is set but MLFLOW_TRACKING_PASSWORD is empty: refusing")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    chosen = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(settings.tracking_uri)
    # MLflow also exports the URI to the environment, where a later Settings in this process would take it for
    # the user's choice and ignore its own home; keep the environment as the user set it.
    if chosen is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    if run_id := os.environ.get("MLFLOW_RUN_ID"):
        experiment_id = MlflowClient().get_run(run_id).info.experiment_id
        mark_model_training(MlflowClient().get_experiment(experiment_id))
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id
    name = experiment or settings.experiment
    try:
        found = mlflow.get_experiment_by_name(name)
    except MlflowException as exc:
        if exc.get_http_status_code() in (401, 403):
            raise PermissionError(
                f"the tracking server {settings.tracking_uri_redacted} refused access ({exc.error_code}): "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for an account allowed to use it"
            ) from exc
        raise
    if found is None:
        location = (settings.artifact_root / name).as_uri() if settings.tracking_uri.startswith("sqlite:") else None
        experiment_id = mlflow.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
        )
    else:
        experiment_id = found.experiment_id
        mark_model_training(found)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def mark_model_training(experiment: Experiment) -> None:
    """Tag an experiment as model training (so MLflow's UI treats it as runs, not GenAI traces) unless it already
    has a kind: experiments of a home from before the tag get it when next used; a kind a user chose stays."""
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def runs_page(settings: Settings, experiment_id: str) -> str:
    """The MLflow UI's page of an experiment's runs: on the tracking server (without any credentials in its URI), or
    on `mlflow ui`'s default address for a store that is a database or folder."""
    uri = urlsplit(settings.tracking_uri)
    base = (
        uri._replace(netloc=uri.netloc.rpartition("@")[2]).geturl() if uri.scheme in ("http", "https") else DEFAULT_UI
    )
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{RUNS_VIEW}"


@contextmanager
def _single_attempt(timeout_seconds: int):
    """MLflow's HTTP requests without retries and with a short timeout, for a probe (MLflow reads both per call)."""
    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_seconds)}
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def unreachable_reason(settings: Settings, timeout_seconds: int = 5) -> str | None:
    """Why the tracking store cannot be used right now (one attempt, no retries), or None when it answers.

    A refused login is not "unreachable": `configure` explains that one. Nor is a server that took the connection
    but did not answer within the timeout (an authenticating server on a busy machine): the real
    calls get MLflow's own timeouts and retries.
    """
    try:
        with _single_attempt(timeout_seconds):
            MlflowClient(settings.tracking_uri).search_experiments(max_results=1)
    except MlflowException as exc:
        if exc.get_http_status_code() in (401, 403) or "ReadTimeoutError" in str(exc):
            return None
        return one_line(exc)
    except OSError as exc:
        return one_line(exc)
    return None


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, for a one-line CLI error or a record. A message longer than `limit` keeps
    its start and its end, where wrapped errors put the cause ("... [Errno 111] Connection refused'))")."""
    text = " ".join(str(exc).split())
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]} … {text[len(text) - (limit - head - 3) :]}"


def version_by_alias(name: str, alias: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def copy_version(name: str, version: str, to_name: str, alias: str = CHALLENGER) -> str:
    """Register version `version` of `name` (same run, same artifacts) as a new version of `to_name` with `alias`."""
    client = MlflowClient()
    copied = str(client.copy_model_version(f"models:/{name}/{version}", to_name).version)
    client.set_registered_model_alias(to_name, alias, copied)
    return copied


def download_model(name: str, version: str, dst: Path) -> Path:
    """Copy a registered version's model directory to `dst` (registry URIs only: nothing from a request)."""
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)))


def load_version(name: str, version: str) -> ScoringModel:
    with tempfile.TemporaryDirectory() as tmp:
        return load_scoring_model(download_model(name, version, Path(tmp)), name, version)


def load_registered(settings: Settings, alias: str = CHAMPION) -> ScoringModel:
    """Load the version that `alias` points to, with its card; a clear error when there is none."""
    configure(settings)
    version = version_by_alias(settings.model_name, alias)
    if version is None:
        raise LookupError(
            f"model {settings.model_name!r} has no {alias!r} alias in {settings.tracking_uri_redacted}: "
            "train and promote first (scoreloop train, scoreloop promote)"
        )
    return load_version(settings.model_name, version.version)


def monitoring_experiment(settings: Settings) -> str:
    """The experiment where monitoring reports of the settings' model are logged."""
    return f"{settings.experiment}-monitoring"


def latest_monitoring(settings: Settings) -> tuple[str, str] | None:
    """(status, description) of the newest monitoring report of the settings' model: its run name and failed
    checks; None when nothing was monitored yet."""
    experiment = mlflow.get_experiment_by_name(monitoring_experiment(settings))
    if experiment is None:
        return None
    runs = MlflowClient().search_runs(
        [experiment.experiment_id],
        "tags.`scoreloop.role` = 'monitoring'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    status, failed = run.data.tags.get("scoreloop.status", "unknown"), run.data.tags.get("scoreloop.failed", "")
    return status, f"monitoring report {run.info.run_name} ({status}{': ' + failed if failed else ''})"
