"""The promotion gate and rollback: the champion alias moves only through recorded decisions.

The gate first refuses a challenger that clearly loses to a baseline of its own run (CatBoost defaults,
HistGradientBoosting) on the same holdout records, the first challenger included: training stores each baseline's
holdout probabilities beside the holdout, and a paired bootstrap tells a loss beyond the holdout's noise from one
holdout's luck (a gap that is noise on a few hundred rows is a clear loss on tens of thousands). It then re-scores
champion and challenger on the same records, the newer of their two holdouts, and promotes only when the challenger
wins on the primary metric by the configured margin and is not worse calibrated (ECE) than the champion by more than
the tolerance. Every decision is written as `gate.*` tags on the challenger version and appended to the model's
history (see `training.history`) before the alias moves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from scoreloop.core.metrics import binary_metric, evaluate, improvement, paired_gain_interval
from scoreloop.core.settings import GateSettings, Settings
from scoreloop.core.tracking import CHALLENGER, CHAMPION, configure, load_version, one_line, version_by_alias
from scoreloop.training.history import PROMOTED, REFUSED, ROLLED_BACK, champion_line, read_history, record_decision
from scoreloop.training.split import RANDOM_ORDER
from scoreloop.training.tags import BASELINE_PROBA, HOLDOUT_ARTIFACT

ROLLED_BACK_TAG = "scoreloop.rolled_back"


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
    challenger_ece: float | None = None
    champion_ece: float | None = None
    margin: float | None = None
    ece_tolerance: float | None = None
    holdout: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def judge(
    metric: str, challenger: dict[str, float], champion: dict[str, float], gate: GateSettings
) -> tuple[bool, str]:
    """Does the challenger win by `gate.margin` on `metric` and stay within `gate.ece_tolerance` of the champion's
    ECE? Returns the verdict and a reason that carries every figure."""
    gain = improvement(metric, challenger[metric], champion[metric])
    ece_gap = challenger["ece"] - champion["ece"]
    wins, calibrated = gain >= gate.margin, ece_gap <= gate.ece_tolerance
    return wins and calibrated, (
        f"{metric}: challenger {challenger[metric]:.4f} vs champion {champion[metric]:.4f}, improvement {gain:+.4f} "
        f"{'meets' if wins else 'misses'} the margin {gate.margin:g}; "
        f"ECE: challenger {challenger['ece']:.4f} vs champion {champion['ece']:.4f}, {ece_gap:+.4f} "
        f"{'within' if calibrated else 'beyond'} the tolerance {gate.ece_tolerance:g}"
    )


def beats_baselines(
    metric: str, y: np.ndarray, challenger: np.ndarray, baselines: dict[str, np.ndarray], gate: GateSettings
) -> tuple[bool, str]:
    """Does the challenger lose to no baseline of its run on the same holdout records? A baseline beats it when,
    in a paired bootstrap of the holdout (`paired_gain_interval`), even the upper end of the `gate.baseline_level`
    interval of the challenger's gain is below `-gate.baseline_tolerance`: a clear loss, not one holdout's luck.
    Returns the verdict and every figure."""
    if not baselines:
        return True, "no baseline predictions on the challenger's holdout"
    ours = binary_metric(metric, y, challenger)
    figures, lost = [], []
    for name, proba in sorted(baselines.items()):
        theirs = binary_metric(metric, y, proba)
        low, high = paired_gain_interval(metric, y, challenger, proba, gate.baseline_level, seed=0)
        figures.append(f"baseline {name} {theirs:.4f} (gain {improvement(metric, ours, theirs):+.4f}, "
                       f"{gate.baseline_level:.0%} interval {low:+.4f} to {high:+.4f})")  # fmt: skip
        if high < -gate.baseline_tolerance:
            lost.append(name)
    verdict = f"loses clearly to {', '.join(lost)}" if lost else "loses clearly to no baseline"
    return not lost, (
        f"{metric} on its own holdout ({len(y)} rows): challenger {ours:.4f} {verdict}: {'; '.join(figures)}; "
        f"tolerance {gate.baseline_tolerance:g}"
    )


def baseline_predictions(holdout: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each baseline's holdout probabilities, stored beside the holdout rows by training."""
    return {
        column.removeprefix(BASELINE_PROBA): holdout[column].to_numpy()
        for column in holdout.columns
        if column.startswith(BASELINE_PROBA)
    }


def promote(settings: Settings) -> GateDecision:
    """Run the gate on the current challenger; move `champion` to it when it passes. Every decision is recorded."""
    configure(settings)
    client, name, gate = MlflowClient(), settings.model_name, settings.gate
    now = datetime.now(UTC).isoformat()
    challenger = version_by_alias(name, CHALLENGER)
    if challenger is None:
        raise LookupError(f"model {name!r} has no {CHALLENGER!r}: run scoreloop train first")
    champion = version_by_alias(name, CHAMPION)
    new, old = str(challenger.version), str(champion.version) if champion else None
    base = {
        "metric": gate.metric,
        "challenger_version": new,
        "champion_version": old,
        "decided_at": now,
        "margin": gate.margin,
        "ece_tolerance": gate.ece_tolerance,
    }
    if new == old:
        return GateDecision(False, "challenger is already champion", challenger_value=None, champion_value=None, **base)
    if ROLLED_BACK_TAG in challenger.tags:
        reason = f"version {new} was rolled back ({challenger.tags[ROLLED_BACK_TAG]}): train a new challenger"
        decision = GateDecision(False, reason, challenger_value=None, champion_value=None, **base)
        return _record(client, name, decision)
    holdout_run, holdout = _newest_holdout(client, challenger, champion)
    described = f"run {holdout_run} ({len(holdout)} rows)"
    try:
        model = load_version(name, new)
        proba = model.predict_proba(holdout)
        scores = _score(holdout[model.spec.target], proba, settings)
    except Exception as exc:  # a version that cannot be loaded and scored must never become champion
        reason = f"version {new} cannot be loaded and scored ({one_line(exc)})"
        return _record(client, name, GateDecision(False, reason, challenger_value=None, champion_value=None, **base))
    if holdout_run == challenger.run_id:
        own, own_proba = holdout, proba
    else:
        own = _holdout(challenger.run_id)
        own_proba = model.predict_proba(own)
    y_own = own[model.spec.target].to_numpy()
    fair, versus = beats_baselines(gate.metric, y_own, own_proba, baseline_predictions(own), gate)
    if not fair:
        decision = GateDecision(
            False,
            f"refused: {versus}",
            challenger_value=scores[gate.metric],
            champion_value=None,
            challenger_ece=scores["ece"],
            holdout=described,
            **base,
        )
        return _record(client, name, decision)
    if old is None:
        decision = GateDecision(
            True,
            "no champion yet",
            challenger_value=scores[gate.metric],
            champion_value=None,
            challenger_ece=scores["ece"],
            holdout=described,
            **base,
        )
        return _record(client, name, decision)
    champion_model = load_version(name, old)
    champion_scores = _score(holdout[model.spec.target], champion_model.predict_proba(holdout), settings)
    promoted, reason = judge(gate.metric, scores, champion_scores, gate)
    decision = GateDecision(
        promoted,
        f"{reason} on the holdout of {described}",
        challenger_value=scores[gate.metric],
        champion_value=champion_scores[gate.metric],
        challenger_ece=scores["ece"],
        champion_ece=champion_scores["ece"],
        holdout=described,
        **base,
    )
    return _record(client, name, decision)


def _score(y: pd.Series, proba: np.ndarray, settings: Settings) -> dict[str, float]:
    config = settings.train
    return evaluate(y, proba, config.top_k, config.calibration_bins)


def _newest_holdout(
    client: MlflowClient, challenger: ModelVersion, champion: ModelVersion | None
) -> tuple[str, pd.DataFrame]:
    """The holdout slice that ends latest of the two models' (the challenger's when they cannot be compared, e.g.
    without a time column)."""
    run_ids = [challenger.run_id] + ([champion.run_id] if champion else [])
    ends = {}
    for run_id in run_ids:
        params = client.get_run(run_id).data.params
        if params.get("window.order", "").startswith(("row order", RANDOM_ORDER)):  # no time to compare
            ends = {}
            break
        ends[run_id] = pd.Timestamp(params["window.holdout_end"])
    chosen = max(run_ids, key=lambda run_id: ends[run_id]) if ends else challenger.run_id
    return chosen, _holdout(chosen)


def _holdout(run_id: str) -> pd.DataFrame:
    return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT))


def _record(client: MlflowClient, name: str, decision: GateDecision) -> GateDecision:
    """Tag the challenger version with every figure, append the decision to the history, then move the alias."""
    for key, value in decision.to_dict().items():
        if value is not None:
            client.set_model_version_tag(name, decision.challenger_version, f"gate.{key}", str(value))
    after = decision.challenger_version if decision.promoted else decision.champion_version
    record_decision(
        client,
        name,
        PROMOTED if decision.promoted else REFUSED,
        champion_before=decision.champion_version,
        champion_after=after,
        challenger=decision.challenger_version,
        metric=decision.metric,
        challenger_value=decision.challenger_value,
        champion_value=decision.champion_value,
        challenger_ece=decision.challenger_ece,
        champion_ece=decision.champion_ece,
        reason=decision.reason,
    )
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, decision.challenger_version)
    return decision


def history(settings: Settings) -> list[dict]:
    """Every recorded decision for the settings' model, oldest first."""
    configure(settings)
    return read_history(MlflowClient(), settings.model_name)


def rollback(settings: Settings, to_version: str | None = None, reason: str | None = None) -> dict:
    """Give `champion` back to the previous champion (or to `to_version`), mark the demoted version as rolled back
    (the gate will not promote it again) and record the decision; returns the history entry."""
    configure(settings)
    client, name = MlflowClient(), settings.model_name
    current = version_by_alias(name, CHAMPION)
    if current is None:
        raise LookupError(f"model {name!r} has no {CHAMPION!r} to roll back")
    demoted = str(current.version)
    target = str(to_version).removeprefix("v") if to_version else _previous_champion(client, name, demoted)
    if target == demoted:
        raise LookupError(f"version {target} is already the champion")
    try:
        load_version(name, target)
    except Exception as exc:  # champion only ever points to a complete, loadable version
        raise LookupError(f"version {target} cannot be loaded ({one_line(exc)}): champion stays on {demoted}") from exc
    if ROLLED_BACK_TAG in client.get_model_version(name, target).tags:
        client.delete_model_version_tag(name, target, ROLLED_BACK_TAG)  # named explicitly: trusted again
    at = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_model_version_tag(name, demoted, ROLLED_BACK_TAG, f"at {at}, champion returned to version {target}")
    entry = record_decision(
        client,
        name,
        ROLLED_BACK,
        champion_before=demoted,
        champion_after=target,
        reason=reason or f"rollback from version {demoted} to version {target}",
    )
    client.set_registered_model_alias(name, CHAMPION, target)
    return entry


def _previous_champion(client: MlflowClient, name: str, current: str) -> str:
    line = champion_line(read_history(client, name))
    if not line or line[-1] != current:
        raise LookupError(
            f"the recorded history ends with champion {line[-1] if line else 'none'}, but version {current} is "
            "champion (the alias was moved outside scoreloop): name the version with --to"
        )
    if len(line) < 2:
        raise LookupError(f"version {current} is the first recorded champion: there is nothing to roll back to")
    return line[-2]
