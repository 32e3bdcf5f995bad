"""Movers (`scoreloop movers`): the records whose score or tier changed most since their previous score, and why.

The morning list a salesperson acts on. Finding them reads only the score blobs of the log (no features) and works
on integer codes, so a million logged scores take seconds (benchmarks/people.py). The reasons are computed for the
listed movers only: the stored features of their two last scorings, through the model versions that scored them
(`serving.scoring.contributions`); the features whose contributions changed most are the reasons that moved.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from scoreloop.core.store import RecordStore
from scoreloop.serving.history import Models, typed_rows
from scoreloop.serving.scoring import contributions, format_value


def find_movers(log: pd.DataFrame, since: datetime, min_change: int, into: str | None = None) -> pd.DataFrame:
    """Each record's latest score (scored at or after `since`) against its previous one, for records whose score
    moved at least `min_change` points or whose tier changed; with `into`, only records that entered that tier.
    Largest moves first. `log` is `RecordStore.scores(features=False)`, in logging order."""
    log = log[log["record_id"].notna()]
    codes, _ = pd.factorize(log["record_id"])
    order = np.lexsort((np.arange(len(log)), log["scored_at"].to_numpy(), codes))
    codes = codes[order]
    ordered = log.iloc[order]
    last = np.r_[codes[1:] != codes[:-1], True]
    has_previous = np.r_[False, codes[1:] == codes[:-1]]
    current = last & has_previous & (ordered["scored_at"].to_numpy() >= np.datetime64(since))
    now, before = ordered[current], ordered.iloc[np.flatnonzero(current) - 1]
    movers = pd.DataFrame(
        {
            "record_id": now["record_id"].to_numpy(),
            "scored_at": now["scored_at"].to_numpy(),
            "previous_at": before["scored_at"].to_numpy(),
            "previous_score": before["score"].to_numpy(),
            "score": now["score"].to_numpy(),
            "change": now["score"].to_numpy() - before["score"].to_numpy(),
            "previous_tier": before["tier"].to_numpy(),
            "tier": now["tier"].to_numpy(),
            "previous_version": before["model_version"].to_numpy(),
            "version": now["model_version"].to_numpy(),
        }
    )
    crossed = movers["tier"] != movers["previous_tier"]
    keep = crossed & (movers["tier"] == into) if into else crossed | (movers["change"].abs() >= min_change)
    movers = movers[keep]
    return movers.iloc[np.argsort(-movers["change"].abs().to_numpy(), kind="stable")].reset_index(drop=True)


def moved_reasons(before: pd.DataFrame, after: pd.DataFrame, values: tuple[dict, dict], top: int) -> list[str]:
    """The `top` features whose contributions changed most between two scorings of a record, in words.

    `before` and `after` hold `points` and `log_odds` per feature. Features are ranked by the change of their
    log-odds contribution, which is additive and does not move for a feature that kept its value under the same
    model (points do, with the record's place on the probability curve); the change is told in points.
    """
    change = after.subtract(before, fill_value=0.0)
    reasons = []
    for feature in change["log_odds"].abs().sort_values(ascending=False, kind="stable").index[:top]:
        old, new = (_shown(v.get(feature)) for v in values)
        moved = f"{old} -> {new}" if old != new else f"still {new}"
        reasons.append(f"{feature} {moved}: {change.loc[feature, 'points']:+.1f} points")
    return reasons


def _shown(value: object) -> str:
    return "missing" if value is None or (isinstance(value, float) and np.isnan(value)) else format_value(value)


def explain_movers(store: RecordStore, movers: pd.DataFrame, models: Models, top: int) -> pd.DataFrame:
    """`movers` with a `reasons` column: what moved between each record's previous and latest scoring (empty when
    a version that scored it cannot be loaded)."""
    log = store.history(movers["record_id"].tolist())
    log = log.sort_values(["record_id", "scored_at"], kind="stable").reset_index(drop=True)
    points: list[pd.DataFrame | None] = [None] * len(log)
    values: list[dict] = [{}] * len(log)
    for (name, version), group in log.groupby(["model_name", "model_version"], sort=False):
        model = models(name, version)
        if model is None:
            continue
        rows = typed_rows(group, model.spec)
        _, shares, log_odds = contributions(model, rows)
        for i, position in enumerate(group.index):
            parts = {"points": shares[i], "log_odds": log_odds[i]}
            points[position] = pd.DataFrame(parts, index=model.spec.features)
            values[position] = {f: rows[f][i] for f in model.spec.features}
    last_two = {record_id: rows[-2:] for record_id, rows in log.groupby("record_id").indices.items()}
    reasons = []
    for record_id in movers["record_id"]:
        pair = last_two.get(record_id, [])
        if len(pair) < 2 or points[pair[0]] is None or points[pair[1]] is None:
            reasons.append("")
            continue
        before, after = pair
        reasons.append("; ".join(moved_reasons(points[before], points[after], (values[before], values[after]), top)))
    return movers.assign(reasons=reasons)
