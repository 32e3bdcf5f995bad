"""Sliding-window retraining's pure parts: scoring-log rows -> training rows, the window comparison, the outcome
and its page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.spec import DatasetSpec
from scoreloop.loop.retrain import (
    RetrainFindings,
    compare_windows,
    logged_rows,
    retrain_findings,
    retrain_page,
    training_rows,
)
from scoreloop.monitoring.drift import ColumnDrift, DriftSummary
from scoreloop.training.pending import TrainResult
from scoreloop.training.promote import GateDecision

SPEC = DatasetSpec(
    id_column="lead_id",
    time_column="created_at",
    target="converted",
    positive_label="1",
    numeric=["employees"],
    categorical=["industry"],
)


def log() -> pd.DataFrame:
    """A labelled scoring-log extract: L2 scored twice, L3 without an outcome yet, L4 missing its industry."""
    return pd.DataFrame(
        {
            "record_id": ["L1", "L2", "L3", "L2", "L4"],
            "scored_at": pd.to_datetime(["2024-03-05", "2024-03-01", "2024-03-02", "2024-03-04", "2024-03-03"]),
            "created_at": ["2024-02-01T00:00:00", "2024-02-02T00:00:00", "2024-02-03T00:00:00",
                           "2024-02-02T00:00:00", "2024-01-30T00:00:00"],
            "employees": [10, 20, 30, 25, None],
            "industry": ["saas", "retail", "saas", "retail", None],
            "outcome": [1.0, 0.0, np.nan, 1.0, 0.0],
            "propensity": [1.0, 0.1, 0.1, 0.2, np.nan],
            "policy": ["exploit", "explore", "skip", "explore", None],
        }
    )  # fmt: skip


def labelled(basis: str = "scored_at", frame: pd.DataFrame | None = None) -> pd.DataFrame:
    return training_rows(logged_rows(log() if frame is None else frame, SPEC, basis), SPEC)


def test_logged_rows_keep_unworked_records_for_the_gate_and_training_takes_the_labelled() -> None:
    logged = logged_rows(log(), SPEC)
    assert list(logged["lead_id"]) == ["L3", "L4", "L2", "L1"]  # every record once, by scored_at
    assert np.isnan(logged.set_index("lead_id").loc["L3", "converted"])  # not worked: no outcome, kept
    assert logged.set_index("lead_id").loc["L3", "propensity"] == 0.1


def test_only_labelled_records_train_once_each_in_time_order() -> None:
    rows = labelled()
    assert list(rows["lead_id"]) == ["L4", "L2", "L1"]  # by scored_at; L3 has no label; L2 once
    assert list(rows.columns) == ["lead_id", "created_at", "employees", "industry", "converted", "propensity", "policy"]
    l2 = rows.set_index("lead_id").loc["L2"]
    assert (l2["employees"], l2["converted"], l2["propensity"]) == (25.0, 1, 0.2)  # its last scoring wins
    assert rows["created_at"].tolist() == list(pd.to_datetime(["2024-03-03", "2024-03-04", "2024-03-05"]))
    assert rows.set_index("lead_id").loc["L4", "industry"] is None  # missing stays missing for the model frame


def test_the_record_time_basis_orders_by_the_records_own_time() -> None:
    rows = labelled("record")
    assert list(rows["lead_id"]) == ["L4", "L1", "L2"]
    assert rows["created_at"].iloc[0] == datetime(2024, 1, 30)


def test_the_record_basis_needs_the_time_column_in_the_log() -> None:
    with pytest.raises(ValueError, match="does not store the record time column 'created_at'"):
        labelled("record", log().drop(columns="created_at"))


def test_windows_are_compared_on_coverage_positive_rate_and_exploration() -> None:
    current = labelled()
    previous = current.iloc[:1]
    figures = compare_windows(current, previous, (10, 4), SPEC)
    assert figures["current_labelled"] == 3 and figures["current_label_coverage"] == pytest.approx(0.3)
    assert figures["current_positive_rate"] == pytest.approx(2 / 3)
    assert figures["current_explored_share"] == pytest.approx(1 / 3)
    assert figures["previous_label_coverage"] == pytest.approx(0.25) and figures["previous_positive_rate"] == 0
    empty = compare_windows(current.iloc[0:0], previous, (0, 4), SPEC)
    assert np.isnan(empty["current_label_coverage"]) and np.isnan(empty["current_positive_rate"])


def decision(promoted: bool) -> GateDecision:
    reason = "roc_auc: challenger 0.8000 vs champion 0.7900, improvement +0.0100 meets the margin 0"
    return GateDecision(promoted, reason, "roc_auc", "4", 0.80, "3", 0.79, "2024-03-06T00:00:00", 0.02, 0.03, 0.0)


TRAINED = TrainResult("run4", "m", "4", "study", {}, {"roc_auc": 0.8}, 0)
WINDOW = {"start": "2024-03-01T00:00:00", "end": "2024-03-06T00:00:00", "previous_start": "2024-02-25T00:00:00"}


def findings(**outcome) -> RetrainFindings:
    current = labelled()
    drift = DriftSummary(
        1,
        3,
        1,
        0.5,
        (ColumnDrift("employees", "K-S", 0.01, 0.05, True), ColumnDrift("industry", "chi2", 0.4, 0.05, False)),
        Path("drift.html"),
        Path("drift.json"),
    )
    return retrain_findings(
        current, current.iloc[:1], (10, 4), SPEC, drift, window=WINDOW, params={"ipw": True}, ipw=True, **outcome
    )


def test_the_outcome_follows_the_gate_and_the_comparison_includes_drift() -> None:
    promoted = findings(trained=TRAINED, decision=decision(True))
    assert (promoted.outcome, promoted.reason) == ("promoted", decision(True).reason)
    assert promoted.gate == decision(True).to_dict() and promoted.rows == 3 and promoted.drifted == ("employees",)
    assert promoted.comparison["drift_score"] == {"employees": 0.01, "industry": 0.4}
    assert promoted.comparison["share_drifted"] == 0.5 and promoted.comparison["current_labelled"] == 3
    assert findings(trained=TRAINED, decision=decision(False)).outcome == "refused"
    failed = findings(trained=None, decision=None, failure="not trained: 3 rows are too few")
    assert (failed.outcome, failed.reason, failed.gate) == ("not-trained", "not trained: 3 rows are too few", {})


def test_the_retrain_page_from_findings_alone() -> None:
    summary, body = retrain_page(findings(trained=TRAINED, decision=decision(False)), "run-9")
    assert summary["status"] == summary["outcome"] == "refused" and summary["model_version"] == "4"
    assert summary["headline"] == {"drifted": ["employees"], "drifted_columns": 1, "labelled": 3, "roc_auc": 0.8}
    assert summary["files"] == {"training-set drift (Evidently)": "drift.html"} and summary["run_id"] == "run-9"
    assert "<b>refused</b>: roc_auc: challenger 0.8000" in body and "weighted by clipped inverse propensity" in body
    assert "between the training sets: employees." in body and "<td>margin</td><td>0</td>" in body
    assert "<td>current</td><td>10</td><td>3</td><td>0.3</td>" in body
