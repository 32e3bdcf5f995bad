"""`scoreloop value`: the champion's value against the simple approach, read from its training run, as a report.

Training computed the figures on its holdout (`scoreloop.core.value`, logged as `value_*` metrics); this reads them
back for the version in use and writes them as a report page listed on the reports index.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from scoreloop.core.pages import new_report_dir, write_index, write_report
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import CHAMPION, configure, version_by_alias
from scoreloop.core.value import table_from_metrics, value_body, verdict


def champion_value(settings: Settings) -> tuple[str, pd.DataFrame]:
    """The champion's version and its value table; a clear error when there is no champion or no figures."""
    configure(settings)
    champion = version_by_alias(settings.model_name, CHAMPION)
    if champion is None:
        raise LookupError(f"model {settings.model_name!r} has no champion: train and promote first")
    table = table_from_metrics(MlflowClient().get_run(champion.run_id).data.metrics)
    if table.empty:
        raise LookupError(f"version {champion.version} was trained before value figures existed: retrain it")
    return str(champion.version), table


def write_value_report(settings: Settings, version: str, table: pd.DataFrame) -> Path:
    """The value page under the reports folder (and the index updated); returns its HTML path."""
    passed, text = verdict(table, settings.value.margin)
    folder = new_report_dir(settings.reports_dir, "value")
    summary = {
        "kind": "value",
        "title": f"Value of version {version} against the simple approach",
        "status": "pass" if passed else "fail",
        "model_version": version,
        "headline": {"verdict": text, **table.round(4).to_dict(orient="index")},
    }
    path = write_report(folder, summary, value_body(table, settings.policy.capacity, settings.value))
    write_index(settings.reports_dir)
    return path
