"""The promotion gate and rollback: the champion alias moves only through recorded decisions.

The gate first refuses a challenger that clearly loses to a baseline of its own run (CatBoost defaults,
HistGradientBoosting) on the same holdout records, the first challenger included: training stores each baseline's
holdout probabilities beside the holdout, and a paired bootstrap tells a loss beyond the holdout's noise from one
holdout's luck. It then scores champion and challenger on the same evaluation records and promotes only when the
lower end of the paired interval of the challenger's gain on the primary metric clears the margin and its
calibration error (ECE) is not clearly beyond the tolerance above the champion's.

The evaluation records are the logged decisions of the challenger's holdout span when a retrain attached them
(`LOGGED_ARTIFACT`: every record scored there, its propensity and its outcome if it was worked), else the newer of
the two training holdouts. On logged decisions every figure is an off-policy estimate (`core.offpolicy`): the
records the champion chose to work cannot judge the champion. A span in which some records could never be worked
(no exploration) cannot be judged, and a failing monitoring report on the current window blocks the promotion;
`force` overrides that block and the decision records it. Every decision is written as `gate.*` tags on the
challenger version and appended to the model's history (see `training.history`) before the alias moves.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from scoreloop.core.metrics import binary_metric, improvement, paired_gain_interval
from scoreloop.core.offpolicy import ESTIMATOR, Comparison, Logged, compare, point_figures
from scoreloop.core.settings import GateSettings, Settings
from scoreloop.core.tracking import (
    CHALLENGER,
    CHAMPION,
    configure,
    latest_monitoring,
    load_version,
    one_line,
    version_by_alias,
)
from scoreloop.training.history import PROMOTED, REFUSED, ROLLED_BACK, champion_line, read_history, record_decision
from scoreloop.training.split import RANDOM_ORDER
from scoreloop.training.tags import BASELINE_PROBA, HOLDOUT_ARTIFACT, LOGGED_ARTIFACT, PROPENSITY

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
    gain: float | None = None
    gain_low: float | None = None
    gain_high: float | None = None
    value_challenger: float | None = None
    value_champion: float | None = None
    value_gain_low: float | None = None
    value_gain_high: float | None = None
    ece_gap_low: float | None = None
    ece_gap_high: float | None = None
    records: int | None = None
    labelled: int | None = None
    effective_size: float | None = None
    support: float | None = None
    estimator: str | None = None
    monitoring: str | None = None
    forced: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def judge(comparison: Comparison, gate: GateSettings) -> tuple[bool, str]:
    """Does the lower end of the challenger's gain interval clear `gate.margin`, is its ECE not clearly more than
    `gate.ece_tolerance` above the champion's, and do the estimates see every logged record? The default margin is
    a small tolerated loss (non-inferiority): retrains gain less than one window's evidence can show. A lower end
    equal to the margin is no win: at margin 0, a few labelled records on which most resamples tie both models pin
    the lower end there.
    Calibration is judged on the lower end of the paired ECE gap's interval, as the baselines are: on logged
    decisions the ECE rests on a few dozen effective records, and its point gap alone refused a third of truly
    better challengers at random (benchmarks/README.md, loop). Returns the verdict and a reason with every figure."""
    low, ece_low = comparison.gain[1], comparison.ece_gap[1]
    wins, calibrated = low > gate.margin, ece_low <= gate.ece_tolerance
    seen = not comparison.support < 1  # NaN: no propensities logged, nothing to check
    return wins and calibrated and seen, (
        f"{comparison.describe()}: the gain's lower end {low:+.4f} {'clears' if wins else 'misses'} the margin "
        f"{gate.margin:g}; the ECE gap's lower end {ece_low:+.4f} {'within' if calibrated else 'beyond'} the "
        f"tolerance {gate.ece_tolerance:g}"
        + ("" if seen else "; cannot judge: " + "; ".join(comparison.notes) + " (explore: policy.epsilon > 0)")
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


def promote(settings: Settings, force: bool = False) -> GateDecision:
    """Run the gate on the current challenger; move `champion` to it when it passes. Every decision is recorded.

    `force` overrides a failing monitoring report (only that: the gate's figures still decide) and is recorded."""
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
    evaluation_run, frame, described = _evaluation(client, challenger, champion)
    try:
        model = load_version(name, new)
        proba = model.predict_proba(frame)
    except Exception as exc:  # a version that cannot be loaded and scored must never become champion
        reason = f"version {new} cannot be loaded and scored ({one_line(exc)})"
        return _record(client, name, GateDecision(False, reason, challenger_value=None, champion_value=None, **base))
    logged = Logged.of(frame[model.spec.target], frame.get(PROPENSITY))
    own, own_proba = (frame, proba) if evaluation_run == (challenger.run_id, HOLDOUT_ARTIFACT) else (None, None)
    if own is None:
        own = run_table(challenger.run_id, HOLDOUT_ARTIFACT)
        own_proba = model.predict_proba(own)
    fair, versus = beats_baselines(
        gate.metric, own[model.spec.target].to_numpy(), own_proba, baseline_predictions(own), gate
    )
    if not fair or old is None:
        alone = point_figures(logged, proba, gate.metric, settings.policy.capacity)
        figures = {"challenger_value": alone[gate.metric], "challenger_ece": alone["ece"], "estimator": ESTIMATOR}
        reason = f"refused: {versus}" if not fair else "no champion yet"
        decision = GateDecision(fair, reason, champion_value=None, holdout=described, **figures, **base)
        return _record(client, name, decision)
    champion_proba = load_version(name, old).predict_proba(frame)
    comparison = compare(
        logged, proba, champion_proba, gate.metric, settings.policy.capacity, level=gate.level, rounds=gate.rounds
    )
    promoted, reason = judge(comparison, gate)
    promoted, reason, monitoring, forced = _monitoring_block(settings, promoted, reason, force)
    decision = GateDecision(
        promoted,
        f"{reason} on {described}",
        challenger_value=comparison.new[gate.metric],
        champion_value=comparison.old[gate.metric],
        challenger_ece=comparison.new["ece"],
        champion_ece=comparison.old["ece"],
        holdout=described,
        gain=comparison.gain[0],
        gain_low=comparison.gain[1],
        gain_high=comparison.gain[2],
        value_challenger=comparison.new["worklist_value"],
        value_champion=comparison.old["worklist_value"],
        value_gain_low=comparison.value_gain[1],
        value_gain_high=comparison.value_gain[2],
        ece_gap_low=comparison.ece_gap[1],
        ece_gap_high=comparison.ece_gap[2],
        records=comparison.records,
        labelled=comparison.labelled,
        effective_size=comparison.effective_size,
        support=comparison.support,
        estimator=comparison.estimator,
        monitoring=monitoring,
        forced=forced,
        **base,
    )
    return _record(client, name, decision)


def _monitoring_block(
    settings: Settings, promoted: bool, reason: str, force: bool
) -> tuple[bool, str, str | None, bool | None]:
    """A promotion the figures allow is blocked while the newest monitoring report fails, unless forced."""
    latest = latest_monitoring(settings)
    if latest is None:
        return promoted, reason, None, None
    status, described = latest
    if status != "fail" or not promoted:
        return promoted, reason, described, None
    if force:
        return True, f"{reason}; forced past the failing {described}", described, True
    return False, f"{reason}; blocked by the failing {described} (promote --force overrides)", described, None


def _evaluation(
    client: MlflowClient, challenger: ModelVersion, champion: ModelVersion | None
) -> tuple[tuple[str, str], pd.DataFrame, str]:
    """The records both models are judged on: the logged decisions a retrain attached to the challenger's run, or
    the newer training holdout. Returns (run, artifact), the frame and a description."""
    if LOGGED_ARTIFACT in {a.path for a in client.list_artifacts(challenger.run_id, LOGGED_ARTIFACT.split("/")[0])}:
        frame = run_table(challenger.run_id, LOGGED_ARTIFACT)
        return (
            (challenger.run_id, LOGGED_ARTIFACT),
            frame,
            (f"the logged decisions of the challenger's holdout span (run {challenger.run_id}, {len(frame)} records)"),
        )
    run_id = _newest_holdout(client, challenger, champion)
    frame = run_table(run_id, HOLDOUT_ARTIFACT)
    return (run_id, HOLDOUT_ARTIFACT), frame, f"the holdout of run {run_id} ({len(frame)} rows)"


def _newest_holdout(client: MlflowClient, challenger: ModelVersion, champion: ModelVersion | None) -> str:
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
    return max(run_ids, key=lambda run_id: ends[run_id]) if ends else challenger.run_id


def run_table(run_id: str, path: str) -> pd.DataFrame:
    """A Parquet artifact of a run (the holdout, the logged decisions) as a frame."""
    return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))


def attach_evaluation(run_id: str, logged: pd.DataFrame) -> None:
    """Store the logged decisions the gate judges a retrained challenger on (`LOGGED_ARTIFACT`) in its run: every
    record scored in its holdout span with its `PROPENSITY` and its outcome (NaN when it was not worked)."""
    if PROPENSITY not in logged:
        raise ValueError(f"logged decisions need a {PROPENSITY!r} column")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(LOGGED_ARTIFACT).name
        logged.to_parquet(path, index=False)
        MlflowClient().log_artifact(run_id, str(path), str(Path(LOGGED_ARTIFACT).parent))


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
