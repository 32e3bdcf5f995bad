"""Model selection: the servable candidates scored on the same folds with the same recipe, the best refit and
calibrated.

Serving, SHAP reasons and the model card are CatBoost's, so the candidates are CatBoost models: the tuned
parameters, CatBoost's defaults, and (when tuning chose class weights) the tuned parameters without them. Each is
fitted on every fold of `tuning_folds` with early stopping and scored on the fold's validation rows: one honest
estimate for all of them (the tuned model's best trial value is not one: it is the maximum of many noisy values).
The best mean validation AUC wins; it is refit on train+valid with the mean number of trees the folds kept, and
its out-of-fold predictions (rows no fold model trained on) fit the probability calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier

from scoreloop.core.calibration import Calibration, fit_calibration
from scoreloop.core.metrics import roc_auc
from scoreloop.core.model import make_pool
from scoreloop.core.settings import TrainSettings
from scoreloop.core.spec import DatasetSpec
from scoreloop.training.split import slice_weights
from scoreloop.training.tune import TuningData, fit_catboost
from scoreloop.training.warm import on_top, start_values

SELECTION_METRIC = "roc_auc"
DEFAULT_TREES = 1000  # CatBoostClassifier's own default `iterations`


@dataclass(frozen=True)
class Candidate:
    """One candidate's parameters as refit (CatBoost's automatic learning rate made explicit), its validation AUC
    per fold, the trees its refit grows, and its out-of-fold labels, raw probabilities and weights."""

    name: str
    params: dict
    fold_scores: tuple[float, ...]
    iterations: int
    y: np.ndarray
    raw: np.ndarray
    weight: np.ndarray | None

    @property
    def score(self) -> float:
        """Mean validation AUC over the folds: the figure candidates are compared on."""
        return float(np.mean(self.fold_scores))


def candidate_params(tuned: dict, allowed: Sequence[str] = ("tuned", "defaults")) -> dict[str, dict]:
    """The servable candidates by name: tuned, and tuned without class weights if it had any; CatBoost defaults
    (`allowed` says which of `tuned` and `defaults` take part)."""
    candidates = {}
    if "tuned" in allowed:
        candidates["tuned"] = dict(tuned)
        if tuned.get("auto_class_weights", "None") != "None":
            candidates["tuned_unweighted"] = {**tuned, "auto_class_weights": "None"}
    if "defaults" in allowed:
        candidates["defaults"] = {}
    return candidates


def cross_validate(name: str, params: dict, folds: Sequence[TuningData], config: TrainSettings) -> Candidate:
    """Fit `params` on each fold with early stopping; score and predict each fold's validation rows.

    `defaults` is CatBoost as a user gets it in one line: its own tree count and automatic learning rate, no early
    stopping (on small folds, stopping on a noisy validation AUC underfits it: 0.72 against 0.81 on 1,500 synthetic
    rows), so the champion is never worse than that one-liner on the estimate it is chosen by."""
    one_liner = name == "defaults"
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
    )


def choose(candidates: Sequence[Candidate]) -> Candidate:
    """The candidate with the best mean validation AUC (the first of equals)."""
    return max(candidates, key=lambda candidate: candidate.score)


def selection_figures(candidates: Sequence[Candidate], winner: Candidate) -> dict[str, float]:
    """`selection_<candidate>_roc_auc` (mean over folds), `selection_<candidate>_fold_<k>_roc_auc` with several
    folds, and `selection_margin`: the winner's lead over the best other candidate."""
    figures = {f"selection_{c.name}_{SELECTION_METRIC}": c.score for c in candidates}
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


def calibrate(candidate: Candidate, config: TrainSettings) -> Calibration:
    """The calibration map fitted on the candidate's out-of-fold predictions (never on holdout or training rows)."""
    return fit_calibration(candidate.y, candidate.raw, config.calibration, candidate.weight)
