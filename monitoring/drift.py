"""Data-drift reports: the one adapter between scoreloop and Evidently's drift API.

Everything Evidently-specific (dataset wrapping, the preset, the snapshot's dict layout) stays in this file, so a
change in Evidently's API touches nothing else. Callers get a plain `DriftSummary` plus the HTML and JSON reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from scoreloop.model import model_frame
from scoreloop.spec import DatasetSpec


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for MLflow logging and the CLI."""
        data = asdict(self)
        data["columns"] = [asdict(c) for c in self.columns]
        data["html_path"] = str(self.html_path)
        data["json_path"] = str(self.json_path)
        return data


def build_drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, spec: DatasetSpec, out_dir: Path
) -> DriftSummary:
    """Compare `current` with `reference` on the spec's numeric and categorical features.

    Writes `drift.html` and `drift.json` into `out_dir`. Text features and non-feature columns (id, time,
    target) are left out: drift is judged on what the model consumes and Evidently can test per column.
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

    definition = DataDefinition(numerical_columns=list(spec.numeric), categorical_columns=list(spec.categorical))
    # include_tests adds Evidently's per-column pass/fail, the only place the drift verdict is recorded.
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(_drift_frame(current, spec), data_definition=definition),
        Dataset.from_pandas(_drift_frame(reference, spec), data_definition=definition),
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
        columns=columns,
        html_path=html_path,
        json_path=json_path,
    )


def _drift_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The compared features, with a missing category as its own value, the way the model sees it.

    Evidently drops missing values before testing, so without the fill a jump in the missing share would go
    unseen and an all-missing categorical column would make it raise.
    """
    return model_frame(frame, spec)[[*spec.numeric, *spec.categorical]]


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
