"""Pure decisions of the training stage: the gate's verdict, the champion line, trial claims, study fingerprints."""

from __future__ import annotations

import multiprocessing

import mlflow
import optuna
import pytest

from scoreloop.core.coerce import read_frame
from scoreloop.core.infer import infer_spec
from scoreloop.core.offpolicy import Comparison
from scoreloop.core.settings import GateSettings, Settings
from scoreloop.core.synthetic import WorldConfig, generate_leads
from scoreloop.core.tracking import configure
from scoreloop.training.history import PROMOTED, REFUSED, ROLLED_BACK, champion_line
from scoreloop.training.promote import judge
from scoreloop.training.split import time_split
from scoreloop.training.tune import PRUNE_INTERVAL, TrialClaims, TuningData, open_study, tune


def comparison(
    gain: tuple[float, float, float],
    ece: tuple[float, float] = (0.03, 0.03),
    support: float = 1.0,
    ece_gap: tuple[float, float, float] | None = None,
):
    """A gate comparison with the figures the verdict reads (the estimators are tested in test_offpolicy); the ECE
    gap's interval is the point gap unless given."""
    figures = [{"roc_auc": 0.8, "ece": e, "worklist_value": 30.0} for e in ece]
    notes = [] if support >= 1 else ["20% of the logged records could never have been worked"]
    gap = ece_gap or (ece[0] - ece[1],) * 3
    return Comparison("roc_auc", 0.9, *figures, gain, (0.0, -1.0, 1.0), gap, (29.0, 31.0), 1000, 300, 120.0, support,
                      (3, 30), notes=notes)  # fmt: skip


def test_gate_promotes_only_when_the_gains_lower_end_clears_the_margin() -> None:
    clear_win = GateSettings(margin=0)
    promoted, reason = judge(comparison((0.02, 0.001, 0.04)), clear_win)
    assert promoted and "lower end +0.0010 clears the margin 0" in reason
    promoted, reason = judge(comparison((0.02, -0.001, 0.04)), clear_win)  # better on the point, not surely
    assert not promoted and "lower end -0.0010 misses the margin 0" in reason
    promoted, reason = judge(comparison((0.02, 0.0, 0.2)), clear_win)  # resamples that tie both models
    assert not promoted and "lower end +0.0000 misses the margin 0" in reason


def test_the_default_gate_promotes_unless_the_challenger_may_be_worse_by_more_than_its_margin() -> None:
    promoted, reason = judge(comparison((0.0, -0.004, 0.004)), GateSettings())  # not clearly worse
    assert promoted and "lower end -0.0040 clears the margin -0.005" in reason
    promoted, reason = judge(comparison((0.0, -0.006, 0.006)), GateSettings())  # may be worse by 0.006
    assert not promoted and "lower end -0.0060 misses the margin -0.005" in reason


def test_gate_refuses_a_better_ranker_that_is_clearly_worse_calibrated() -> None:
    better, worse_calibrated = (0.05, 0.02, 0.08), (0.015, 0.012, 0.018)
    promoted, reason = judge(comparison(better, (0.045, 0.03), ece_gap=worse_calibrated), GateSettings())
    assert not promoted and "the ECE gap's lower end +0.0120 beyond the tolerance 0.01" in reason
    assert judge(comparison(better, (0.045, 0.03), ece_gap=worse_calibrated), GateSettings(ece_tolerance=0.02))[0]


def test_gate_does_not_refuse_on_an_ece_gap_within_its_noise() -> None:
    """The same point gap (+0.015) on few effective records: its interval reaches below the tolerance."""
    promoted, reason = judge(
        comparison((0.05, 0.02, 0.08), (0.045, 0.03), ece_gap=(0.015, -0.01, 0.04)), GateSettings()
    )
    assert promoted and "the ECE gap's lower end -0.0100 within the tolerance 0.01" in reason


def test_gate_cannot_judge_records_no_policy_could_work() -> None:
    promoted, reason = judge(comparison((0.05, 0.02, 0.08), support=0.8), GateSettings())
    assert not promoted and "cannot judge: 20% of the logged records could never have been worked" in reason


def test_champion_line_replays_promotions_and_rollbacks() -> None:
    history = [
        {"action": PROMOTED, "champion_after": "1"},
        {"action": REFUSED, "champion_after": "1"},
        {"action": PROMOTED, "champion_after": "2"},
        {"action": ROLLED_BACK, "champion_before": "2", "champion_after": "1"},
        {"action": PROMOTED, "champion_after": "3"},
    ]
    assert champion_line(history) == ["1", "3"]
    assert champion_line(history[:3]) == ["1", "2"]


def test_trial_claims_hand_out_every_trial_once_and_keep_one_for_each_late_worker() -> None:
    claims = TrialClaims(multiprocessing.get_context("forkserver"), trials=5, workers=3)
    first = [claims.claim(first=True)] + [claims.claim(first=False) for _ in range(5)]
    assert first == [True, True, True, False, False, False]  # two trials stay reserved for workers 1 and 2
    assert claims.claim(first=True) and not claims.claim(first=False)
    assert claims.claim(first=True) and not claims.claim(first=True)  # the last one, then none for anybody
    single = TrialClaims(multiprocessing.get_context("forkserver"), trials=3, workers=1)
    assert [single.claim(first=n == 0) for n in range(4)] == [True, True, True, False]


def test_cancelled_claims_hand_out_nothing_more_even_to_a_worker_yet_to_start() -> None:
    claims = TrialClaims(multiprocessing.get_context("forkserver"), trials=10, workers=2)
    assert claims.claim(first=True)
    claims.cancel()  # worker 0 failed
    assert not claims.claim(first=False) and not claims.claim(first=True)


def test_a_study_refuses_to_continue_on_other_data(tmp_path) -> None:
    settings = Settings(home=tmp_path)
    fingerprint = {"data_digest": "aaaa", "seed": 42, "objective": "roc_auc"}
    open_study(settings, "s", fingerprint)
    assert open_study(settings, "s", fingerprint).study_name == "s"  # same objective: continued
    with pytest.raises(ValueError, match=r"study 's' was started with other data_digest"):
        open_study(settings, "s", {**fingerprint, "data_digest": "bbbb"})
    with pytest.raises(ValueError, match=r"started with other objective"):
        open_study(settings, "s", {**fingerprint, "objective": "log_loss"})
    open_study(settings, "old", {"data_digest": "aaaa", "seed": 42})  # recorded before the objective setting
    assert open_study(settings, "old", fingerprint).study_name == "old"  # it tuned on AUC: continued


@pytest.mark.slow  # tunes real CatBoost trials through Optuna and MLflow
def test_pruning_reports_at_the_pruners_decision_steps_and_stops_trials(tmp_path) -> None:
    """Real CatBoost, Optuna and MLflow (SQLite in tmp_path): a trial's curve is reported only where the median
    pruner decides (warm-up, then every PRUNE_INTERVAL trees), and trials below the median stop growing. The progress
    callback hears of every finished trial with the best figure so far."""
    leads = generate_leads(WorldConfig(rows=3000, seed=3))
    spec = infer_spec(leads, "converted", id_column="lead_id", time_column="created_at")
    rows = read_frame(leads, spec, with_target=True).frame().reset_index(drop=True)
    settings = Settings(home=tmp_path)
    settings.train.trials, settings.train.max_iterations = 10, 200
    heard: list[tuple[float, float, str]] = []
    split = time_split(rows, spec, settings.train.valid_fraction, settings.train.holdout_fraction)
    try:
        experiment_id = configure(settings)
        with mlflow.start_run() as parent:
            result = tune(settings, "s", TuningData(spec, split.train, split.valid), parent.info.run_id,
                          experiment_id, settings.tracking_uri, lambda *call: heard.append(call))  # fmt: skip
    finally:
        mlflow.set_tracking_uri(None)  # configure() pointed this process at tmp_path's store
    warmup = settings.train.prune_warmup_iterations
    steps = {step for trial in result.trials for step in trial.intermediate_values}
    assert steps and all(step >= warmup and (step - warmup) % PRUNE_INTERVAL == 0 for step in steps)
    # Progress: each finished trial, then the session's end, with the best validation AUC found up to then.
    assert [done for done, _, _ in heard] == [*range(1, 11), 10] and {total for _, total, _ in heard} == {10}
    for done, _, note in heard:
        best = max(t.value for t in result.trials[:done] if t.state == optuna.trial.TrialState.COMPLETE)
        assert note == f"trial {done} of 10, best valid AUC {best:.4f}"
    pruned = [trial for trial in result.trials if trial.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(
        trial.user_attrs["iterations_grown"] == max(trial.intermediate_values) + 1 for trial in pruned
    )
