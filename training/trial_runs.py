"""Trial child runs written through `MlflowClient`, safe from any thread or process.

The fluent API's active-run stack is per thread and per process, so a trial run by a worker process cannot find
its parent there: the parent run id is passed explicitly and set as `mlflow.parentRunId`. Several processes
writing to one SQLite store can meet "database is locked" (SQLite refuses a write while another connection
upgrades its transaction, whatever the busy timeout): such writes are retried with jittered backoff. Each trial
makes four short writes (create, parameters, metrics and tags, terminate), which keeps contention low.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

T = TypeVar("T")
RETRIES = 12

TRIAL_STATE_TAG = "scoreloop.trial_state"
RUN_STATUS = {"complete": RunStatus.FINISHED, "pruned": RunStatus.KILLED, "failed": RunStatus.FAILED}


def is_locked(exc: MlflowException) -> bool:
    """A transient SQLite lock (MLflow wraps SQLAlchemy's OperationalError) rather than a real error."""
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def with_retries(call: Callable[[], T], retries: int | None = None) -> T:
    """Run `call`, retrying a locked-database failure with exponential, jittered backoff (up to ~30 s)."""
    retries = retries or RETRIES
    for attempt in range(retries):
        try:
            return call()
        except MlflowException as exc:
            if not is_locked(exc) or attempt == retries - 1:
                raise
            time.sleep(min(4.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


class TrialRuns:
    """Creates and completes the child runs of one study's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, tags: dict[str, str]) -> None:
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.tags = tags

    def start(self, trial_number: int, params: dict) -> str:
        """A RUNNING child run named after the trial, with its parameters; returns the run id."""
        tags = {**self.tags, MLFLOW_PARENT_RUN_ID: self.parent_run_id, "scoreloop.trial": str(trial_number)}
        run = with_retries(
            lambda: self.client.create_run(self.experiment_id, tags=tags, run_name=f"trial-{trial_number}")
        )
        run_id = run.info.run_id
        with_retries(lambda: self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()]))
        return run_id

    def finish(self, run_id: str, state: str, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
        """Log the trial's metrics and tags in one batch, then close the run: complete, pruned or failed."""
        now = int(time.time() * 1000)
        batch_metrics = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        batch_tags = [RunTag(k, v) for k, v in {**(tags or {}), TRIAL_STATE_TAG: state}.items()]
        with_retries(lambda: self.client.log_batch(run_id, metrics=batch_metrics, tags=batch_tags))
        status = RunStatus.to_string(RUN_STATUS[state])
        with_retries(lambda: self.client.set_terminated(run_id, status=status))
