"""Evidently reports: the one adapter between scoreloop and Evidently (data drift, data summary, classification).

Everything Evidently-specific (dataset wrapping, the presets, the snapshot's dict layout) stays in this file, so a
change in Evidently's API touches nothing else. Callers get a plain `DriftSummary` or `QualitySummary` plus the
HTML and JSON reports.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import ClassificationPreset, DataDriftPreset, DataSummaryPreset

from scoreloop.core.model import model_frame
from scoreloop.core.spec import DatasetSpec


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's verdict on one feature column."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftSummary:
    """What a drift run found, and where its reports were written."""

    reference_rows: int
    current_rows: int
    drifted_columns: int
    share_drifted: float
    columns: tuple[ColumnDrift, ...]
    html_path: Path
    json_path: Path
    prediction: ColumnDrift | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for MLflow logging and the CLI."""
        data = asdict(self)
        data["columns"] = [asdict(c) for c in self.columns]
        data["html_path"] = str(self.html_path)
        data["json_path"] = str(self.json_path)
        return data


@dataclass(frozen=True)
class QualitySummary:
    """Evidently's classification figures on labelled records, and where its reports were written."""

    rows: int
    metrics: dict[str, float]
    html_path: Path
    json_path: Path


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    out_dir: Path,
    *,
    prediction: str | None = None,
    data_summary: bool = False,
) -> DriftSummary:
    """Compare `current` with `reference` on the spec's numeric and categorical features.

    Writes `drift.html` and `drift.json` into `out_dir`. Text features and non-feature columns (id, time,
    target) are left out: drift is judged on what the model consumes and Evidently can test per column.
    `prediction` names a model-output column (e.g. `probability`) whose drift is reported apart from the
    features (PSI); `data_summary` adds Evidently's per-column statistics (missing values, value counts).
    """
    features = [*spec.numeric, *spec.categorical]
    if not features:
        raise ValueError("the spec has no numeric or categorical features to compare for drift")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} frame is missing feature column(s) {missing}")
        if frame.empty:
            raise ValueError(f"{name} frame is empty: drift needs rows on both sides")

    if prediction is not None:
        for name, frame in (("reference", reference), ("current", current)):
            if prediction not in frame.columns:
                raise ValueError(f"{name} frame is missing the prediction column {prediction!r}")

    numeric = [*spec.numeric, *([prediction] if prediction else [])]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=list(spec.categorical))
    metrics: list[Any] = [DataDriftPreset(columns=features)]
    if prediction is not None:
        metrics.append(ValueDrift(column=prediction, method="psi"))
    if data_summary:
        metrics.append(DataSummaryPreset(columns=features))
    # include_tests adds Evidently's per-column pass/fail, the only place the drift verdict is recorded.
    report = Report(metrics, include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(_drift_frame(current, spec, prediction), data_definition=definition),
        Dataset.from_pandas(_drift_frame(reference, spec, prediction), data_definition=definition),
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / "drift.html", out_dir / "drift.json"
    snapshot.save_html(str(html_path))  # a Path argument makes Evidently silently write nothing
    json_path.write_text(snapshot.json())

    columns, count, share = _parse_snapshot(snapshot.dict())
    return DriftSummary(
        reference_rows=len(reference),
        current_rows=len(current),
        drifted_columns=count,
        share_drifted=share,
        columns=tuple(c for c in columns if c.column != prediction),
        html_path=html_path,
        json_path=json_path,
        prediction=next((c for c in columns if c.column == prediction), None),
    )


def build_quality_report(
    labelled: pd.DataFrame,
    out_dir: Path,
    *,
    target: str = "outcome",
    probability: str = "probability",
    threshold: float = 0.5,
) -> QualitySummary:
    """Evidently's classification quality (ROC AUC, log loss, precision/recall at `threshold`) on labelled records.

    Writes `quality.html` and `quality.json` into `out_dir`. Needs both classes among the labels.
    """
    frame = pd.DataFrame(
        {target: labelled[target].astype(int).to_numpy(), probability: labelled[probability].astype(float).to_numpy()}
    )
    if frame[target].nunique() < 2:
        raise ValueError(f"classification quality needs both outcomes among {len(frame)} labelled records")
    definition = DataDefinition(
        numerical_columns=[probability],
        classification=[BinaryClassification(target=target, prediction_probas=probability, pos_label=1)],
    )
    snapshot = Report([ClassificationPreset(probas_threshold=threshold)]).run(
        Dataset.from_pandas(frame, data_definition=definition), None
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / "quality.html", out_dir / "quality.json"
    snapshot.save_html(str(html_path))
    json_path.write_text(snapshot.json())
    scalars = {
        _snake(m["config"]["type"].rsplit(":", 1)[-1]): float(m["value"])
        for m in snapshot.dict()["metrics"]
        if isinstance(m["value"], int | float)
    }
    return QualitySummary(rows=len(frame), metrics=scalars, html_path=html_path, json_path=json_path)


def _snake(name: str) -> str:
    """'RocAuc' -> 'roc_auc', 'F1Score' -> 'f1_score'."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _drift_frame(frame: pd.DataFrame, spec: DatasetSpec, prediction: str | None = None) -> pd.DataFrame:
    """The compared features, with a missing category as its own value, the way the model sees it.

    Evidently drops missing values before testing, so without the fill a jump in the missing share would go
    unseen and an all-missing categorical column would make it raise.
    """
    compared = model_frame(frame, spec)[[*spec.numeric, *spec.categorical]]
    if prediction is not None:
        compared[prediction] = frame[prediction].astype(float).to_numpy()
    return compared


def _parse_snapshot(snapshot: dict[str, Any]) -> tuple[tuple[ColumnDrift, ...], int, float]:
    """Read per-column drift and the drifted count/share out of an Evidently 0.7 snapshot dict.

    A `ValueDrift` metric's value is a distance (drift when >= threshold) or a p-value (drift when < threshold),
    depending on the method Evidently picked for the sample size; so the verdict is taken from the metric's
    test status (FAIL = drifted) rather than recomputed here.
    """
    failed = {t["metric_config"]["metric_id"] for t in snapshot["tests"] if t["status"] == "FAIL"}
    columns: list[ColumnDrift] = []
    counts: dict[str, float] | None = None
    for metric in snapshot["metrics"]:
        config = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            counts = metric["value"]
        elif kind == "ValueDrift":
            columns.append(
                ColumnDrift(
                    column=config["column"],
                    method=config["method"],
                    score=float(metric["value"]),
                    threshold=float(config["threshold"]),
                    drifted=metric["id"] in failed,
                )
            )
    if counts is None or not columns:
        raise RuntimeError("Evidently snapshot has no DriftedColumnsCount/ValueDrift metrics: has its API changed?")
    return tuple(columns), int(counts["count"]), float(counts["share"])
