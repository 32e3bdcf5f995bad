"""Monitoring runs: build the reports, judge them against the tolerances, keep them under the home and in MLflow.

Two modes share everything after the data is read. Files mode compares two sets of records (data drift and data
quality). Period mode reads the scoring log joined with the outcomes that have arrived: feature drift and data
quality on a seeded sample of each period, score drift (PSI) on every row, classification quality and calibration
on the labelled records, by tier. Each run writes a report folder (Evidently HTML + JSON, `summary.json`,
`summary.html`), logs it to a run in the `<experiment>-monitoring` experiment tagged with the model version,
and refreshes the reports index.

Each mode is collect (read files or the store and registry), Evidently (its reports, via `monitoring.drift`),
compute (`drift_findings`, `period_findings`: pure, a `Findings`), publish (`publish`: pages, MLflow, index).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from scoreloop.core.coerce import missing_columns, read_frame
from scoreloop.core.ingest import quarantine_frame, read_raw
from scoreloop.core.metrics import psi
from scoreloop.core.model import LOWEST_TIER, ModelCard, ScoringModel
from scoreloop.core.pages import badge, new_figure, new_report_dir, png, table, write_index, write_report
from scoreloop.core.progress import Progress, silent
from scoreloop.core.settings import MonitorSettings, Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import CHAMPION, configure, load_version, monitoring_experiment, version_by_alias
from scoreloop.monitoring.checks import Check, judge, status
from scoreloop.monitoring.drift import DriftSummary, QualitySummary, build_drift_report, build_quality_report
from scoreloop.monitoring.quality import feature_quality, labelled_quality, tier_quality


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


@dataclass(frozen=True)
class Findings:
    """What a monitoring run computed: its figures and the checks judged on them, with what its page and run name.

    `scores` holds each period's probabilities (period mode) for the distribution plot.
    """

    kind: str
    title: str
    model_version: str
    figures: dict[str, Any]
    checks: tuple[Check, ...]
    params: dict[str, Any]
    windows: dict[str, Window] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return status(list(self.checks))


@dataclass(frozen=True)
class PeriodData:
    """What period mode reads: both windows of the scoring log (every row), the seeded samples with features that
    Evidently and the feature checks use (reference first), and the model version that scored the period."""

    current: Window
    reference: Window
    log: pd.DataFrame
    reference_log: pd.DataFrame
    samples: tuple[pd.DataFrame, pd.DataFrame]
    spec: DatasetSpec
    version: str
    card: ModelCard | None
    unmatched_outcomes: int = 0  # outcomes for ids the scoring log never held
    rescored: tuple[str, ...] = ()  # versions whose sampled scores were replaced by `version`'s (see `collect_period`)


@dataclass(frozen=True)
class FileFeatures:
    """A file's accepted records (feature columns) and its refused ones as ingest quarantines them (record
    number, line, reason, values as text)."""

    path: Path
    frame: pd.DataFrame
    refused: pd.DataFrame

    @property
    def refused_share(self) -> float:
        total = len(self.frame) + len(self.refused)
        return len(self.refused) / total if total else 0.0


def read_features(path: Path, spec: DatasetSpec) -> FileFeatures:
    """A CSV/Parquet file read by the engine serving uses; refused and malformed records are kept aside with their
    reasons, as ingest keeps them (their share is itself a finding, so nothing is left out silently)."""
    raw = read_raw(path, spec.format.delimiter)
    absent = missing_columns(raw.frame.columns, spec, with_target=False)
    if absent:
        raise ValueError(f"{path} lacks feature columns {absent}")
    checked = read_frame(raw.frame, spec)
    return FileFeatures(path, checked.frame()[spec.features], quarantine_frame(raw, checked.reasons()))


def write_refused(out_dir: Path, files: tuple[FileFeatures, ...]) -> Path | None:
    """`refused.csv`: every refused record of `files` with its file's name, when any was refused."""
    refused = [f.refused.assign(file=f.path.name) for f in files if len(f.refused)]
    if not refused:
        return None
    path = out_dir / "refused.csv"
    frame = pd.concat(refused, ignore_index=True)
    frame[["file", *frame.columns.drop("file")]].to_csv(path, index=False)
    return path


def monitor_drift(
    settings: Settings,
    spec: DatasetSpec,
    reference: Path,
    current: Path,
    *,
    name: str = "",
    progress: Progress = silent,
) -> MonitorReport:
    """Files mode: data drift and data quality of `current` against `reference`, judged and logged.

    `name` (sanitised) labels the report folder; `progress` hears of the steps (reading, drift report, publishing).
    """
    progress(0, 3, "reading both files")
    ref, cur = read_features(reference, spec), read_features(current, spec)
    out_dir = new_report_dir(settings.reports_dir, "drift", name)
    write_refused(out_dir, (ref, cur))
    progress(1, 3, "drift report (Evidently)")
    drift = build_drift_report(ref.frame, cur.frame, spec, out_dir, data_summary=True)
    findings = drift_findings(
        ref.frame,
        cur.frame,
        spec,
        drift,
        settings.monitor,
        title=f"{current.name} vs {reference.name}",
        model_version=_champion_version(settings),
        params={"reference": str(reference), "current": str(current)},
        refused={"reference": len(ref.refused), "current": len(cur.refused), "share": cur.refused_share},
    )
    progress(2, 3, "publishing the report")
    return publish(settings, out_dir, findings, drift)


def drift_findings(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    drift: DriftSummary,
    config: MonitorSettings,
    *,
    title: str,
    model_version: str,
    params: dict[str, Any],
    refused: dict[str, float] | None = None,
) -> Findings:
    """Files mode's figures (Evidently's drift verdicts, data quality, the records the spec refused in each file:
    `refused`'s `reference` and `current` counts and the current file's `share`) judged against the tolerances."""
    figures = {
        **_drift_figures(drift),
        **feature_quality(reference, current, spec.features, _vocabulary(spec, reference)),
        **({"refused": refused, "refused_share": refused["share"]} if refused is not None else {}),
    }
    return Findings("drift", title, model_version, figures, tuple(judge(figures, config)), params)


def monitor_period(
    settings: Settings,
    period: timedelta,
    *,
    end: datetime | None = None,
    reference: Window | None = None,
    spec: DatasetSpec | None = None,
    store: RecordStore | None = None,
    name: str = "",
    progress: Progress = silent,
) -> MonitorReport:
    """Period mode: the scoring log's `[end - period, end)` against `reference` (default: the period before).

    `end` defaults to just after the last scored record. The spec, tier names and category vocabulary come from
    the model card of the version that scored the period's last record, unless `spec` is given. `name`
    (sanitised) labels the report folder. `progress` hears of the steps (reading, drift report, quality report,
    publishing).
    """
    settings.ensure_home()
    progress(0, 4, "reading the scoring log")
    data = collect_period(settings, store or RecordStore(settings.record_store_url), period, end, reference, spec)
    out_dir = new_report_dir(settings.reports_dir, "monitor", name)
    progress(1, 4, "drift report (Evidently)")
    drift = build_drift_report(*data.samples, data.spec, out_dir, prediction="probability", data_summary=True)
    findings = period_findings(data, drift, settings)
    progress(2, 4, "quality report on the labelled records (Evidently)")
    quality = _quality_report(data, findings, out_dir, settings.monitor)
    progress(3, 4, "publishing the report")
    return publish(settings, out_dir, findings, drift, quality)


def collect_period(
    settings: Settings,
    store: RecordStore,
    period: timedelta,
    end: datetime | None,
    reference: Window | None,
    spec: DatasetSpec | None,
) -> PeriodData:
    """Read both windows of the scoring log and the card of the model that scored the current one."""
    period = pd.Timedelta(period).to_pytimedelta()  # datetime - pandas.Timedelta silently subtracts nothing
    current = _current_window(store, period, end)
    reference = reference or Window(current.start - period, current.start)
    config = settings.monitor
    log = store.labelled(current.start, current.end, features=False)
    reference_log = store.scores(reference.start, reference.end, features=False)
    for side, window, frame in (("current", current, log), ("reference", reference, reference_log)):
        if frame.empty:
            raise ValueError(f"the {side} period {window} has no scored records; the log spans {_span(store)}")
    version, model = _scoring_model(settings, log, spec)
    card = model.card if model else None
    samples = tuple(
        store.scores(w.start, w.end, sample=config.sample_rows, seed=config.seed) for w in (reference, current)
    )
    logged = {str(v) for frame in (reference_log, log) for v in frame["model_version"].unique()}
    others = () if model is None else tuple(sorted(logged - {version}))  # without the model nothing is rescored
    if others:
        samples = tuple(_rescored(sample, model) for sample in samples)
    spec = card.spec if card else spec
    unmatched = store.unmatched_outcomes()
    return PeriodData(current, reference, log, reference_log, samples, spec, version, card, unmatched, others)


def _rescored(sample: pd.DataFrame, model: ScoringModel) -> pd.DataFrame:
    """The sample with the records another version scored scored again by `model`, from their logged features.

    Score drift is a question about one model: after a promotion the reference period was scored by the version
    before, and the PSI between two versions' scores measures the swap (which the gate and the release notes
    judged), not the data. Over a drifting synthetic month the swap alone gave a PSI of 1.5 and failed the check."""
    other = sample["model_version"].astype(str) != model.version
    if not other.any():
        return sample
    sample = sample.copy()
    sample.loc[other, "probability"] = model.predict_proba(sample.loc[other])
    sample.loc[other, "model_version"] = model.version
    return sample


def period_findings(data: PeriodData, drift: DriftSummary, settings: Settings) -> Findings:
    """Period mode's figures judged against the tolerances: feature drift and quality on the samples, score PSI on
    every row (on the samples, rescored, when another version scored some of them) and labelled quality (AUC
    weighted by clipped inverse propensity, calibration, by tier) on every row."""
    config, log, card = settings.monitor, data.log, data.card
    ref, cur = data.samples
    both = (ref, cur) if data.rescored else (data.reference_log, log)  # one model's scores on both sides
    scores = {"reference": both[0]["probability"].to_numpy(), "current": both[1]["probability"].to_numpy()}
    figures = {
        **_drift_figures(drift),
        **feature_quality(ref, cur, data.spec.features, _vocabulary(data.spec, ref)),
        **labelled_quality(
            log, settings.policy.capacity, config.bins, interval_rows=config.sample_rows, seed=config.seed
        ),
        "psi": psi(scores["reference"], scores["current"], config.bins),
        "psi_basis": _psi_basis(data),
        "psi_evidently": drift.prediction.score if drift.prediction else None,
        "rows_current": len(log),
        "rows_reference": len(data.reference_log),
        "sampled_current": len(cur),
        "sampled_reference": len(ref),
        "outcomes_for_unknown_ids": data.unmatched_outcomes,
        "tiers": tier_quality(log, [*(card.tier_cutoffs if card else {}), LOWEST_TIER]).to_dict(orient="records"),
    }
    return Findings(
        "monitor",
        f"scores {data.current} vs {data.reference}",
        data.version,
        figures,
        tuple(judge(figures, config)),
        params={"current": str(data.current), "reference": str(data.reference), "sample_rows": config.sample_rows},
        windows={"current": data.current, "reference": data.reference},
        scores=scores,
    )


def _psi_basis(data: PeriodData) -> str:
    if not data.rescored:
        return "over every row"
    return (
        f"on the samples, the records version(s) {', '.join(data.rescored)} scored scored again by version "
        f"{data.version} from their logged features (score drift of the model in service, not of the swap)"
    )


def _quality_report(
    data: PeriodData, findings: Findings, out_dir: Path, config: MonitorSettings
) -> QualitySummary | None:
    """Evidently's classification report on (a sample of) the labelled records, when there are enough of both
    classes; the tier A cut-off is its decision threshold."""
    figures = findings.figures
    if figures["labelled"] < config.min_labelled or not 0 < figures["positive_rate"] < 1:
        return None
    labelled = data.log[data.log["outcome"].notna()]
    if len(labelled) > config.sample_rows:
        labelled = labelled.sample(config.sample_rows, random_state=config.seed)
    card = data.card
    threshold = next(iter(card.tier_cutoffs.values())) if card and card.tier_cutoffs else 0.5
    return build_quality_report(labelled, out_dir, threshold=threshold)


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


def _scoring_model(settings: Settings, log: pd.DataFrame, spec: DatasetSpec | None) -> tuple[str, ScoringModel | None]:
    """The version that scored the period's last record, and that model (None when `spec` overrides its card)."""
    last = log.iloc[-1]
    if spec is not None:
        return str(last["model_version"]), None
    configure(settings)
    return str(last["model_version"]), load_version(str(last["model_name"]), str(last["model_version"]))


def _champion_version(settings: Settings) -> str:
    configure(settings)
    champion = version_by_alias(settings.model_name, CHAMPION)
    return str(champion.version) if champion else "none"


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


def publish(
    settings: Settings,
    out_dir: Path,
    findings: Findings,
    drift: DriftSummary,
    quality: QualitySummary | None = None,
) -> MonitorReport:
    """Write the summary pages, log the run to MLflow and refresh the index."""
    summary = summarize(findings, drift, quality)
    write_report(out_dir, summary, page_body(findings, drift))
    log_monitoring_run(settings, out_dir, findings.kind, summary, findings.params)
    write_index(settings.reports_dir)
    return MonitorReport(out_dir, summary, findings.checks, drift, quality)


def summarize(findings: Findings, drift: DriftSummary, quality: QualitySummary | None = None) -> dict[str, Any]:
    """The machine-readable `summary.json`: status, headline, checks, every figure and the report files."""
    files = {"data drift + data summary (Evidently)": drift.html_path.name, "drift JSON": drift.json_path.name}
    figures = findings.figures
    if quality is not None:
        files |= {"classification quality (Evidently)": quality.html_path.name, "quality JSON": quality.json_path.name}
        figures = {**figures, "evidently_quality": quality.metrics}
    headline_keys = ("drifted", "drifted_columns", "share_drifted", "psi", "roc_auc", "labelled")
    windows = findings.windows
    return {
        "kind": findings.kind,
        "title": findings.title,
        "status": findings.status,
        "model_version": findings.model_version,
        "windows": {k: {"start": w.start.isoformat(), "end": w.end.isoformat()} for k, w in windows.items()},
        "headline": {k: figures.get(k) for k in headline_keys},
        "checks": [c.to_dict() for c in findings.checks],
        "figures": figures,
        "files": {**files, "summary JSON": "summary.json"},
    }


def log_monitoring_run(
    settings: Settings, out_dir: Path, kind: str, summary: dict[str, Any], params: dict[str, Any]
) -> None:
    """One run in the monitoring experiment: figures as metrics, checks as tags, the report folder as artifacts."""
    configure(settings, experiment=monitoring_experiment(settings))
    figures = summary["figures"]
    tags = {
        "scoreloop.role": "monitoring",
        "scoreloop.kind": kind,
        "scoreloop.model_version": summary["model_version"],
        "scoreloop.status": summary["status"],
        "scoreloop.failed": "; ".join(c["message"] for c in summary["checks"] if c["passed"] is False)[:5000],
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


def page_body(findings: Findings, drift: DriftSummary) -> str:
    """The summary page: checks, per-feature drift and quality, then labelled quality by tier and calibration, and
    (period mode) the plots."""
    figures = findings.figures
    check_rows = [
        {"check": c.name, "figure": c.value, "tolerance": c.tolerance, "status": _check_badge(c), "detail": c.detail}
        for c in findings.checks
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
            f"<b>{figures['psi']:.4f}</b> {figures['psi_basis']} (Evidently's PSI on the sample: "
            f"{figures.get('psi_evidently') or float('nan'):.4f}). "
            f"Rows: {figures['rows_current']} current, {figures['rows_reference']} reference; "
            f"sampled for Evidently and the feature checks: {figures['sampled_current']} and "
            f"{figures['sampled_reference']}. Outcomes received for ids never scored: "
            f"{figures.get('outcomes_for_unknown_ids', 0)}.</p>"
        )
    body += "<h2>Features</h2>" + table(columns)
    if "labelled" in figures:
        body += (
            f"<h2>Labelled records</h2><p>{figures['labelled']} labelled records (coverage "
            f"{figures['label_coverage']:.1%}); ROC AUC {figures['roc_auc']:.4f} ({figures['roc_auc_basis']}), "
            f"{figures['roc_auc_unweighted']:.4f} unweighted, {figures['roc_auc_explored']:.4f} on the "
            f"{figures['explored_labelled']} explored records; expected calibration error "
            f"{figures['calibration_error']:.4f}.</p>"
            + _estimates(figures)
            + "<h3>By tier</h3>"
            + table(pd.DataFrame(figures["tiers"]))
            + "<h3>Calibration (labelled records)</h3>"
            + table(pd.DataFrame(figures["calibration"]))
        )
    if findings.scores:
        body += _period_plots(findings.scores, pd.DataFrame(figures["calibration"]))
    return body


def _estimates(figures: dict[str, Any]) -> str:
    """The labelled (off-policy) estimates with their intervals beside what the probabilities expect (CBPE)."""
    rows = [
        {
            "figure": name,
            "from outcomes": f"{figures[key]:.4f} ({figures[key + '_low']:.4f} to {figures[key + '_high']:.4f})",
            "expected from probabilities (all / unworked)": f"{figures[cbpe]:.4f} / {figures[cbpe + '_unworked']:.4f}",
        }
        for name, key, cbpe in (
            ("ROC AUC", "roc_auc", "expected_roc_auc"),
            ("positive rate", "positive_rate_snipw", "expected_positive_rate"),
        )
    ]
    flag = figures["estimates_disagree"]
    return (
        f"<p>Estimator: {html.escape(figures['roc_auc_basis'])}; effective sample size "
        f"{figures['effective_size']:.0f} of {figures['labelled']} labelled; worklist value "
        f"{figures['worklist_value']:.1f} conversions per 100 worked ({figures['worklist_value_low']:.1f} to "
        f"{figures['worklist_value_high']:.1f}).</p>"
        + table(rows)
        + (f"<p><b>The estimates disagree on {html.escape(flag)}</b>: the probabilities expect a figure outside the "
           "interval the outcomes give (the model is miscalibrated on what was not worked, or the world moved)."
           "</p>" if flag else "")
    )  # fmt: skip


def _check_badge(check: Check) -> str:
    return badge("info" if check.passed is None else "pass" if check.passed else "fail")


def _period_plots(scores: dict[str, np.ndarray], calibration: pd.DataFrame) -> str:
    """Score distributions of both periods, and the reliability curve on labelled records."""
    figure = new_figure(9, 3.2)
    left, right = figure.subplots(1, 2)
    bins = np.linspace(0, 1, 41)
    for label in ("reference", "current"):
        left.hist(scores[label], bins=bins, density=True, histtype="step", label=label)
    left.set_title("probability distribution")
    left.legend(fontsize=8)
    if len(calibration):
        right.plot(calibration["mean_predicted"], calibration["observed_rate"], marker="o")
    right.plot([0, 1], [0, 1], color="grey", linestyle=":")
    right.set_title("reliability on labelled records")
    right.set_xlabel("mean predicted")
    right.set_ylabel("observed rate")
    return "<h2>Plots</h2>" + png(figure)
