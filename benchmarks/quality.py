"""Quality benchmark: the champion `scoreloop train` registers against CatBoost's defaults and HistGradientBoosting,
on the same test rows of real tables shipped in PyPI packages (benchmarks/tables.py), at a small and a larger size.

    .venv/bin/python -m benchmarks.quality [--tables adult,credit,caravan,lending] [--trials 10] [--seed 0]

For each table and size: a seeded stratified sample, one stratified random split into train (75%) and test (25%).
None of the tables has a time column, so the split (and the row order training splits again) is artificial; the
test rows are never seen by training, tuning or the baselines. The spec is inferred from the train rows as a user
would (`infer_spec`), both sides are read by the one engine (`ingest_table`), and:
- the champion: `train_rows` with `--trials` trials and one worker into a throwaway home (MLflow in SQLite), then
  the registered challenger loaded as a `ScoringModel` scores the test rows (with whatever calibration its card
  carries);
- CatBoost's defaults, fitted once on all train rows with the same seed and threads: the time reference;
- HistGradientBoosting's defaults on the same rows, categorical columns ordinal-encoded as training's baseline does.
Targets (issue 14): champion AUC >= max(defaults, HGB) - 0.002; champion ECE <= 0.03; train wall time within 3x the
defaults' fit for at most 10,000 train rows. Beside each target, what the case can show: the paired bootstrap 95%
interval of champion - max(baselines) AUC on the test rows; the ECE noise floor (the mean ECE of a perfectly
calibrated model on these test rows: labels drawn from the champion's own probabilities); the time floor (the
seconds selection spent fitting the defaults candidate on its folds, over one defaults fit).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from benchmarks.tables import LOADERS, Table
from scoreloop.core.infer import infer_spec
from scoreloop.core.ingest import ingest_table, stored_table
from scoreloop.core.metrics import bootstrap_interval, expected_calibration_error, roc_auc
from scoreloop.core.model import make_pool
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.tracking import CHALLENGER, configure, load_registered
from scoreloop.training.baselines import HgbFrames
from scoreloop.training.train import train_rows
from scoreloop.training.tune import fit_catboost

# (small, larger) sample sizes; None is the whole table. credit and caravan have no larger sample than themselves.
SIZES = {"adult": (5_000, 20_000), "credit": (2_500, None), "caravan": (2_500, None), "lending": (3_000, None)}
TEST_FRACTION = 0.25
AUC_SLACK = 0.002
MAX_ECE = 0.03
MAX_TIME_RATIO = 3.0
TIMED_ROWS = 10_000  # the time target applies up to this many train rows
ECE_DRAWS = 200  # label draws of the ECE noise floor
INTERVAL_ROUNDS = 1000  # bootstrap rounds of the AUC gap's interval


@dataclass(frozen=True)
class Case:
    """One table at one size: typed train and test rows read with the spec inferred from the raw train rows."""

    table: str
    size: str
    spec: DatasetSpec
    train: pd.DataFrame
    test: pd.DataFrame
    refused: int  # raw rows the engine refused (train + test)


def sample_rows(frame: pd.DataFrame, target: str, rows: int | None, seed: int) -> pd.DataFrame:
    """A stratified random sample of `rows` rows (the whole frame when None or not smaller)."""
    if rows is None or rows >= len(frame):
        return frame.reset_index(drop=True)
    kept, _ = train_test_split(frame, train_size=rows, stratify=frame[target], random_state=seed)
    return kept.reset_index(drop=True)


def make_case(table: Table, size: str, rows: int | None, seed: int) -> Case:
    """Sample, split, infer the spec on the raw train rows, read both sides through ingest."""
    frame = sample_rows(table.frame, table.target, rows, seed)
    raw_train, raw_test = train_test_split(
        frame, test_size=TEST_FRACTION, stratify=frame[table.target], random_state=seed
    )
    spec = infer_spec(raw_train, table.target, positive_label=table.positive_label, name=table.name)
    train, test = ingest_table(stored_table(raw_train), spec), ingest_table(stored_table(raw_test), spec)
    return Case(table.name, size, spec, train.rows, test.rows, len(train.quarantined) + len(test.quarantined))


def lower_floor(settings: Settings, rows: pd.DataFrame, spec: DatasetSpec) -> str | None:
    """Lower training's data floor (min rows, min positives) to what a small sample has; say so, or None."""
    config = settings.train
    have = {"min_rows": len(rows), "min_positives": int(rows[spec.target].sum())}
    lowered = {name: value for name, value in have.items() if value < getattr(config, name)}
    if not lowered:
        return None
    notes = [f"{name} {getattr(config, name)} -> {value}" for name, value in lowered.items()]
    for name, value in lowered.items():
        setattr(config, name, value)
    return "data floor lowered: " + ", ".join(notes)


def train_champion(settings: Settings, case: Case) -> tuple[np.ndarray, float, dict[str, str]]:
    """Train as `scoreloop train` does, load the registered challenger, score the test rows; returns the test
    probabilities, the training wall time and what the run records about its choice (`run_record`)."""
    started = time.perf_counter()
    result = train_rows(settings, case.spec, case.train, source=f"benchmark {case.table} {case.size}")
    seconds = time.perf_counter() - started
    proba = load_registered(settings, CHALLENGER).predict_proba(case.test)
    trials = ", ".join(f"{k} {v}" for k, v in result.trials.items())
    return proba, seconds, {"trials": trials, **run_record(result.run_id)}


def run_record(run_id: str) -> dict[str, str]:
    """What the parent run logs about the model it chose, where it logs it: `selection.*` params and tags, the
    calibration method, and the candidates' `selection_*` scores (per-fold scores left out)."""
    data = MlflowClient().get_run(run_id).data
    chosen = {**data.params, **data.tags}
    record = {k: v for k, v in chosen.items() if k.startswith("selection.") or k == "model.calibration"}
    scores = {k: f"{v:.4f}" for k, v in data.metrics.items() if k.startswith("selection_") and "_fold_" not in k}
    return dict(sorted(record.items())) | dict(sorted(scores.items()))


def warm_up(settings: Settings, case: Case) -> None:
    """One untimed 1-trial run of the whole pipeline, so that no timed run pays the first use of its lazy imports
    (several seconds: as much as a small table's defaults fit)."""
    warm = settings.model_copy(
        update={"model_name": "quality-warm-up", "train": settings.train.model_copy(update={"trials": 1})}, deep=True
    )
    lower_floor(warm, case.train, case.spec)
    train_rows(warm, case.spec, case.train, source="benchmark warm-up")


def fit_defaults(settings: Settings, case: Case) -> tuple[np.ndarray, float]:
    """CatBoost with its defaults (1,000 trees, automatic learning rate), fitted once; its wall time."""
    started = time.perf_counter()
    model = fit_catboost({}, make_pool(case.train, case.spec, case.train[case.spec.target]), None, settings.train)
    seconds = time.perf_counter() - started
    return model.predict_proba(make_pool(case.test, case.spec))[:, 1], seconds


def fit_hgb(settings: Settings, case: Case) -> np.ndarray:
    """HistGradientBoostingClassifier with its defaults on ordinal-encoded categoricals (text columns left out)."""
    frames = HgbFrames(case.spec, case.train)
    model = HistGradientBoostingClassifier(
        categorical_features=frames.categorical_mask, random_state=settings.train.seed
    ).fit(frames.transform(case.train), case.train[case.spec.target].to_numpy())
    return model.predict_proba(frames.transform(case.test))[:, 1]


def ece_floor(proba: np.ndarray, seed: int) -> float:
    """The mean ECE of a perfectly calibrated model on these rows: labels drawn from `proba` itself; an ECE target
    below it cannot be shown on this many rows."""
    rng = np.random.default_rng(seed)
    return float(np.mean([expected_calibration_error(rng.random(len(proba)) < proba, proba) for _ in range(ECE_DRAWS)]))


def gap_interval(y: np.ndarray, champion: np.ndarray, baselines: list[np.ndarray], seed: int) -> tuple[float, float]:
    """Paired bootstrap 95% interval of champion AUC - max(baselines' AUC), all scored on the same resampled rows."""

    def gap(rows: np.ndarray) -> float:
        return roc_auc(y[rows], champion[rows]) - max(roc_auc(y[rows], b[rows]) for b in baselines)

    return bootstrap_interval(gap, len(y), 0.95, INTERVAL_ROUNDS, seed)


def figures(
    case: Case, champion: np.ndarray, defaults: np.ndarray, hgb: np.ndarray, seconds: tuple, record: dict, seed: int
) -> dict:
    """One result row: AUCs and ECEs on the test rows with what the rows can show (the gap's interval, the ECE
    floor), wall times and the time floor, the candidate selected, a PASS/MISS per target."""
    y = case.test[case.spec.target].to_numpy()
    auc = {name: roc_auc(y, p) for name, p in (("champion", champion), ("defaults", defaults), ("hgb", hgb))}
    gap = auc["champion"] - max(auc["defaults"], auc["hgb"])
    low, high = gap_interval(y, champion, [defaults, hgb], seed)
    ece = expected_calibration_error(y, champion)
    train_s, defaults_s = seconds
    timed = len(case.train) <= TIMED_ROWS
    return {
        "table": case.table,
        "size": case.size,
        "train/test rows": f"{len(case.train)}/{len(case.test)}",
        "positives %": 100 * float(np.mean(np.concatenate([case.train[case.spec.target], y]))),
        "champion AUC": auc["champion"],
        "defaults AUC": auc["defaults"],
        "HGB AUC": auc["hgb"],
        "champion - max": gap,
        "95% interval": f"{low:+.4f} to {high:+.4f}",
        "champion ECE": ece,
        "ECE floor": ece_floor(champion, seed),
        "defaults ECE": expected_calibration_error(y, defaults),
        "train s": train_s,
        "defaults s": defaults_s,
        "ratio": train_s / defaults_s,
        "time floor": float(record.get("selection_defaults_seconds", "nan")) / defaults_s,
        "selected": record.get("selection.winner", "not logged"),
        "AUC": "PASS" if gap >= -AUC_SLACK else "MISS",
        "ECE": "PASS" if ece <= MAX_ECE else "MISS",
        "time": ("PASS" if train_s <= MAX_TIME_RATIO * defaults_s else "MISS") if timed else "n/a",
    }


def bench_case(settings: Settings, case: Case) -> tuple[dict, list[str]]:
    """Fit the baselines and the champion on one case; its result row and notes."""
    notes = [f"{len(case.spec.numeric)} numeric, {len(case.spec.categorical)} categorical, {len(case.spec.text)} text"]
    if case.refused:
        notes.append(f"{case.refused} raw rows refused by the inferred spec (not scored by any model)")
    if floor := lower_floor(settings, case.train, case.spec):
        notes.append(floor)
    defaults, defaults_s = fit_defaults(settings, case)
    hgb = fit_hgb(settings, case)
    champion, train_s, record = train_champion(settings, case)
    notes.append("; ".join(f"{k} {v}" for k, v in record.items()))
    row = figures(case, champion, defaults, hgb, (train_s, defaults_s), record, settings.train.seed)
    return row, notes


def markdown(rows: list[dict]) -> str:
    """A GitHub-style table: AUCs and ECEs with four decimals, seconds and percentages with one, ratios with two."""
    digits = {"%": 1, "AUC": 4, "max": 4, "ECE": 4, "ECE floor": 4, "time floor": 2, " s": 1, "ratio": 2}

    def cell(column: str, value: object) -> str:
        places = next((d for suffix, d in digits.items() if column.endswith(suffix)), None)
        return f"{value:.{places}f}" if places is not None and isinstance(value, float) else str(value)

    lines = [list(rows[0]), ["---"] * len(rows[0])]
    lines += [[cell(column, value) for column, value in row.items()] for row in rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def cases(names: list[str], max_rows: int | None) -> list[tuple[Table, str, int | None]]:
    """(table, size label, rows) for every table and size, rows capped at `max_rows` for smoke runs."""
    chosen = []
    for name in names:
        table = LOADERS[name]()
        for size, rows in zip(("small", "larger"), SIZES[name], strict=True):
            rows = min(rows or len(table.frame), max_rows or len(table.frame), len(table.frame))
            chosen.append((table, size, rows))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default=",".join(SIZES), help=f"Comma-separated, of {', '.join(SIZES)}.")
    parser.add_argument("--trials", type=int, default=10, help="Tuning trials of each champion.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the samples, splits and models.")
    parser.add_argument("--max-rows", type=int, default=None, help="Cap every sample (smoke runs only).")
    args = parser.parse_args()
    names = args.tables.split(",")
    if unknown := sorted(set(names) - set(SIZES)):
        parser.error(f"unknown tables {unknown}; choose from {', '.join(SIZES)}")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the runs are throwaway: they stay in the temporary home
    started = time.monotonic()
    results, notes = [], []
    with tempfile.TemporaryDirectory() as home:
        for index, (table, size, rows) in enumerate(cases(names, args.max_rows)):
            case = make_case(table, size, rows, args.seed)
            settings = Settings(home=Path(home), model_name=f"quality-{table.name}-{size}")
            settings.train.trials, settings.train.workers, settings.train.seed = args.trials, 1, args.seed
            configure(settings)  # the store exists before the timed run, as for any run but a home's first
            if index == 0:
                warm_up(settings, case)
            row, case_notes = bench_case(settings, case)
            results.append(row)
            notes += [f"{table.name} {size}: {note}" for note in case_notes]
            print(markdown([row]).splitlines()[-1], flush=True)  # progress: the row as soon as it is known
    print()
    print(markdown(results))
    print()
    print("\n".join(notes))
    print(
        f"\ntargets: champion AUC >= max(defaults, HGB) - {AUC_SLACK}; champion ECE <= {MAX_ECE}; train wall time "
        f"<= {MAX_TIME_RATIO:g}x the defaults' fit for <= {TIMED_ROWS:,} train rows. {args.trials} trials, seed "
        f"{args.seed}; {len(results)} cases in {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
