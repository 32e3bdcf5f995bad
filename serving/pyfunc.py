"""The registered model as MLflow's `python_function`: raw records in, probability, score, tier and a reason out.

`mlflow models predict`, `mlflow models serve`, `mlflow.pyfunc.load_model` and `mlflow.pyfunc.spark_udf` load a
model through its `python_function` flavour. Scoreloop's names this module as its `loader_module` and the native
CatBoost file of the catboost flavour as its `data`, so nothing is pickled: MLflow calls `_load_pyfunc` with that
file's path and the card is read from the MLmodel beside it. `predict` reads raw records (text as a CRM exports it,
or JSON values) with the one engine (`scoreloop.core.coerce.read_frame`) and scores them with `/score`'s own path
(`serving.scoring.score_rows`), so its answers are `/score`'s.

A record the engine refuses is not dropped and does not fail the others: it comes back in its place with NaN
probability, no score or tier, and `reason` naming each refused field ("employees: cannot read 'lots' as a
number"); `reason` is null on every scored record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier

from scoreloop.core.coerce import read_frame
from scoreloop.core.model import ScoringModel, read_card
from scoreloop.serving.scoring import score_rows

REASON = "reason"
OUTPUT_COLUMNS = ("id", "probability", "score", "tier", REASON)


class RawRecordScorer:
    """What `mlflow.pyfunc.load_model` wraps: `predict` on raw records."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Raw records (a DataFrame, a list of records or a dict of columns) -> `score_raw`'s frame."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return score_raw(self.model, frame)


def score_raw(model: ScoringModel, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per input row, indexed like `frame`: id, calibrated probability, 0-100 score, tier, and the reason a
    row was refused (null when it was scored; a refused row has NaN probability and null score and tier)."""
    checked = read_frame(frame.reset_index(drop=True), model.spec)
    accepted = checked.accepted
    scored = score_rows(model, checked.rows[accepted])
    refused = np.ones(len(frame), dtype=bool)
    refused[accepted] = False
    probability, score, tier = np.full(len(frame), np.nan), np.zeros(len(frame), np.int64), refused.astype(object)
    probability[accepted], score[accepted], tier[accepted] = scored["probability"], scored["score"], scored["tier"]
    tier[refused], reason = None, np.full(len(frame), None, dtype=object)
    reasons = checked.reasons()
    reason[list(reasons)] = list(reasons.values())
    ids = checked.rows[model.spec.id_column] if model.spec.id_column else np.full(len(frame), None, dtype=object)
    columns = [ids, probability, pd.arrays.IntegerArray(score, refused), tier, reason]
    return pd.DataFrame(dict(zip(OUTPUT_COLUMNS, columns, strict=True)), index=frame.index)


def _load_pyfunc(data_path: str) -> RawRecordScorer:
    """MLflow's entry point: `data_path` is the model directory's native CatBoost file (`model.cbm`)."""
    classifier = CatBoostClassifier()
    classifier.load_model(data_path)
    card = read_card(Path(data_path).parent)
    return RawRecordScorer(ScoringModel(classifier, card, name="python_function", version=card.run_id or ""))
