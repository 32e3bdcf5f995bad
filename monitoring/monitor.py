"""Monitoring runs: build the reports, judge them against the tolerances, keep them under the home and in MLflow.

Two modes share everything after the data is read. Files mode compares two sets of records (data drift and data
quality). Period mode reads the scoring log joined with the outcomes that have arrived: feature drift and data
quality on a seeded sample of each period, score drift (PSI) on every row, classification quality and calibration
on the labelled records, by tier. Each run writes a report folder (Evidently HTML + JSON, `summary.json`,
`summary.html`), logs it to a run in the `<experiment>-monitoring` experiment tagged with the model version,
and refreshes the reports index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from scoreloop.core.coerce import coerce_frame, missing_columns
from scoreloop.core.ingest import read_raw
from scoreloop.core.model import LOWEST_TIER, ModelCard
from scoreloop.core.pages import badge, new_figure, new_report_dir, png, table, write_index, write_report
from scoreloop.core.policy import ipw_weights
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import CHAMPION, configure, load_version, version_by_alias
from scoreloop.monitoring.checks import Check, judge, status
from scoreloop.monitoring.drift import DriftSummary, QualitySummary, build_drift_report, build_quality_report
from scoreloop.monitoring.metrics import calibration_table, feature_quality, labelled_quality, psi, tier_quality


@dataclass(frozen=True)
class MonitorReport:
    """What a monitoring run found: its checks, the Evidently summaries, and where everything was written."""

    out_dir: Path
    summary: dict[str, Any]
    checks: tuple[Check, ...]
    drift: DriftSummary
    quality: QualitySummary | None = None

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def html_path(self) -> Path:
        return self.out_dir / "summary.html"


@dataclass(frozen=True)
class Window:
    """A half-open time window `[start, end)` of the scoring log."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}"


def read_features(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """Feature columns of a CSV/Parquet file, coerced like serving does (unseen categories kept)."""
    raw = read_raw(path).frame
    absent = missing_columns(raw.columns, spec, with_target=False)
    if absent:
        raise ValueError(f"{path} lacks feature columns {absent}")
    return coerce_frame(raw, spec, with_target=False, strict=False).rows


def monitor_drift(
    settings: Settings, spec: DatasetSpec, reference: Path, current: Path, *, name: str = ""
) -> MonitorReport:
    """Files mode: data drift and data quality of `current` against `reference`, judged and logged.

    `name` (sanitised) labels the report folder."""
    ref, cur = read_features(reference, spec), read_features(current, spec)
    out_dir = new_report_dir(settings.reports_dir, "drift", name)
    drift = build_drift_report(ref, cur, spec, out_dir, data_summary=True)
    figures = {**_drift_figures(drift), **feature_quality(ref, cur, spec.features, _vocabulary(spec, ref))}
    champion = _champion_version(settings)
    return _finish(
        settings,
        out_dir,
        kind="drift",
        title=f"{current.name} vs {reference.name}",
        figures=figures,
        drift=drift,
        model_version=champion,
        params={"reference": str(reference), "current": str(current)},
    )


def monitor_period(
    settings: Settings,
    period: timedelta,
    *,
    end: datetime | None = None,
    reference: Window | None = None,
    spec: DatasetSpec | None = None,
    store: RecordStore | None = None,
    name: str = "",
) -> MonitorReport:
    """Period mode: the scoring log's `[end - period, end)` against `reference` (default: the period before).

    `end` defaults to just after the last scored record. The spec, tier names and category vocabulary come from
    the model card of the version that scored the period's last record, unless `spec` is given. `name`
    (sanitised) labels the report folder.
    """
    settings.ensure_home()
    store = store or RecordStore(settings.record_store_url)
    period = pd.Timedelta(period).to_pytimedelta()  # datetime - pandas.Timedelta silently subtracts nothing
    current = _current_window(store, period, end)
    reference = reference or Window(current.start - period, current.start)
    config = settings.monitor
    log = store.labelled(current.start, current.end, features=False)
    reference_log = store.scores(reference.start, reference.end, features=False)
    for side, window, frame in (("current", current, log), ("reference", reference, reference_log)):
        if frame.empty:
            raise ValueError(f"the {side} period {window} has no scored records; the log spans {_span(store)}")
    version, card = _scoring_model(settings, log, spec)
    spec = card.spec if card else spec
    samples = [store.scores(w.start, w.end, sample=config.sample_rows, seed=config.seed) for w in (reference, current)]
    out_dir = new_report_dir(settings.reports_dir, "monitor", name)
    drift = build_drift_report(*samples, spec, out_dir, prediction="probability", data_summary=True)
    quality = labelled_quality(log, _weights(log, settings), config.bins)
    figures = {
        **_drift_figures(drift),
        **feature_quality(samples[0], samples[1], spec.features, _vocabulary(spec, samples[0])),
        **quality,
        "psi": psi(reference_log["probability"], log["probability"], config.bins),
        "psi_evidently": drift.prediction.score if drift.prediction else None,
        "rows_current": len(log),
        "rows_reference": len(reference_log),
        "sampled_current": len(samples[1]),
        "sampled_reference": len(samples[0]),
        "tiers": tier_quality(log, [*(card.tier_cutoffs if card else {}), LOWEST_TIER]).to_dict(orient="records"),
    }
    evidently_quality = None
    if quality["labelled"] >= config.min_labelled and 0 < quality["positive_rate"] < 1:
        labelled = log[log["outcome"].notna()]
        if len(labelled) > config.sample_rows:
            labelled = labelled.sample(config.sample_rows, random_state=config.seed)
        threshold = next(iter(card.tier_cutoffs.values())) if card and card.tier_cutoffs else 0.5
        evidently_quality = build_quality_report(labelled, out_dir, threshold=threshold)
    plots = _period_plots(reference_log, log)
    return _finish(
        settings,
        out_dir,
        kind="monitor",
        title=f"scores {current} vs {reference}",
        figures=figures,
        drift=drift,
        quality=evidently_quality,
        model_version=version,
        params={"current": str(current), "reference": str(reference), "sample_rows": config.sample_rows},
        extra_body=plots,
        windows={"current": current, "reference": reference},
    )


def _current_window(store: RecordStore, period: timedelta, end: datetime | None) -> Window:
    if end is None:
        last = store.span()[1]
        if last is None:
            raise ValueError("the scoring log is empty: nothing to monitor by period")
        end = last + timedelta(microseconds=1)
    return Window(end - period, end)


def _span(store: RecordStore) -> str:
    first, last = store.span()
    return "nothing (empty)" if first is None else f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M}"


def _scoring_model(settings: Settings, log: pd.DataFrame, spec: DatasetSpec | None) -> tuple[str, ModelCard | None]:
    """The version that scored the period's last record, and its card (None when `spec` overrides it)."""
    last = log.iloc[-1]
    if spec is not None:
        return str(last["model_version"]), None
    configure(settings)
    return str(last["model_version"]), load_version(str(last["model_name"]), str(last["model_version"])).card


def _champion_version(settings: Settings) -> str:
    configure(settings)
    champion = version_by_alias(settings.model_name, CHAMPION)
    return str(champion.version) if champion else "none"


def _weights(log: pd.DataFrame, settings: Settings) -> pd.Series | None:
    labelled = log[log["outcome"].notna()]
    if labelled.empty or labelled["propensity"].isna().all():
        return None
    return ipw_weights(labelled["propensity"], settings.policy.ipw_clip)


def _vocabulary(spec: DatasetSpec, reference: pd.DataFrame) -> dict[str, list[str]]:
    """Known categories per column: the spec's allowed values, else what the reference holds."""
    return {c: spec.allowed_values.get(c) or [str(v) for v in reference[c].dropna().unique()] for c in spec.categorical}


def _drift_figures(drift: DriftSummary) -> dict[str, Any]:
    drifted = [c.column for c in drift.columns if c.drifted]
    return {
        "drifted": drifted,
        "drifted_columns": drift.drifted_columns,
        "share_drifted": drift.share_drifted,
        "drift_score": {c.column: c.score for c in drift.columns},
        "reference_rows": drift.reference_rows,
        "current_rows": drift.current_rows,
    }


def _finish(
    settings: Settings,
    out_dir: Path,
    *,
    kind: str,
    title: str,
    figures: dict[str, Any],
    drift: DriftSummary,
    model_version: str,
    params: dict[str, Any],
    quality: QualitySummary | None = None,
    extra_body: str = "",
    windows: dict[str, Window] | None = None,
) -> MonitorReport:
    """Judge, write the summary pages, log the run to MLflow and refresh the index."""
    checks = judge(figures, settings.monitor)
    files = {"data drift + data summary (Evidently)": drift.html_path.name, "drift JSON": drift.json_path.name}
    if quality is not None:
        files |= {"classification quality (Evidently)": quality.html_path.name, "quality JSON": quality.json_path.name}
        figures = {**figures, "evidently_quality": quality.metrics}
    headline_keys = ("drifted", "drifted_columns", "share_drifted", "psi", "roc_auc", "labelled")
    summary = {
        "kind": kind,
        "title": title,
        "status": status(checks),
        "model_version": model_version,
        "windows": {k: {"start": w.start.isoformat(), "end": w.end.isoformat()} for k, w in (windows or {}).items()},
        "headline": {k: figures.get(k) for k in headline_keys},
        "checks": [c.to_dict() for c in checks],
        "figures": figures,
        "files": {**files, "summary JSON": "summary.json"},
    }
    write_report(out_dir, summary, _body(checks, figures, drift) + extra_body)
    log_monitoring_run(settings, out_dir, kind, summary, params)
    write_index(settings.reports_dir)
    return MonitorReport(out_dir, summary, tuple(checks), drift, quality)


def log_monitoring_run(
    settings: Settings, out_dir: Path, kind: str, summary: dict[str, Any], params: dict[str, Any]
) -> None:
    """One run in the monitoring experiment: figures as metrics, checks as tags, the report folder as artifacts."""
    configure(settings, experiment=f"{settings.experiment}-monitoring")
    figures = summary["figures"]
    tags = {
        "scoreloop.role": "monitoring",
        "scoreloop.kind": kind,
        "scoreloop.model_version": summary["model_version"],
        "scoreloop.status": summary["status"],
        **{f"check.{c['name']}": c["message"][:500] for c in summary["checks"]},
    }
    scalars = {k: v for k, v in figures.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    nested = {
        f"{group}.{column}": value
        for group in ("drift_score", "missing_share", "new_category_share")
        for column, value in (figures.get(group) or {}).items()
    }
    metrics = {k: float(v) for k, v in {**scalars, **nested}.items() if v is not None and np.isfinite(v)}
    with mlflow.start_run(run_name=out_dir.name, tags=tags):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(out_dir), kind)


def _body(checks: list[Check], figures: dict[str, Any], drift: DriftSummary) -> str:
    """The summary page: checks, per-feature drift and quality, then labelled quality by tier and calibration."""
    check_rows = [
        {"check": c.name, "figure": c.value, "tolerance": c.tolerance, "status": _check_badge(c), "detail": c.detail}
        for c in checks
    ]
    missing, unseen = figures.get("missing_share", {}), figures.get("new_category_share", {})
    columns = [
        {
            "feature": c.column,
            "drift method": c.method,
            "drift score": c.score,
            "threshold": c.threshold,
            "drifted": "yes" if c.drifted else "no",
            "missing share": missing.get(c.column),
            "missing increase": figures.get("missing_increase", {}).get(c.column),
            "new category share": unseen.get(c.column),
        }
        for c in drift.columns
    ]
    body = "<h2>Checks</h2>" + table(check_rows, raw=("status",))
    if figures.get("psi") is not None:
        body += (
            f"<h2>Score drift</h2><p>PSI of the probability against the reference period: "
            f"<b>{figures['psi']:.4f}</b> over every row (Evidently's PSI on the sample: "
            f"{figures.get('psi_evidently') or float('nan'):.4f}). "
            f"Rows: {figures['rows_current']} current, {figures['rows_reference']} reference; "
            f"sampled for Evidently and the feature checks: {figures['sampled_current']} and "
            f"{figures['sampled_reference']}.</p>"
        )
    body += "<h2>Features</h2>" + table(columns)
    if "labelled" in figures:
        body += (
            f"<h2>Labelled records</h2><p>{figures['labelled']} labelled records (coverage "
            f"{figures['label_coverage']:.1%}); ROC AUC {figures['roc_auc']:.4f} ({figures['roc_auc_basis']}), "
            f"{figures['roc_auc_unweighted']:.4f} unweighted, {figures['roc_auc_explored']:.4f} on the "
            f"{figures['explored_labelled']} explored records; expected calibration error "
            f"{figures['calibration_error']:.4f}.</p><h3>By tier</h3>"
            + table(pd.DataFrame(figures["tiers"]))
            + "<h3>Calibration (labelled records)</h3>"
            + table(pd.DataFrame(figures["calibration"]))
        )
    return body


def _check_badge(check: Check) -> str:
    return badge("info" if check.passed is None else "pass" if check.passed else "fail")


def _period_plots(reference_log: pd.DataFrame, log: pd.DataFrame) -> str:
    """Score distributions of both periods, and the reliability curve on labelled records."""
    figure = new_figure(9, 3.2)
    left, right = figure.subplots(1, 2)
    bins = np.linspace(0, 1, 41)
    for frame, label in ((reference_log, "reference"), (log, "current")):
        left.hist(frame["probability"], bins=bins, density=True, histtype="step", label=label)
    left.set_title("probability distribution")
    left.legend(fontsize=8)
    labelled = log[log["outcome"].notna()]
    if len(labelled):
        curve = calibration_table(labelled["outcome"], labelled["probability"])
        right.plot(curve["mean_predicted"], curve["observed_rate"], marker="o")
    right.plot([0, 1], [0, 1], color="grey", linestyle=":")
    right.set_title("reliability on labelled records")
    right.set_xlabel("mean predicted")
    right.set_ylabel("observed rate")
    return "<h2>Plots</h2>" + png(figure)
