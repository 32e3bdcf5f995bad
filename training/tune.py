"""Optuna tuning of CatBoost: one study, each trial a nested MLflow child run under the study's parent run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
from catboost import CatBoostClassifier, Pool

from scoreloop.settings import Settings, TrainSettings
from training.metrics import binary_metrics


def suggest_params(trial: optuna.Trial) -> dict:
    """The search space: ranges that suit tabular business data of thousands to millions of rows."""
    return {
        "depth": trial.suggest_int("depth", 4, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 1.0, 20.0, log=True),
        "border_count": trial.suggest_categorical("border_count", [64, 128, 254]),
        "one_hot_max_size": trial.suggest_categorical("one_hot_max_size", [2, 10]),
    }


def fit_catboost(params: dict, train: Pool, valid: Pool | None, config: TrainSettings, iterations: int | None = None):
    """Fit with early stopping on `valid` (or for a fixed number of `iterations` when refitting without one)."""
    model = CatBoostClassifier(
        **params,
        iterations=iterations or config.max_iterations,
        eval_metric="AUC",
        random_seed=config.seed,
        thread_count=config.threads,
        allow_writing_files=False,
        verbose=False,
    )
    if valid is None:
        return model.fit(train)
    return model.fit(train, eval_set=valid, early_stopping_rounds=config.early_stopping_rounds, use_best_model=True)


def optuna_storage(settings: Settings) -> optuna.storages.BaseStorage | str:
    """A journal file in the home by default (safe for several local processes); any URL the settings give."""
    if settings.optuna_storage:
        return settings.optuna_storage
    path = Path(settings.ensure_home()) / "optuna.journal"
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def tune(
    settings: Settings, study_name: str, train: Pool, valid: Pool, parent_run_id: str, experiment_id: str
) -> optuna.Study:
    """Run `settings.train.trials` seeded TPE trials; each logs params and validation metrics in a child run."""
    config = settings.train
    y_valid = valid.get_label()

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial)
        with mlflow.start_run(
            run_name=f"trial-{trial.number}",
            experiment_id=experiment_id,
            nested=True,
            parent_run_id=parent_run_id,
            tags={"scoreloop.study": study_name, "scoreloop.trial": str(trial.number)},
        ) as run:
            model = fit_catboost(params, train, valid, config)
            metrics = binary_metrics(y_valid, model.predict_proba(valid)[:, 1])
            mlflow.log_params(params)
            mlflow.log_metrics({f"valid_{k}": v for k, v in metrics.items()})
            mlflow.log_metric("best_iteration", model.get_best_iteration())
            trial.set_user_attr("best_iteration", int(model.get_best_iteration()))
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
        return metrics["roc_auc"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=optuna_storage(settings),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        load_if_exists=True,
    )
    study.optimize(objective, n_trials=config.trials)
    return study
