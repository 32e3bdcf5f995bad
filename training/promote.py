"""The promotion gate: the challenger replaces the champion only if it does at least as well on the same holdout."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import mlflow
import pandas as pd
from mlflow import MlflowClient

from scoreloop.model import ScoringModel
from scoreloop.settings import Settings
from scoreloop.tracking import CHALLENGER, CHAMPION, configure, load_version, version_by_alias
from training.metrics import binary_metrics
from training.train import HOLDOUT_ARTIFACT


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    metric: str
    challenger_version: str
    challenger_value: float | None
    champion_version: str | None
    champion_value: float | None
    decided_at: str

    def to_dict(self) -> dict:
        return asdict(self)


def _holdout_metric(model: ScoringModel, holdout: pd.DataFrame, metric: str) -> float:
    return binary_metrics(holdout[model.spec.target], model.predict_proba(holdout))[metric]


def promote(settings: Settings) -> GateDecision:
    """Re-score champion and challenger on the challenger's holdout; move `champion` if the challenger is not worse
    by more than the gate margin. The decision and its figures are recorded as tags on the challenger version."""
    configure(settings)
    name, metric, now = settings.model_name, settings.gate.metric, datetime.now(UTC).isoformat()
    challenger = version_by_alias(name, CHALLENGER)
    if challenger is None:
        raise LookupError(f"model {name!r} has no {CHALLENGER!r}: run scoreloop train first")
    champion = version_by_alias(name, CHAMPION)
    new, old = str(challenger.version), str(champion.version) if champion else None
    if new == old:
        return GateDecision(False, "challenger is already champion", metric, new, None, old, None, now)
    holdout_path = mlflow.artifacts.download_artifacts(run_id=challenger.run_id, artifact_path=HOLDOUT_ARTIFACT)
    holdout = pd.read_parquet(holdout_path)
    challenger_value = _holdout_metric(load_version(name, new), holdout, metric)
    if old is None:
        decision = GateDecision(True, "no champion yet", metric, new, challenger_value, None, None, now)
    else:
        champion_value = _holdout_metric(load_version(name, old), holdout, metric)
        promoted = challenger_value >= champion_value - settings.gate.margin
        verdict = "at least as good as" if promoted else "worse than"
        reason = (
            f"challenger {metric} {challenger_value:.4f} is {verdict} champion {champion_value:.4f} "
            f"(margin {settings.gate.margin}) on the challenger's holdout ({len(holdout)} rows)"
        )
        decision = GateDecision(promoted, reason, metric, new, challenger_value, old, champion_value, now)
    _record(name, decision)
    return decision


def _record(name: str, decision: GateDecision) -> None:
    """Tag the challenger version with every figure of the decision; move the alias last, once tags are written."""
    client = MlflowClient()
    for key, value in decision.to_dict().items():
        if value is not None:
            client.set_model_version_tag(name, decision.challenger_version, f"gate.{key}", str(value))
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, decision.challenger_version)
