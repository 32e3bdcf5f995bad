"""Monitoring runs: read two sets of records, build the drift report, keep it under the home and in MLflow."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd

from monitoring.drift import DriftSummary, build_drift_report
from scoreloop.coerce import coerce_frame, missing_columns
from scoreloop.ingest import read_raw
from scoreloop.settings import Settings
from scoreloop.spec import DatasetSpec
from scoreloop.tracking import CHAMPION, configure, version_by_alias


def read_features(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """Feature columns of a CSV/Parquet file, coerced like serving does (unseen categories kept)."""
    raw = read_raw(path).frame
    absent = missing_columns(raw.columns, spec, with_target=False)
    if absent:
        raise ValueError(f"{path} lacks feature columns {absent}")
    return coerce_frame(raw, spec, with_target=False, strict=False).rows


def monitor_drift(settings: Settings, spec: DatasetSpec, reference: Path, current: Path) -> DriftSummary:
    """Drift of `current` against `reference`; the report is logged in a monitoring run tagged with the champion."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out_dir = settings.reports_dir / f"{stamp}-drift"
    summary = build_drift_report(read_features(reference, spec), read_features(current, spec), spec, out_dir)
    configure(settings, experiment=f"{settings.experiment}-monitoring")
    champion = version_by_alias(settings.model_name, CHAMPION)
    tags = {"scoreloop.role": "monitoring", "scoreloop.model_version": champion.version if champion else "none"}
    with mlflow.start_run(run_name=f"drift-{stamp}", tags=tags):
        mlflow.log_params({"reference": str(reference), "current": str(current)})
        mlflow.log_metrics(
            {
                "reference_rows": summary.reference_rows,
                "current_rows": summary.current_rows,
                "drifted_columns": summary.drifted_columns,
                "share_drifted": summary.share_drifted,
                **{f"drift_score.{c.column}": c.score for c in summary.columns},
            }
        )
        mlflow.log_artifacts(str(out_dir), "drift")
    return summary
