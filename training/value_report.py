"""`scoreloop value`: the champion's value against the simple approach, read from its training run, as a report.

Training computed the figures on its holdout (`scoreloop.core.value`, logged as `value_*` metrics); this reads them
back for the version in use and writes them as a report page listed on the reports index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from scoreloop.core.pages import new_report_dir, write_index, write_report
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import CHAMPION, configure, version_by_alias
from scoreloop.core.value import VALUE_RULES_TAG, table_from_metrics, value_body, verdict


@dataclass(frozen=True)
class ChampionValue:
    """The champion's version, its value table and the simple approach's thresholds, from its training run."""

    version: str
    table: pd.DataFrame
    rules: str


def champion_value(settings: Settings) -> ChampionValue:
    """What training logged about the champion's value; a clear error when there is no champion or no figures."""
    configure(settings)
    champion = version_by_alias(settings.model_name, CHAMPION)
    if champion is None:
        raise LookupError(f"model {settings.model_name!r} has no champion: train and promote first")
    run = MlflowClient().get_run(champion.run_id)
    table = table_from_metrics(run.data.metrics)
    if table.empty:
        raise LookupError(f"version {champion.version} was trained before value figures existed: retrain it")
    return ChampionValue(str(champion.version), table, run.data.tags.get(VALUE_RULES_TAG, ""))


def write_value_report(settings: Settings, value: ChampionValue) -> Path:
    """The value page under the reports folder (and the index updated); returns its HTML path."""
    passed, text = verdict(value.table, settings.value.margin)
    folder = new_report_dir(settings.reports_dir, "value")
    summary = {
        "kind": "value",
        "title": f"Value of version {value.version} against the simple approach",
        "status": "pass" if passed else "fail",
        "model_version": value.version,
        "headline": {"verdict": text, **value.table.round(4).to_dict(orient="index")},
    }
    body = value_body(value.table, settings.policy.capacity, settings.value, value.rules)
    path = write_report(folder, summary, body)
    write_index(settings.reports_dir)
    return path
