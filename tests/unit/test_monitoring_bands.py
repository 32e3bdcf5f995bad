"""Bands over cohorts on a real record store, against counts and intervals worked out by hand."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.metrics import wilson_interval
from scoreloop.core.store import Outcome, RecordStore, ScoredBatch
from scoreloop.monitoring.bands import band_of, band_table


def batch(at: datetime, ids: list[str], scores: list[int], tiers: list[str], propensity: list[float]) -> ScoredBatch:
    policy = {"propensity": propensity, "worked": [True] * len(ids), "policy": ["exploit"] * len(ids)}
    scored = {"probability": np.array(scores) / 100, "score": scores, "tier": tiers}
    return ScoredBatch({"x": [1.0] * len(ids)}, scored, "m", "1", record_ids=ids, scored_at=at, policy=policy)


@pytest.fixture
def log(tmp_path: Path) -> pd.DataFrame:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    store.log_scores(
        [
            batch(datetime(2025, 3, 4), ["a", "b", "c", "d", "e"], [95, 92, 91, 70, 65], ["A", "A", "A", "B", "B"],
                  [1, 1, 1, 0.5, 0.25]),
            batch(datetime(2025, 3, 6), ["a"], [96], ["A"], [1]),  # same week: a counts once
            batch(datetime(2025, 3, 11), ["f"], [93], ["A"], [1]),
        ]
    )  # fmt: skip
    store.add_outcomes([Outcome("a", 1), Outcome("b", 0), Outcome("d", 1), Outcome("e", 0), Outcome("f", 1)])
    return store.labelled(features=False)


def test_bands_count_records_labels_and_conversions_per_weekly_cohort(log: pd.DataFrame) -> None:
    out = band_table(log, "week", "tier", 20, now=datetime(2025, 3, 25), outcome_days=14)
    rows = {(str(r.cohort.date()), r.tier): r for r in out.itertuples()}
    assert set(rows) == {("2025-03-03", "A"), ("2025-03-03", "B"), ("2025-03-10", "A")}
    a = rows["2025-03-03", "A"]
    assert (a.records, a.labelled, a.converted, a.rate) == (3, 2, 1, 0.5)
    assert (a.low, a.high) == pytest.approx((0.0945, 0.9055), abs=1e-4)  # Wilson 95% for 1 of 2
    b = rows["2025-03-03", "B"]
    assert (b.records, b.labelled, b.converted) == (2, 2, 1)
    assert b.ipw_rate == pytest.approx(2 / (2 + 4))  # d weighs 1/0.5, e 1/0.25
    # the week of 10 March ended on the 17th: 14 days of outcomes reach past the 25th
    assert not a.young and rows["2025-03-10", "A"].young
    assert rows["2025-03-10", "A"].rate == 1.0 and rows["2025-03-10", "A"].low == pytest.approx(0.2065, abs=1e-4)


def test_score_bands_and_months(log: pd.DataFrame) -> None:
    out = band_table(log, "month", "band", 20, now=datetime(2025, 6, 1), outcome_days=14)
    assert out.set_index("band")["records"].to_dict() == {"60-79": 2, "80-100": 4}  # a counts once in March
    assert not out["young"].any()
    assert band_of(pd.Series([0, 19, 20, 99, 100]), 20).tolist() == ["0-19", "0-19", "20-39", "80-100", "80-100"]
    assert band_of(pd.Series([89, 90, 100]), 30).tolist() == ["60-89", "90-100", "90-100"]


def test_wilson_interval_has_no_width_without_labels() -> None:
    low, high = wilson_interval(np.array([0, 0]), np.array([0, 12]))
    assert np.isnan(low[0]) and low[1] == 0 and high[1] == pytest.approx(0.2425, abs=1e-4)
