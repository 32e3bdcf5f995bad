"""Optuna tuning of CatBoost: one persistent study, pruned trials, 1..N worker processes, each trial a child run.

What a trial optimises: the validation ROC AUC (mean over the folds when small data is cross-validated), or its
log loss (`TrainSettings.objective`: measured worse on the quality benchmark, kept for experiments). Ranking
is what the product sells (scores, tiers, top-k); probabilities are calibrated afterwards on out-of-fold or
validation predictions (`training.select`), so tuning need not trade ranking for calibration. AUC alone is blind to
calibration (it once picked a class-weighted, miscalibrated model): the calibration fitted after selection is what
makes the probability honest, whatever class weights a trial chose.

Studies live in the Optuna storage (a journal file in the home, or `SCORELOOP_OPTUNA_STORAGE`), so running again
with the same study name adds trials to it; the study remembers the data digest and objective settings it was
started with and refuses to continue on anything else.

Reproducibility: with one worker the same seed, data and settings give the same trials, pruning decisions and best
parameters (seeded TPE, deterministic median pruner, CatBoost's fixed seed and thread count). With N workers, which
history a trial is sampled from depends on timing, so trial sequences (and possibly the best parameters) vary
between runs; each worker samples from its own seed stream so that no two propose the same first trials.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from catboost import CatBoostClassifier, Pool

from scoreloop.core.model import make_pool, model_frame
from scoreloop.core.progress import Progress, silent
from scoreloop.core.settings import SearchSpace, Settings, TrainSettings
from scoreloop.core.spec import DatasetSpec
from scoreloop.training.trial_runs import TrialRuns

OBJECTIVE_ATTR = "scoreloop.objective"
# What a trial's fits early-stop on, are pruned on and are scored by, per objective (CatBoost's metric names).
EVAL_METRICS = {"roc_auc": "AUC", "log_loss": "Logloss"}
UNWEIGHTED = ":use_weights=false"  # CatBoost accepts it only where a pool has weights (class or sample)
LABELS = {"roc_auc": "AUC", "log_loss": "log loss"}
PRUNE_INTERVAL = 5  # trees between two pruning decisions


@dataclass(frozen=True)
class TuningData:
    """One fold: the rows a trial fits on and the rows it early-stops on and is scored on, with their weights and,
    for a warm start, the champion's raw log-odds on them (every fit starts there);
    picklable, so worker processes rebuild the same pools. Small data is tuned on several (`tune`'s `data`)."""

    spec: DatasetSpec
    train: pd.DataFrame
    valid: pd.DataFrame
    train_weight: np.ndarray | None = None
    valid_weight: np.ndarray | None = None
    train_baseline: np.ndarray | None = None
    valid_baseline: np.ndarray | None = None

    def pools(self) -> tuple[Pool, Pool]:
        target = self.spec.target
        return (
            make_pool(self.train, self.spec, self.train[target], self.train_weight, self.train_baseline),
            make_pool(self.valid, self.spec, self.valid[target], self.valid_weight, self.valid_baseline),
        )

    def digest(self) -> str:
        """A content hash of exactly what the trials see: features, labels, weights and baselines of both slices."""
        sha = hashlib.sha256()
        for rows, *extras in (
            (self.train, self.train_weight, self.train_baseline),
            (self.valid, self.valid_weight, self.valid_baseline),
        ):
            frame = model_frame(rows, self.spec).assign(_target=rows[self.spec.target].to_numpy())
            sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
            for extra in extras:
                if extra is not None:
                    sha.update(np.asarray(extra, dtype=float).tobytes())
        return sha.hexdigest()[:16]


@dataclass(frozen=True)
class TuningResult:
    """The study (all its trials, from every session) and the trials this session added."""

    study: optuna.Study
    trials: list[optuna.trial.FrozenTrial]
    seconds: float

    def count(self, state: str) -> int:
        """How many of this session's trials ended in `state` ('complete', 'pruned', 'fail')."""
        return sum(trial.state.name.lower() == state for trial in self.trials)


@dataclass(frozen=True)
class TuningJob:
    """What one worker needs to run trials of a tuning session (picklable)."""

    settings: Settings
    study_name: str
    folds: tuple[TuningData, ...]
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    worker: int
    threads: int


class TrialClaims:
    """A session's trials, handed out one at a time to whichever worker is free (shared memory, so it reaches
    worker processes only when they are started).

    One trial stays reserved for every worker that has not claimed yet, so each worker runs at least one: the
    parent's own worker starts at once and would otherwise take every trial of a short session.
    """

    def __init__(self, context: multiprocessing.context.BaseContext, trials: int, workers: int) -> None:
        self._lock = context.Lock()
        self._left = context.RawValue("i", trials)
        self._waiting = context.RawValue("i", workers)  # workers yet to claim their first trial

    def claim(self, first: bool) -> bool:
        """Take one trial; False when none is left for this worker (`first`: it has not run one yet)."""
        with self._lock:
            if self._left.value <= max(0, self._waiting.value - first):
                return False
            self._left.value -= 1
            self._waiting.value -= first
            return True

    def cancel(self) -> None:
        """Hand out no more trials: a worker failed, so the others stop after their current trial."""
        with self._lock:
            self._left.value = 0


def suggest_params(trial: optuna.Trial, space: SearchSpace) -> dict:
    """One point of the declared search space."""
    return {
        "depth": trial.suggest_int("depth", *space.depth),
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", *space.l2_leaf_reg, log=True),
        "border_count": trial.suggest_categorical("border_count", space.border_count),
        "one_hot_max_size": trial.suggest_categorical("one_hot_max_size", space.one_hot_max_size),
        "auto_class_weights": trial.suggest_categorical("auto_class_weights", space.auto_class_weights),
    }


def eval_metric(objective: str, params: dict, valid: Pool | None) -> str:
    """CatBoost's metric for `objective`. Log loss is computed without weights wherever there are any (class weights,
    inverse propensities), as AUC is by default: a class-weighted trial's log loss is then its real one, comparable
    with an unweighted trial's."""
    metric = EVAL_METRICS[objective]
    weighted = params.get("auto_class_weights", "None") != "None" or (
        valid is not None and np.any(np.asarray(valid.get_weight()) != 1)
    )
    return metric + UNWEIGHTED if objective == "log_loss" and weighted else metric


def objective_curve(curves: dict[str, list[float]], objective: str) -> list[float]:
    """The objective's validation curve among the metrics CatBoost reports (named with or without `UNWEIGHTED`)."""
    metric = EVAL_METRICS[objective]
    return curves.get(metric + UNWEIGHTED) or curves[metric]


def fit_catboost(
    params: dict,
    train: Pool,
    valid: Pool | None,
    config: TrainSettings,
    iterations: int | None = None,
    *,
    threads: int | None = None,
    callbacks: list | None = None,
) -> CatBoostClassifier:
    """Fit with early stopping on `valid` (or for a fixed number of `iterations` when refitting without one).

    Every fit starts from the base rate (`boost_from_average`), not from 0.5: a fit that early stopping ends after
    a few trees still predicts about the observed rate. A warm-started pool (one with a baseline) starts from the
    champion's log-odds instead.
    """
    model = CatBoostClassifier(
        **params,
        iterations=iterations or config.max_iterations,
        boost_from_average=train.get_baseline().size == 0,
        eval_metric=eval_metric(config.objective, params, valid),
        random_seed=config.seed,
        thread_count=threads or config.threads,
        allow_writing_files=False,
        verbose=False,
    )
    if valid is None:
        return model.fit(train)
    return model.fit(
        train,
        eval_set=valid,
        early_stopping_rounds=config.early_stopping_rounds,
        use_best_model=True,
        callbacks=callbacks,
    )


def optuna_storage(settings: Settings) -> optuna.storages.BaseStorage | str:
    """A journal file in the home by default (safe for several local processes); any URL the settings give."""
    if settings.optuna_storage:
        return settings.optuna_storage
    path = Path(settings.ensure_home()) / "optuna.journal"
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def make_pruner(config: TrainSettings) -> optuna.pruners.BasePruner:
    """Median pruning on the validation AUC curve: a trial whose AUC after N trees is below the median of completed
    trials after N trees stops (after `prune_after_trials` completed trials and `prune_warmup_iterations` trees)."""
    if not config.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=config.prune_after_trials,
        n_warmup_steps=config.prune_warmup_iterations,
        interval_steps=PRUNE_INTERVAL,
    )


class PruningCallback:
    """CatBoost callback: reports the validation AUC to the trial at the pruner's decision steps only, and stops the
    fit when the pruner says so.

    optuna_integration's callback reports after every tree, and every report is a synced write to the study's
    storage plus a read for the decision that the pruner only takes every `PRUNE_INTERVAL` trees.
    """

    def __init__(self, trial: optuna.Trial, config: TrainSettings) -> None:
        self.trial = trial
        self.objective = config.objective
        self.warmup = config.prune_warmup_iterations
        self.pruned = False
        self.offset = 0  # fold k of a cross-validated trial reports at steps k * max_iterations + tree

    def after_iteration(self, info) -> bool:
        step = info.iteration - 1  # the pruner counts steps (trees) from 0
        if step < self.warmup or (step - self.warmup) % PRUNE_INTERVAL:
            return True
        self.trial.report(objective_curve(info.metrics["validation"], self.objective)[-1], self.offset + step)
        self.pruned = self.trial.should_prune()
        return not self.pruned


def make_sampler(config: TrainSettings, trials_so_far: int, worker: int) -> optuna.samplers.TPESampler:
    """Seeded multivariate TPE; the seed also depends on the study's size and the worker, so a resumed study or a
    second worker does not replay the first random trials."""
    seed = int(np.random.SeedSequence([config.seed, trials_so_far, worker]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.startup_trials, multivariate=True)


def objective_fingerprint(config: TrainSettings, folds: Sequence[TuningData]) -> dict:
    """What makes trial values comparable: the data (every fold) and everything that shapes one trial's fit."""
    digests = [fold.digest() for fold in folds]
    return {
        "data_digest": digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()[:16],
        "search": config.search.model_dump(mode="json"),
        "max_iterations": config.max_iterations,
        "early_stopping_rounds": config.early_stopping_rounds,
        "seed": config.seed,
        "objective": config.objective,
    }


def open_study(settings: Settings, study_name: str, fingerprint: dict) -> optuna.Study:
    """Create the study or continue it; refuse to continue it on other data or another objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if settings.train.objective == "roc_auc" else "minimize"
    study = optuna.create_study(
        study_name=study_name, storage=optuna_storage(settings), direction=direction, load_if_exists=True
    )
    fingerprint = json.loads(json.dumps(fingerprint))  # as the storage gives it back: tuples become lists
    recorded = study.user_attrs.get(OBJECTIVE_ATTR)
    if recorded is None:
        study.set_user_attr(OBJECTIVE_ATTR, fingerprint)
        return study
    recorded = {"objective": "roc_auc", **recorded}  # studies from before the objective setting tuned on AUC
    if recorded != fingerprint:
        changed = sorted(key for key in fingerprint if recorded.get(key) != fingerprint[key])
        raise ValueError(
            f"study {study_name!r} was started with other {', '.join(changed)} "
            f"({ {k: recorded.get(k) for k in changed} }): its trials are not comparable with this run's; "
            "keep the data and settings to continue it, or pass a new --study name"
        )
    return study


def run_trials(job: TuningJob, claims: TrialClaims, after_trial: Callable[[optuna.Study], None] | None = None) -> int:
    """Run trials of the study in this process while `claims` hands them out (the body of every worker); returns
    the count run. `after_trial` is called with the study after each trial this process ran."""
    config = job.settings.train
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    pools = [fold.pools() for fold in job.folds]
    study = optuna.load_study(
        study_name=job.study_name, storage=optuna_storage(job.settings), pruner=make_pruner(config)
    )
    study.sampler = make_sampler(config, len(study.get_trials(deepcopy=False)), job.worker)
    runs = TrialRuns(
        job.tracking_uri,
        job.experiment_id,
        job.parent_run_id,
        {"scoreloop.study": job.study_name, "scoreloop.worker": str(job.worker), "scoreloop.pid": str(os.getpid())},
    )

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, config.search)
        run_id = runs.start(trial.number, params)
        trial.set_user_attr("mlflow_run_id", run_id)
        pruning = PruningCallback(trial, config) if config.pruning else None
        try:
            folds = fit_folds(params, pools, config, job.threads, pruning)
        except Exception as exc:
            runs.finish(run_id, "failed", {}, {"scoreloop.error": repr(exc)[:1000]})
            raise
        value = f"valid_{config.objective}"
        metrics = {
            value: float(np.mean([fold[value] for fold in folds])),
            "best_iteration": round(float(np.mean([fold["best_iteration"] for fold in folds]))),
            "iterations_grown": sum(fold["iterations_grown"] for fold in folds),
        }
        if len(pools) > 1:
            metrics |= {f"fold_{k}_{name}": v for k, fold in enumerate(folds) for name, v in fold.items()}
        trial.set_user_attr("best_iteration", int(metrics["best_iteration"]))
        trial.set_user_attr("iterations_grown", metrics["iterations_grown"])
        pruned = pruning is not None and pruning.pruned
        runs.finish(run_id, "pruned" if pruned else "complete", metrics)
        if pruned:
            raise optuna.TrialPruned(f"pruned after {metrics['iterations_grown']} trees")
        return metrics[value]

    ran = 0
    try:
        while claims.claim(first=ran == 0):
            study.optimize(objective, n_trials=1)
            ran += 1
            if after_trial is not None:
                after_trial(study)
    except BaseException:
        claims.cancel()
        raise
    return ran


def report_trials(study: optuna.Study, trials_before: int, trials: int, progress: Progress, objective: str) -> None:
    """Report the session's finished trials out of `trials`, with the study's best validation figure so far."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    finished = study.get_trials(deepcopy=False, states=states)
    done = sum(trial.number >= trials_before for trial in finished)
    values = [trial.value for trial in finished if trial.state == optuna.trial.TrialState.COMPLETE]
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    best = f", best valid {LABELS[objective]} {pick(values):.4f}" if values else ""
    progress(done, trials, f"trial {done} of {trials}{best}")


def fit_folds(
    params: dict, pools: list[tuple[Pool, Pool]], config: TrainSettings, threads: int, pruning: PruningCallback | None
) -> list[dict[str, float]]:
    """Fit one trial's parameters on each fold (stopping at the first fold the pruner stops); per fold the
    validation figure of the objective at the kept tree (`valid_<objective>`), that tree and the trees grown.

    CatBoost's validation figure at the kept (best) tree equals roc_auc_score (log_loss) on the model's validation
    predictions: reading it saves a prediction pass and keeps scikit-learn out of the worker processes.
    """
    figures = []
    for k, (train, valid) in enumerate(pools):
        if pruning is not None:
            pruning.offset = k * config.max_iterations
        model = fit_catboost(params, train, valid, config, threads=threads, callbacks=[pruning] if pruning else None)
        figures.append(
            {
                f"valid_{config.objective}": objective_curve(model.get_evals_result()["validation"], config.objective)[
                    model.get_best_iteration()
                ],
                "best_iteration": model.get_best_iteration(),
                "iterations_grown": len(objective_curve(model.get_evals_result()["validation"], config.objective)),
            }
        )
        if pruning is not None and pruning.pruned:
            break
    return figures


_claims: TrialClaims | None = None  # a pool worker's handle on the session's claims (set by its initializer)


def _adopt_claims(claims: TrialClaims) -> None:
    global _claims
    _claims = claims


def _run_pooled(job: TuningJob) -> int:
    return run_trials(job, _claims)


def worker_context() -> multiprocessing.context.BaseContext:
    """Workers fork from a server process that imported this module once (`start_worker_server`): a worker starts in
    milliseconds instead of seconds of imports, from a process that never opened a store or trained (forking the
    command itself would copy MLflow's connections and CatBoost's threads and locks)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def start_worker_server(workers: int) -> None:
    """Start the worker server now when tuning will need worker processes, so that its imports run while the
    command reads and splits its data (the pool would start it only at the first worker); idempotent, and a no-op
    for one worker."""
    if workers > 1:
        worker_context()
        multiprocessing.forkserver.ensure_running()


def tune(
    settings: Settings,
    study_name: str,
    data: TuningData | Sequence[TuningData],
    parent_run_id: str,
    experiment_id: str,
    tracking_uri: str,
    progress: Progress = silent,
) -> TuningResult:
    """Add `settings.train.trials` trials to the study in `settings.train.workers` processes (this one included).

    `data` is one fold (the validation slice) or several (small-data cross-validation: a trial's value is its mean
    validation AUC over them, and each fold's figures are logged on its run as `fold_<k>_*`). Every trial is a
    child run of `parent_run_id` whichever process ran it. Worker processes share the CPU threads: each fits with
    `threads // workers` threads. `progress` hears of the session's finished trials (from every worker, counted
    after each trial of this process and at the end) with the study's best validation AUC so far.
    """
    folds = (data,) if isinstance(data, TuningData) else tuple(data)
    config = settings.train
    if config.workers > 1 and (settings.optuna_storage or "").startswith("sqlite"):
        raise ValueError(
            "parallel workers need the journal file (the default) or a server database for Optuna, not SQLite: "
            f"unset SCORELOOP_OPTUNA_STORAGE or point it at PostgreSQL/MySQL (got {settings.optuna_storage!r})"
        )
    started = time.monotonic()
    study = open_study(settings, study_name, objective_fingerprint(config, folds))
    trials_before = len(study.get_trials(deepcopy=False))
    workers = min(config.workers, config.trials)
    threads = max(1, config.threads // workers)
    jobs = [
        TuningJob(settings, study_name, folds, parent_run_id, experiment_id, tracking_uri, worker, threads)
        for worker in range(workers)
    ]
    context = worker_context()
    claims = TrialClaims(context, config.trials, workers)
    # This process is worker 0: its trials start at once, while workers 1.. are forked.
    pool = ProcessPoolExecutor(
        max_workers=max(1, workers - 1), mp_context=context, initializer=_adopt_claims, initargs=(claims,)
    )
    with pool:
        others = [pool.submit(_run_pooled, job) for job in jobs[1:]]
        run_trials(
            jobs[0],
            claims,
            lambda study: report_trials(study, trials_before, config.trials, progress, config.objective),
        )
        for done in others:
            done.result()
    report_trials(study, trials_before, config.trials, progress, config.objective)
    session = [trial for trial in study.get_trials() if trial.number >= trials_before]
    return TuningResult(study, session, time.monotonic() - started)
