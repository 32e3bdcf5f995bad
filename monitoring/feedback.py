"""The feedback-loop report: what each model version chose to learn from, and what that did to the next one.

Per version in the scoring log: label coverage by score band (labels exist almost only where the model scored
high), conversion of exploited vs explored leads, and ROC AUC and calibration on the exploration slice, which
was drawn at random and is therefore the unbiased view below the top. Between versions: how differently they
score the same records (PSI and rank correlation on a sample of the latest scored records) and how their
feature importances moved.

Collect (`collect_feedback`: the log, and each version's scores and importances from the registry), compute
(`feedback_figures`: pure, a `FeedbackFigures`), publish (`publish_feedback`: JSON, page, MLflow run, index).
"""

from __future__ import annotations

import html
import itertools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoreloop.core.metrics import calibration_table, expected_calibration_error, positive_rate, psi, roc_auc
from scoreloop.core.model import ScoringModel
from scoreloop.core.pages import new_figure, new_report_dir, png, table, write_index, write_report
from scoreloop.core.policy import EXPLOIT, EXPLORE, ipw_weights
from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import configure, load_version
from scoreloop.monitoring.monitor import log_monitoring_run
from scoreloop.monitoring.quality import band_coverage

SAMPLE_ROWS = 5000  # latest scored records every version re-scores for the between-version comparison
CALIBRATION_PLOT_BINS = 5  # the explored slice is small: fewer, fuller bins for the plot


@dataclass(frozen=True)
class FeedbackData:
    """What the report reads: the labelled scoring log (outcome NaN when unknown), and per version (in log order)
    its probabilities on one shared sample of the latest scored records and its feature importances."""

    log: pd.DataFrame
    probabilities: dict[str, np.ndarray]
    importances: dict[str, dict[str, float]]


@dataclass(frozen=True)
class FeedbackFigures:
    """The report's figures: per version, between versions, label coverage by score band and the explored
    slice's calibration per version, importances, how many records the log holds and the IPW clip used."""

    per_version: pd.DataFrame
    shift: pd.DataFrame
    bands: dict[str, pd.Series]
    calibration: dict[str, pd.DataFrame]
    importances: dict[str, dict[str, float]]
    records: int
    clip: float

    def to_json(self) -> dict:
        """The `feedback.json` content."""
        return {
            "versions": self.per_version.to_dict(orient="records"),
            "shift": self.shift.to_dict(orient="records"),
            "label_coverage_by_band": {v: s.to_dict() for v, s in self.bands.items()},
            "importance": self.importances,
        }


def version_figures(log: pd.DataFrame, clip: float, bins: int = 10) -> pd.DataFrame:
    """One row per model version: coverage, conversion by arm, AUC/ECE on the explored slice, IPW AUC on labels.

    `log` is the labelled scoring log (outcome NaN when unknown) with `policy` and `propensity` columns.
    """
    rows = []
    for version, part in log.groupby("model_version", sort=False):
        labelled = part[part["outcome"].notna()]
        explored = labelled[labelled["policy"] == EXPLORE]
        exploited = labelled[labelled["policy"] == EXPLOIT]
        weighted = labelled["propensity"].notna().any()
        weights = ipw_weights(labelled["propensity"], clip).to_numpy() if weighted else None
        rows.append(
            {
                "version": str(version),
                "scored": len(part),
                "labelled": len(labelled),
                "label_coverage": len(labelled) / len(part),
                "exploited": len(exploited),
                "exploited_conversion": positive_rate(exploited["outcome"]),
                "explored": len(explored),
                "explored_conversion": positive_rate(explored["outcome"]),
                "explored_roc_auc": roc_auc(explored["outcome"], explored["probability"]),
                "explored_calibration_error": expected_calibration_error(
                    explored["outcome"], explored["probability"], bins
                ),
                "ipw_roc_auc": roc_auc(labelled["outcome"], labelled["probability"], weights),
                "labelled_roc_auc": roc_auc(labelled["outcome"], labelled["probability"]),
                "mean_probability": float(part["probability"].mean()),
            }
        )
    return pd.DataFrame(rows)


def version_shift(probabilities: dict[str, np.ndarray], importances: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Between consecutive versions scoring the same records: score PSI, Spearman rank correlation, and the
    total absolute change in (percentage) feature importance."""
    versions = list(probabilities)
    rows = []
    for before, after in itertools.pairwise(versions):
        features = sorted(set(importances[before]) | set(importances[after]))
        moved = sum(abs(importances[after].get(f, 0.0) - importances[before].get(f, 0.0)) for f in features)
        rows.append(
            {
                "from": before,
                "to": after,
                "score_psi": psi(probabilities[before], probabilities[after]),
                "rank_correlation": _rank_correlation(probabilities[before], probabilities[after]),
                "importance_change": moved,
            }
        )
    return pd.DataFrame(rows, columns=["from", "to", "score_psi", "rank_correlation", "importance_change"])


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's on the ranks."""
    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def feedback_report(settings: Settings, *, store: RecordStore | None = None, title: str = "feedback loop") -> dict:
    """Write the feedback-loop report for every version in the scoring log; returns its summary."""
    settings.ensure_home()
    data = collect_feedback(settings, store or RecordStore(settings.record_store_url))
    return publish_feedback(settings, feedback_figures(data, settings.policy.ipw_clip, settings.monitor.bins), title)


def collect_feedback(settings: Settings, store: RecordStore) -> FeedbackData:
    """The labelled log, and every version that scored it re-scoring the same sample of the latest records."""
    log = store.labelled(features=False)
    if log.empty:
        raise ValueError("the scoring log is empty: no model versions to compare")
    configure(settings)
    models = {
        str(v): load_version(str(name), str(v))
        for v, name in log.drop_duplicates("model_version")[["model_version", "model_name"]].itertuples(index=False)
    }
    latest = store.scores(store.span()[1] - pd.Timedelta(days=31), sample=SAMPLE_ROWS, seed=settings.monitor.seed)
    return FeedbackData(
        log, {v: m.predict_proba(latest) for v, m in models.items()}, {v: _importance(m) for v, m in models.items()}
    )


def feedback_figures(data: FeedbackData, clip: float, bins: int = 10) -> FeedbackFigures:
    """Every figure of the report from what was collected; `clip` caps the inverse-propensity weights."""
    log = data.log
    by_version = log.groupby("model_version", sort=False)
    explored = log[(log["policy"] == EXPLORE) & log["outcome"].notna()]
    return FeedbackFigures(
        per_version=version_figures(log, clip, bins),
        shift=version_shift(data.probabilities, data.importances),
        bands={str(v): band_coverage(part, 10).set_index("band")["coverage"] for v, part in by_version},
        calibration={
            str(v): calibration_table(part["outcome"], part["probability"], min(bins, CALIBRATION_PLOT_BINS))
            for v, part in explored.groupby("model_version", sort=False)
        },
        importances=data.importances,
        records=len(log),
        clip=clip,
    )


def publish_feedback(settings: Settings, figures: FeedbackFigures, title: str) -> dict:
    """Write `feedback.json` and the summary page, log them to the monitoring experiment, refresh the index."""
    out_dir = new_report_dir(settings.reports_dir, "feedback")
    (out_dir / "feedback.json").write_text(json.dumps(figures.to_json(), indent=2, default=float))
    summary = summarize(figures, title)
    write_report(out_dir, summary, page_body(figures))
    log_monitoring_run(settings, out_dir, "feedback", summary, {"model_name": settings.model_name})
    write_index(settings.reports_dir)
    return {**summary, "report": str(out_dir / "summary.html")}


def summarize(figures: FeedbackFigures, title: str) -> dict:
    """The report's `summary.json`: the latest version's explored-slice figures as its headline."""
    per_version = figures.per_version
    last = per_version.iloc[-1]
    return {
        "kind": "feedback",
        "title": title,
        "status": "info",
        "model_version": str(last["version"]),
        "headline": {"roc_auc": last["explored_roc_auc"], "labelled": int(per_version["labelled"].sum())},
        "figures": {
            "versions": len(per_version),
            "explored_roc_auc": last["explored_roc_auc"],
            "ipw_roc_auc": last["ipw_roc_auc"],
            "explored_calibration_error": last["explored_calibration_error"],
        },
        "checks": [],
        "files": {"figures JSON": "feedback.json"},
    }


def _importance(model: ScoringModel) -> dict[str, float]:
    classifier = model.classifier
    return dict(zip(classifier.feature_names_, map(float, classifier.get_feature_importance()), strict=True))


def page_body(figures: FeedbackFigures) -> str:
    """The report page: why the explored slice matters, the tables, then the plots."""
    return (
        "<p>Only worked leads get outcomes, so each version learns from what the one before chose. The explored "
        "slice was drawn at random from the leads below the top: its AUC and calibration are the unbiased view. "
        f"IPW AUC weights every labelled record by its inverse propensity (clipped at {figures.clip:g})."
        "</p><h2>Per version</h2>"
        + table(figures.per_version)
        + "<h2>Between versions (same records re-scored)</h2>"
        + table(figures.shift)
        + "<h2>Plots</h2>"
        + _coverage_plot(figures.bands)
        + _arms_plot(figures.per_version)
        + _calibration_plot(figures.calibration)
        + _importance_plot(figures.importances)
        + f'<p class="muted">{html.escape(str(figures.records))} scored records in the log.</p>'
    )


def _coverage_plot(bands: dict[str, pd.Series]) -> str:
    figure = new_figure(8, 3)
    axes = figure.subplots()
    for version, coverage in bands.items():
        axes.plot(range(len(coverage)), coverage.to_numpy(dtype=float), marker="o", label=f"v{version}")
        axes.set_xticks(range(len(coverage)), coverage.index, rotation=30, fontsize=7)
    axes.set(title="label coverage by score band", xlabel="score band", ylabel="share labelled")
    axes.legend(fontsize=7)
    return png(figure)


def _arms_plot(per_version: pd.DataFrame) -> str:
    figure = new_figure(8, 3)
    axes = figure.subplots()
    x = np.arange(len(per_version))
    axes.bar(x - 0.2, per_version["exploited_conversion"], width=0.4, label="exploited (top)")
    axes.bar(x + 0.2, per_version["explored_conversion"], width=0.4, label="explored (random below top)")
    axes.set_xticks(x, [f"v{v}" for v in per_version["version"]])
    axes.set(title="conversion of worked leads by arm", ylabel="conversion rate")
    axes.legend(fontsize=7)
    return png(figure)


def _calibration_plot(calibration: dict[str, pd.DataFrame]) -> str:
    figure = new_figure(8, 3)
    axes = figure.subplots()
    for version, curve in calibration.items():
        axes.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label=f"v{version}")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axes.set(title="calibration on the exploration slice", xlabel="mean predicted", ylabel="observed rate")
    if calibration:
        axes.legend(fontsize=7)
    return png(figure)


def _importance_plot(importances: dict[str, dict[str, float]]) -> str:
    frame = pd.DataFrame(importances).fillna(0.0)
    figure = new_figure(8, 3.5)
    axes = figure.subplots()
    for feature, values in frame.iterrows():
        axes.plot(range(frame.shape[1]), values.to_numpy(), marker="o", label=str(feature))
    axes.set_xticks(range(frame.shape[1]), [f"v{v}" for v in frame.columns])
    axes.set(title="feature importance by version (CatBoost, % of total)", ylabel="importance")
    axes.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return png(figure)
