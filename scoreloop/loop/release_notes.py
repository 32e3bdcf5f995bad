"""Release notes for a promotion: what changes for the team when a challenger replaces the champion.

Every retrain changes the list a team got used to. When the gate promotes, both versions score the same recent
records from the scoring log (their stored features, the last scoring of each record), and a page listed on the
reports index shows: the tier-to-tier matrix, the share of records that change tier, the rank correlation, the
features that gained and lost weight, and the records that moved most, with the reasons that moved them.

Collect (`recent_records`, the two versions from the registry), compute (`release_figures`, pure), publish
(`publish_release_notes`); `write_release_notes` runs the three after a promotion by `scoreloop promote` or
`scoreloop retrain`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from scoreloop.core.model import ScoringModel
from scoreloop.core.pages import new_report_dir, table, write_index, write_report
from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import load_version
from scoreloop.serving.history import typed_rows
from scoreloop.serving.movers import moved_reasons
from scoreloop.serving.scoring import contributions, score_rows
from scoreloop.training.promote import GateDecision

RECENT_DAYS = 30  # the recent records: scored in the log's last 30 days
MOVED = 10  # records listed as moving most
WEIGHTS = 5  # features listed as gaining and as losing weight


@dataclass(frozen=True)
class ReleaseFigures:
    """What the release notes show (see the module docstring); `moved` has a `reasons` column."""

    records: int
    tiers: pd.DataFrame
    changed_tier: float
    rank_correlation: float
    weights: pd.DataFrame
    moved: pd.DataFrame


def recent_records(store: RecordStore, rows: int) -> pd.DataFrame:
    """The last scoring of up to `rows` records scored most recently (within RECENT_DAYS of the last), features on."""
    last = store.span()[1]
    if last is None:
        return pd.DataFrame()
    log = store.scores(last - timedelta(days=RECENT_DAYS))
    latest = log[~(log.duplicated("record_id", keep="last") & log["record_id"].notna())]
    return latest.tail(rows).reset_index(drop=True)


def importance_shares(model: ScoringModel) -> pd.Series:
    """Each feature's share (%) of the model's importance (CatBoost's prediction-value change)."""
    importance = pd.Series(model.classifier.get_feature_importance(), index=model.classifier.feature_names_)
    return 100 * importance / importance.sum()


def release_figures(records: pd.DataFrame, old: ScoringModel, new: ScoringModel) -> ReleaseFigures:
    """Both versions on the same records: tiers, ranks, weights, and the records that moved most with why."""
    rows = {model.version: typed_rows(records, model.spec) for model in (old, new)}
    before, after = score_rows(old, rows[old.version]), score_rows(new, rows[new.version])
    tiers = pd.crosstab(
        pd.Series(before["tier"], name=f"v{old.version} tier"), pd.Series(after["tier"], name=f"v{new.version} tier")
    )
    rank = pd.Series(before["probability"]).corr(pd.Series(after["probability"]), method="spearman")
    weights = pd.DataFrame({"before": importance_shares(old), "after": importance_shares(new)}).fillna(0.0)
    weights["change"] = weights["after"] - weights["before"]
    change = after["score"] - before["score"]
    top = np.argsort(-np.abs(change), kind="stable")[:MOVED]
    parts = [_parts(model, rows[model.version][top]) for model in (old, new)]
    moved = pd.DataFrame(
        {
            "record_id": records["record_id"].to_numpy()[top],
            "score before": before["score"][top],
            "score after": after["score"][top],
            "tier before": before["tier"][top],
            "tier after": after["tier"][top],
            "probability before": before["probability"][top],
            "probability after": after["probability"][top],
            "reasons": ["; ".join(moved_reasons(*pair, top=3)) for pair in _pairs(parts)],
        }
    )
    return ReleaseFigures(
        len(records), tiers, float(np.mean(before["tier"] != after["tier"])), float(rank), weights, moved
    )


def _parts(model: ScoringModel, rows: np.ndarray) -> list[tuple[pd.DataFrame, dict]]:
    """Per record: its contributions (points, log-odds per feature) under `model`, and its values."""
    _, points, log_odds = contributions(model, rows)
    features = model.spec.features
    frames = [pd.DataFrame({"points": p, "log_odds": o}, index=features) for p, o in zip(points, log_odds, strict=True)]
    return [(frame, {f: rows[f][i] for f in features}) for i, frame in enumerate(frames)]


def _pairs(parts: list[list[tuple[pd.DataFrame, dict]]]):
    for (before, old_values), (after, new_values) in zip(*parts, strict=True):
        yield before, after, (old_values, new_values)


def publish_release_notes(settings: Settings, decision: GateDecision, figures: ReleaseFigures) -> Path:
    """The release notes page under the reports folder, listed on the index; returns its HTML path."""
    old, new = decision.champion_version, decision.challenger_version
    folder = new_report_dir(settings.reports_dir, "release-notes", f"v{new}")
    weights = figures.weights.sort_values("change", ascending=False).round(2).rename_axis("feature").reset_index()
    body = (
        f"<p>Version {html.escape(str(new))} replaces version {html.escape(str(old))} "
        f"({html.escape(decision.reason)}). Both scored the same {figures.records} recent records (the last scoring "
        f"of each record scored in the log's last {RECENT_DAYS} days).</p>"
        f"<p><strong>{figures.changed_tier:.1%}</strong> of the records change tier; the rank correlation of the two "
        f"versions' probabilities is <strong>{figures.rank_correlation:.3f}</strong> (1: the same order).</p>"
        "<h2>Tier before (rows) and after (columns)</h2>" + table(figures.tiers.reset_index())
        + f"<h2>Features that gained weight</h2>{table(weights.head(WEIGHTS))}"
        + f"<h2>Features that lost weight</h2>{table(weights.tail(WEIGHTS).iloc[::-1])}"
        + "<p class='muted'>Weight: the feature's share (%) of the model's importance.</p>"
        + f"<h2>Records that moved most</h2>{table(figures.moved)}"
        + "<p class='muted'>A score is the percentile of the probability among each version's own holdout: a record "
        "can move in score (and tier) with little change in probability when the new version spreads its "
        "probabilities differently. Reasons: the features whose contributions changed most, in points.</p>"
    )  # fmt: skip
    summary = {
        "kind": "release-notes",
        "title": f"Release notes: version {new} replaces {old}",
        "status": "info",
        "model_version": str(new),
        "headline": {
            "records": figures.records,
            "changed_tier": round(figures.changed_tier, 4),
            "rank_correlation": round(figures.rank_correlation, 4),
        },
    }
    path = write_report(folder, summary, body)
    write_index(settings.reports_dir)
    return path


def write_release_notes(settings: Settings, decision: GateDecision) -> Path | None:
    """After a gate decision: when it replaced a champion and the scoring log holds recent records, the release
    notes page; None otherwise (refused, a first champion, nothing scored yet)."""
    if not decision.promoted or decision.champion_version is None:
        return None
    records = recent_records(RecordStore(settings.record_store_url), settings.gate.notes_rows)
    if records.empty:
        return None
    old, new = (load_version(settings.model_name, v) for v in (decision.champion_version, decision.challenger_version))
    return publish_release_notes(settings, decision, release_figures(records, old, new))
