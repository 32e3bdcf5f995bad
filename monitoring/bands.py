"""Bands over cohorts (`scoreloop bands`): of the records scored in each tier (or score band) each week or month,
how many converted, by model version, with an interval; cohorts too young for their outcomes are marked as such.

This is how a team learns what "tier A" means: 6sense's backtest of old scores by band. A record counts once per
cohort, with its last scoring in it. The conversion rate is over labelled records; when a work policy logged
propensities, the inverse-propensity-weighted rate is given too (labels exist mostly where the policy worked, so the
plain rate describes the worked records, the weighted one the whole cohort), with a Wilson interval on the effective
number of labels. Collect (`RecordStore.labelled`, without features), compute (`band_table`, pure), publish
(`publish_bands`: page and index).
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from scoreloop.core.metrics import wilson_interval
from scoreloop.core.pages import new_report_dir, table, write_index, write_report
from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore

Period = Literal["week", "month"]
By = Literal["tier", "band"]
FREQUENCY = {"week": "W-SUN", "month": "M"}  # weeks start on Monday


def cohort_start(scored_at: pd.Series, period: Period) -> pd.Series:
    """The first day of each record's week (Monday) or month."""
    return scored_at.dt.to_period(FREQUENCY[period]).dt.start_time


def band_of(score: pd.Series, width: int) -> pd.Series:
    """Score bands of `width` points as text ('0-19', ..., '80-100': the last band takes 100 in)."""
    last = 99 // width * width
    low = np.minimum(score.to_numpy() // width * width, last)
    high = np.where(low == last, 100, low + width - 1)
    return pd.Series([f"{lo}-{hi}" for lo, hi in zip(low, high, strict=True)], index=score.index)


def band_table(log: pd.DataFrame, period: Period, by: By, width: int, now: datetime, outcome_days: int) -> pd.DataFrame:
    """A row per cohort, tier (or band) and model version: records, labelled, converted, rate and its Wilson 95%
    interval, the IPW rate when propensities were logged, and whether the cohort is too young (its period ended less
    than `outcome_days` before `now`). `log` is `RecordStore.labelled(features=False)`."""
    log = log.assign(cohort=cohort_start(log["scored_at"], period))
    log = log[~(log.duplicated(["cohort", "record_id"], keep="last") & log["record_id"].notna())]
    group = log["tier"] if by == "tier" else band_of(log["score"], width)
    labelled = log["outcome"].notna()
    weights = 1.0 / log["propensity"].where(log["propensity"] > 0)
    frame = pd.DataFrame(
        {
            "cohort": log["cohort"],
            by: group,
            "version": log["model_version"],
            "records": 1,
            "labelled": labelled.astype(int),
            "converted": (log["outcome"] == 1).astype(int),
            "w": weights.where(labelled),
            "wy": (weights * log["outcome"]).where(labelled),
            "w2": (weights**2).where(labelled),
        }
    )
    out = frame.groupby(["cohort", by, "version"], sort=True).sum(min_count=1).reset_index()
    out["rate"] = out["converted"] / out["labelled"].where(out["labelled"] > 0)
    out["low"], out["high"] = wilson_interval(out["converted"], out["labelled"])
    out["ipw_rate"] = out["wy"] / out["w"]
    effective = out["w"] ** 2 / out["w2"]
    out["ipw_low"], out["ipw_high"] = wilson_interval(out["ipw_rate"] * effective, effective)
    ends = out["cohort"] + (pd.DateOffset(weeks=1) if period == "week" else pd.DateOffset(months=1))
    out["young"] = ends + timedelta(days=outcome_days) > pd.Timestamp(now)
    return out.drop(columns=["w", "wy", "w2"])


def bands(settings: Settings, period: Period, by: By, now: datetime) -> pd.DataFrame:
    """The band table of the whole scoring log (collect + compute)."""
    log = RecordStore(settings.record_store_url).labelled(features=False)
    return band_table(log, period, by, settings.monitor.band_width, now, settings.monitor.outcome_days)


def publish_bands(settings: Settings, figures: pd.DataFrame, period: Period, by: By) -> Path:
    """The bands page under the reports folder, listed on the index; returns its HTML path."""
    folder = new_report_dir(settings.reports_dir, "bands", f"{by}-{period}")
    shown = figures.assign(
        cohort=figures["cohort"].dt.strftime("%Y-%m-%d"),
        young=np.where(figures["young"], "too young: outcomes still arriving", ""),
    )
    body = (
        f"<p>Of the records scored in each {html.escape(by)} each {html.escape(period)}, how many converted. "
        "A record counts once per cohort (its last scoring in it). <em>rate</em> is over labelled records, with a "
        "Wilson 95% interval; <em>ipw_rate</em> weights labels by 1/propensity when a work policy logged one. "
        f"Cohorts whose {html.escape(period)} ended less than {settings.monitor.outcome_days} days ago "
        "(SCORELOOP_MONITOR__OUTCOME_DAYS) are too young to judge.</p>" + table(shown)
    )
    versions = sorted(figures["version"].astype(str).unique())
    summary = {
        "kind": "bands",
        "title": f"Conversion by {by} over {period}ly cohorts",
        "status": "info",
        "model_version": ", ".join(versions),
        "headline": {"cohorts": int(figures["cohort"].nunique()), "young": int(figures["young"].sum())},
    }
    path = write_report(folder, summary, body)
    write_index(settings.reports_dir)
    return path
