"""Model selection: the servable candidates scored on the same folds with the same recipe, the chosen one refit and
calibrated.

Serving, SHAP reasons and the model card are CatBoost's, so the candidates are CatBoost models: the tuned
parameters, CatBoost's defaults, (when tuning chose class weights) the tuned parameters without them, and `blend`:
the best tuned candidate and the defaults averaged in log-odds (`catboost.sum_models`, one CatBoost model). Each
fitted candidate is fitted on every fold of `tuning_folds` and scored on the fold's validation rows: one honest
estimate for all of them (the tuned model's best trial value is not one: it is the maximum of many noisy values);
the blend's out-of-fold predictions are its parts' averaged, so it costs no fit.

The defaults are what a user gets in one line, so they are the choice unless a candidate beats them clearly: its
lead in mean validation AUC must keep a lower bound above 0 in a paired bootstrap of the out-of-fold rows
(`TrainSettings.selection_level`). Among those that do, the surest lead (highest lower bound) wins. The winner
is refit on train+valid with the mean number of trees the folds kept, and its out-of-fold predictions (rows no fold
model trained on) fit the probability calibration.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier

from scoreloop.core.calibration import Calibration, fit_calibration, logit, sigmoid
from scoreloop.core.metrics import bootstrap_interval, roc_auc
from scoreloop.core.model import make_pool
from scoreloop.core.settings import TrainSettings
from scoreloop.core.spec import DatasetSpec
from scoreloop.training.split import slice_weights
from scoreloop.training.tune import TuningData, fit_catboost
from scoreloop.training.warm import on_top, start_values, summed

SELECTION_METRIC = "roc_auc"
DEFAULT_TREES = 1000  # CatBoostClassifier's own default `iterations`
REFERENCE = "defaults"  # the one-liner every other candidate must beat clearly
BLEND = "blend"


@dataclass(frozen=True)
class Candidate:
    """One candidate's parameters as refit (CatBoost's automatic learning rate made explicit), its validation AUC
    per fold, the trees its refit grows, its out-of-fold labels, raw probabilities, weights and fold of each row,
    the seconds its fold fits took, and (a blend) the candidates it averages."""

    name: str
    params: dict
    fold_scores: tuple[float, ...]
    iterations: int
    y: np.ndarray
    raw: np.ndarray
    weight: np.ndarray | None
    fold: np.ndarray
    seconds: float = 0.0
    parts: tuple[Candidate, ...] = field(default=())

    @property
    def score(self) -> float:
        """Mean validation AUC over the folds: the figure candidates are compared on."""
        return float(np.mean(self.fold_scores))


def candidate_params(tuned: dict, allowed: Sequence[str] = ("tuned", "defaults")) -> dict[str, dict]:
    """The fitted candidates by name: tuned, and tuned without class weights if it had any; CatBoost defaults
    (`allowed` says which of `tuned` and `defaults` take part)."""
    candidates = {}
    if "tuned" in allowed:
        candidates["tuned"] = dict(tuned)
        if tuned.get("auto_class_weights", "None") != "None":
            candidates["tuned_unweighted"] = {**tuned, "auto_class_weights": "None"}
    if REFERENCE in allowed:
        candidates[REFERENCE] = {}
    return candidates


def cross_validate(name: str, params: dict, folds: Sequence[TuningData], config: TrainSettings) -> Candidate:
    """Fit `params` on each fold with early stopping; score and predict each fold's validation rows.

    `defaults` is CatBoost as a user gets it in one line: its own tree count and automatic learning rate, no early
    stopping (on small folds, stopping on a noisy validation AUC underfits it: 0.72 against 0.81 on 1,500 synthetic
    rows), so the champion is never worse than that one-liner on the estimate it is chosen by."""
    one_liner = name == REFERENCE
    started = time.perf_counter()
    scores, trees, ys, raws, weights, learning_rate = [], [], [], [], [], None
    for fold in folds:
        train, valid = fold.pools()
        model = fit_catboost(params, train, None if one_liner else valid, config, DEFAULT_TREES if one_liner else None)
        raw = model.predict_proba(valid)[:, 1]
        y = fold.valid[fold.spec.target].to_numpy()
        scores.append(roc_auc(y, raw, fold.valid_weight))
        trees.append(DEFAULT_TREES if one_liner else model.get_best_iteration() + 1)
        ys.append(y)
        raws.append(raw)
        weights.append(fold.valid_weight)
        learning_rate = model.get_all_params()["learning_rate"]  # the last (largest) fold's: closest to the refit
    return Candidate(
        name=name,
        params=params if one_liner else {**params, "learning_rate": learning_rate},  # one-liner: automatic on refit
        fold_scores=tuple(scores),
        iterations=round(float(np.mean(trees))),
        y=np.concatenate(ys),
        raw=np.concatenate(raws),
        weight=None if weights[0] is None else np.concatenate(weights),
        fold=np.concatenate([np.full(len(y), k) for k, y in enumerate(ys)]),
        seconds=time.perf_counter() - started,
    )


def fold_scores(candidate: Candidate, raw: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Validation AUC per fold of `raw` (out-of-fold predictions aligned with `candidate`'s rows), on `rows` (positions,
    e.g. a bootstrap resample) or all of them."""
    rows = np.arange(len(raw)) if rows is None else rows
    folds = candidate.fold[rows]
    weight = None if candidate.weight is None else candidate.weight[rows]
    return np.array(
        [
            roc_auc(
                candidate.y[rows][folds == k], raw[rows][folds == k], None if weight is None else weight[folds == k]
            )
            for k in np.unique(candidate.fold)
        ]
    )


def blend(parts: Sequence[Candidate]) -> Candidate:
    """The parts averaged in log-odds with equal weights: out-of-fold, what their `sum_models` refit predicts."""
    raw = sigmoid(np.mean([logit(part.raw) for part in parts], axis=0))
    first = parts[0]
    return Candidate(
        name=BLEND,
        params={"blend": "+".join(part.name for part in parts)},
        fold_scores=tuple(fold_scores(first, raw)),
        iterations=sum(part.iterations for part in parts),
        y=first.y,
        raw=raw,
        weight=first.weight,
        fold=first.fold,
        parts=tuple(parts),
    )


def with_blend(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates and the blend of the best tuned one with the defaults (when both are among them)."""
    tuned = [c for c in candidates if c.name.startswith("tuned")]
    reference = [c for c in candidates if c.name == REFERENCE]
    if not tuned or not reference:
        return list(candidates)
    return [*candidates, blend([max(tuned, key=lambda c: c.score), reference[0]])]


def lead_interval(
    candidate: Candidate, reference: Candidate, level: float, rounds: int, seed: int
) -> tuple[float, float]:
    """Paired bootstrap interval of `candidate`'s lead in mean fold AUC over `reference`: the out-of-fold rows are
    resampled once per round and both are scored on the same draw, so the noise the two share cancels."""

    def lead(rows: np.ndarray) -> float:
        return float(np.mean(fold_scores(candidate, candidate.raw, rows) - fold_scores(reference, reference.raw, rows)))

    return bootstrap_interval(lead, len(candidate.y), level, rounds, seed)


def choose(candidates: Sequence[Candidate], config: TrainSettings) -> tuple[Candidate, dict[str, float]]:
    """The defaults unless another candidate's lead over them clears 0 at the low end of its `selection_level`
    interval; of those that do, the one whose lead is surest (the highest low end, not the highest mean: a blend
    that is almost as good as the tuned model on average but more steadily better than the defaults wins). Without
    the defaults, the best mean (the first of equals). Returns the winner and each challenger's
    `selection_<name>_lead_low`."""
    reference = next((c for c in candidates if c.name == REFERENCE), None)
    if reference is None:
        return max(candidates, key=lambda c: c.score), {}
    lows = {
        c.name: lead_interval(c, reference, config.selection_level, config.selection_rounds, config.seed)[0]
        for c in candidates
        if c is not reference
    }
    clear = [c for c in candidates if lows.get(c.name, 0.0) > 0]
    winner = max(clear, key=lambda c: lows[c.name]) if clear else reference
    return winner, {f"selection_{name}_lead_low": low for name, low in lows.items()}


def selection_figures(candidates: Sequence[Candidate], winner: Candidate) -> dict[str, float]:
    """`selection_<candidate>_roc_auc` (mean over folds), `selection_<candidate>_fold_<k>_roc_auc` with several
    folds, `selection_<candidate>_seconds` (its fold fits), and `selection_margin`: the winner's lead over the best
    other candidate."""
    figures = {f"selection_{c.name}_{SELECTION_METRIC}": c.score for c in candidates}
    figures |= {f"selection_{c.name}_seconds": c.seconds for c in candidates if not c.parts}
    for candidate in candidates:
        if len(candidate.fold_scores) > 1:
            figures |= {
                f"selection_{candidate.name}_fold_{k}_{SELECTION_METRIC}": score
                for k, score in enumerate(candidate.fold_scores)
            }
    others = [c.score for c in candidates if c is not winner]
    figures["selection_margin"] = winner.score - max(others) if others else 0.0
    return figures


def refit(
    candidate: Candidate,
    rows: pd.DataFrame,
    spec: DatasetSpec,
    config: TrainSettings,
    weights: pd.Series | None,
    champion: CatBoostClassifier | None = None,
) -> CatBoostClassifier:
    """The candidate refit on `rows` (train+valid) with the trees its folds kept; with a `champion` (warm start),
    fitted from its log-odds and returned summed with it (`training.warm`)."""
    baseline = start_values(champion, rows, spec)
    pool = make_pool(rows, spec, rows[spec.target], slice_weights(rows, weights), baseline)
    model = fit_catboost(candidate.params, pool, None, config, iterations=candidate.iterations)
    return model if champion is None else on_top(champion, model)


def blend_models(models: Sequence[CatBoostClassifier]) -> CatBoostClassifier:
    """One classifier whose log-odds are the average of `models`' (base rates included)."""
    return summed(models, [1 / len(models)] * len(models))


def calibrate(candidate: Candidate, config: TrainSettings) -> Calibration:
    """The calibration map fitted on the candidate's out-of-fold predictions (never on holdout or training rows)."""
    return fit_calibration(candidate.y, candidate.raw, config.calibration, candidate.weight)
