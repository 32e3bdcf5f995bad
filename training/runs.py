"""Read-only views of training runs for the CLI: studies with their best trials, and two runs side by side."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from scoreloop.core.settings import Settings
from scoreloop.core.tracking import configure, version_by_alias
from scoreloop.training.tags import ROLE_TAG, STUDY_TAG, VERSION_TAG

STUDY_FILTER = f"tags.`{ROLE_TAG}` = 'study'"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def list_studies(settings: Settings, limit: int = 20) -> list[dict]:
    """The newest study runs: trials, best trial and its parameters, holdout and baseline figures, registry state."""
    experiment_id = configure(settings)
    client = MlflowClient()
    aliases = _aliases(client, settings.model_name)
    runs = client.search_runs([experiment_id], STUDY_FILTER, order_by=["attributes.start_time DESC"], max_results=limit)
    return [_summary(run, aliases) for run in runs]


def _aliases(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """Version -> its aliases (empty when the model is not registered yet)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return {}
    by_version: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    return by_version


def _summary(run: Run, aliases: dict[str, list[str]]) -> dict:
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    version = tags.get(VERSION_TAG)
    return {
        "study": tags.get(STUDY_TAG, run.info.run_name),
        "run_id": run.info.run_id,
        "started": run.info.start_time,
        "status": run.info.status,
        "trials": {k: int(metrics[f"trials_{k}"]) for k in ("complete", "pruned") if f"trials_{k}" in metrics},
        "study_trials": int(metrics.get("study_trials", 0)),
        "best_trial": tags.get("scoreloop.best_trial"),
        "best_params": {k.removeprefix("best."): v for k, v in params.items() if k.startswith("best.")},
        "best_valid_roc_auc": metrics.get("best_valid_roc_auc"),
        "holdout_roc_auc": metrics.get("holdout_roc_auc"),
        "holdout_ece": metrics.get("holdout_ece"),
        "baseline_hgb_roc_auc": metrics.get("baseline_hgb_roc_auc"),
        "version": version,
        "aliases": aliases.get(version or "", []),
    }


@dataclass(frozen=True)
class Comparison:
    """Two runs as named and found, their params (value A, value B) and metrics (A, B, B - A), keyed by name."""

    params: dict[str, tuple[str | None, str | None]]
    metrics: dict[str, tuple[float | None, float | None, float | None]]
    refs: tuple[tuple[str, Run], tuple[str, Run]]


def resolve_run(settings: Settings, ref: str) -> Run:
    """A run named by its id, a registry alias (`champion`), a model version (`v3` or `3`) or a study name (its
    newest run)."""
    experiment_id = configure(settings)
    client = MlflowClient()
    if RUN_ID.match(ref):
        return client.get_run(ref)
    version = version_by_alias(settings.model_name, ref)
    if version is None and re.fullmatch(r"v?\d+", ref):
        try:
            version = client.get_model_version(settings.model_name, ref.removeprefix("v"))
        except MlflowException:
            version = None
    if version is not None:
        return client.get_run(version.run_id)
    found = client.search_runs(
        [experiment_id],
        f"{STUDY_FILTER} and tags.`{STUDY_TAG}` = '{ref}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not found:
        raise LookupError(
            f"no run matches {ref!r}: give a run id, an alias (champion, challenger), a version (v3) or a study name"
        )
    return found[0]


def compare_runs(settings: Settings, a: str, b: str) -> Comparison:
    """Params and metrics of two runs side by side, with the metric differences (B - A)."""
    run_a, run_b = resolve_run(settings, a), resolve_run(settings, b)
    pa, pb = run_a.data.params, run_b.data.params
    ma, mb = run_a.data.metrics, run_b.data.metrics
    params = {key: (pa.get(key), pb.get(key)) for key in sorted(pa.keys() | pb.keys())}
    metrics = {
        key: (ma.get(key), mb.get(key), _difference(ma.get(key), mb.get(key)))
        for key in sorted(ma.keys() | mb.keys(), key=_metric_order)
    }
    return Comparison(params, metrics, ((a, run_a), (b, run_b)))


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return b - a


def _metric_order(name: str) -> tuple[int, str]:
    """Holdout figures first, then baselines, tuning, others, and the per-decile figures last."""
    if name.startswith("holdout_decile"):
        return (4, name)
    ranks = [rank for rank, prefix in enumerate(("holdout_", "baseline_", "best_")) if name.startswith(prefix)]
    return (ranks[0] if ranks else 3, name)
