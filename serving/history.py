"""A record's scores over time (`GET /records/{id}/history`, `scoreloop record ID`), with the reasons at each score.

Reasons are not stored in the scoring log (computing SHAP values on every `/score` would cost several times the
prediction): they are computed when asked, from the features the log stored for that scoring and the model version
that scored it, so they are exactly the reasons `/explain` gave at the time. A caller that cannot load a version
(the server has only the model it serves) gets that entry without reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from scoreloop.core.model import ScoringModel
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import RecordStore
from scoreloop.serving.scoring import explain_rows

Models = Callable[[str, str], ScoringModel | None]  # (model name, version) -> the model, or None if not loadable


def typed_rows(log: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """Stored features as the typed rows the scoring path reads (numbers as floats, missing categories as None).

    A batch whose column was all missing comes back from Arrow untyped; this gives it its spec type again.
    """
    rows = pd.DataFrame(index=range(len(log)))
    for name in spec.numeric:
        column = log[name] if name in log else pd.Series(np.nan, index=log.index)
        rows[name] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    for name in spec.categorical + spec.text:
        column = log[name] if name in log else pd.Series(None, index=log.index, dtype=object)
        rows[name] = column.astype(object).where(column.notna(), None).to_numpy()
    if spec.id_column:
        rows[spec.id_column] = log["record_id"].to_numpy()
    return rows.to_records(index=False).view(np.ndarray)


def record_history(store: RecordStore, record_id: str, models: Models, top: int) -> list[dict[str, Any]]:
    """Every scoring of `record_id`, oldest first (empty when it was never scored)."""
    return history_entries(store.history([record_id]), models, top)


def history_entries(log: pd.DataFrame, models: Models, top: int) -> list[dict[str, Any]]:
    """The log rows of one record as history entries: when, score, probability, tier, model and version, the
    outcome if known, and the `top` reasons (None when the version that scored it is not available here)."""
    reasons: list[Any] = [None] * len(log)
    for (name, version), group in log.groupby(["model_name", "model_version"], sort=False):
        model = models(name, version)
        if model is not None:
            explained = explain_rows(model, typed_rows(group, model.spec), top)
            for position, entry in zip(log.index.get_indexer(group.index), explained, strict=True):
                reasons[position] = entry["reasons"]
    return [
        {
            "scored_at": row.scored_at.isoformat(),
            "score": int(row.score),
            "probability": float(row.probability),
            "tier": row.tier,
            "model": row.model_name,
            "version": row.model_version,
            "outcome": None if pd.isna(row.outcome) else bool(row.outcome),
            "outcome_at": None if pd.isna(row.outcome_at) else pd.Timestamp(row.outcome_at).isoformat(),
            "reasons": reasons[i],
        }
        for i, row in enumerate(log.reset_index(drop=True).itertuples(index=False))
    ]
