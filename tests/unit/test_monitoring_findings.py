"""Monitoring's compute and page steps apart from the store, the registry and Evidently: figures and checks from
inline frames and a hand-built drift summary; the summary page from a hand-built `Findings`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.metrics import expected_calibration_error, psi
from scoreloop.core.offpolicy import ESTIMATOR
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.monitoring.checks import Check
from scoreloop.monitoring.drift import ColumnDrift, DriftSummary
from scoreloop.monitoring.monitor import (
    Findings,
    PeriodData,
    Window,
    drift_findings,
    page_body,
    period_findings,
    read_features,
    summarize,
    write_refused,
)

SPEC = DatasetSpec(
    target="converted",
    positive_label="1",
    numeric=["employees"],
    categorical=["industry"],
    allowed_values={"industry": ["saas", "retail"]},
)
MARCH, FEBRUARY = Window(datetime(2024, 3, 1), datetime(2024, 4, 1)), Window(datetime(2024, 2, 1), datetime(2024, 3, 1))


def drift_summary() -> DriftSummary:
    columns = (
        ColumnDrift("employees", "Wasserstein distance (normed)", 0.05, 0.1, False),
        ColumnDrift("industry", "Jensen-Shannon distance", 0.31, 0.1, True),
    )
    prediction = ColumnDrift("probability", "PSI", 0.02, 0.1, False)
    return DriftSummary(300, 300, 1, 0.5, columns, Path("drift.html"), Path("drift.json"), prediction)


def period_data(seed: int = 0) -> PeriodData:
    """300 scored records a month; March's first 250 labelled (the top worked, the rest explored)."""
    rng = np.random.default_rng(seed)
    probability = rng.beta(2, 6, 300)
    outcome = (rng.random(300) < probability).astype(float)
    outcome[250:] = np.nan
    log = pd.DataFrame(
        {
            "probability": probability,
            "outcome": outcome,
            "tier": np.where(probability > 0.4, "A", "D"),
            "policy": np.where(probability > 0.4, "exploit", "explore"),
            "propensity": np.where(probability > 0.4, 1.0, 0.5),
        }
    )
    reference_log = pd.DataFrame({"probability": rng.beta(2, 5, 300)})
    features = {"employees": rng.integers(1, 500, 300).astype(float), "industry": rng.choice(["saas", "retail"], 300)}
    reference = pd.DataFrame(features)
    current = reference.assign(industry=["saas", "unknown"] * 150, employees=[np.nan] * 30 + [10.0] * 270)
    return PeriodData(MARCH, FEBRUARY, log, reference_log, (reference, current), SPEC, "3", None)


def test_period_figures_come_from_every_row_and_the_checks_judge_them() -> None:
    data, settings = period_data(), Settings()
    findings = period_findings(data, drift_summary(), settings)
    figures = findings.figures
    assert figures["psi"] == psi(data.reference_log["probability"], data.log["probability"], settings.monitor.bins)
    assert figures["psi_evidently"] == 0.02 and figures["rows_current"] == figures["rows_reference"] == 300
    labelled = data.log.iloc[:250]
    assert figures["labelled"] == 250 and figures["label_coverage"] == pytest.approx(250 / 300)
    weights = 1 / labelled["propensity"]  # off-policy: the explored records stand for the unworked ones
    assert figures["calibration_error"] == pytest.approx(
        expected_calibration_error(labelled["outcome"], labelled["probability"], weights=weights)
    )
    assert (
        figures["roc_auc_basis"] == ESTIMATOR
        and figures["roc_auc_low"] <= figures["roc_auc"] <= figures["roc_auc_high"]
    )
    assert "expected_roc_auc" in figures and "estimates_disagree" in figures
    assert figures["missing_increase"] == {"employees": 0.1, "industry": 0.0}
    assert figures["new_category_share"] == {"industry": 0.5}
    assert [t["tier"] for t in figures["tiers"]] == ["D", "A"]  # the lowest tier first without a card
    failed = {c.name for c in findings.checks if c.passed is False}
    assert failed == {"max feature drift share", "max new category share"}  # 0.5 > 0.3 and 0.5 > 0.05
    assert findings.status == "fail" and findings.model_version == "3"
    assert findings.title == f"scores {MARCH} vs {FEBRUARY}"
    assert findings.windows == {"current": MARCH, "reference": FEBRUARY}
    assert set(findings.scores) == {"reference", "current"}


def test_few_labels_are_reported_but_not_judged() -> None:
    data = period_data()
    data = PeriodData(**{**data.__dict__, "log": data.log.assign(outcome=np.nan)})
    findings = period_findings(data, drift_summary(), Settings())
    auc = next(c for c in findings.checks if c.name == "min ROC AUC on labelled records")
    assert auc.passed is None and "0 labelled records, fewer than 200" in auc.detail


def test_files_mode_has_no_score_figures_and_leaves_psi_unjudged() -> None:
    reference, current = period_data().samples
    findings = drift_findings(
        reference, current, SPEC, drift_summary(), Settings().monitor, title="b vs a", model_version="none", params={}
    )
    assert "psi" not in findings.figures and findings.figures["drifted"] == ["industry"]
    psi_check = next(c for c in findings.checks if c.name == "max score PSI")
    assert psi_check.passed is None and psi_check.detail == "no scores to compare"
    assert findings.scores == {}
    assert not any(c.name == "max refused record share" for c in findings.checks)  # no files read: not judged


def test_files_mode_fails_when_too_many_current_records_are_refused() -> None:
    reference, current = period_data().samples
    judged = {
        share: next(
            c
            for c in drift_findings(
                reference, current, SPEC, drift_summary(), Settings().monitor, title="b vs a", model_version="none",
                params={}, refused={"reference": 0, "current": round(share * 100), "share": share},
            ).checks
            if c.name == "max refused record share"
        )
        for share in (0.01, 0.2)
    }  # fmt: skip
    assert judged[0.01].passed is True
    assert judged[0.2].passed is False and "0.2000 exceeds the tolerance 0.05" in judged[0.2].describe()


def test_files_mode_keeps_refused_and_malformed_records_with_their_reasons(tmp_path: Path) -> None:
    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    reference.write_text("employees,industry\n10,saas\n20,retail\n")
    current.write_text("employees,industry\n10,saas\nlots,retail\n30,retail,extra\n40,saas\n")
    read = read_features(reference, SPEC), read_features(current, SPEC)
    assert [len(f.frame) for f in read] == [2, 2] and read[1].refused_share == 0.5
    written = pd.read_csv(write_refused(tmp_path, read))
    assert written[["file", "_record"]].values.tolist() == [["current.csv", 2], ["current.csv", 3]]
    assert "employees" in written["_reason"][0] and "found 3" in written["_reason"][1]
    assert write_refused(tmp_path, read[:1]) is None  # nothing refused: no file


def hand_built(scores: bool) -> Findings:
    figures = {
        "drifted": ["industry"],
        "drifted_columns": 1,
        "share_drifted": 0.5,
        "missing_share": {"employees": 0.1},
        "missing_increase": {"employees": 0.1},
        "new_category_share": {"industry": 0.0},
        "psi": 0.0123,
        "psi_basis": "over every row",
        "psi_evidently": 0.02,
        "rows_current": 300,
        "rows_reference": 280,
        "sampled_current": 300,
        "sampled_reference": 280,
        "labelled": 250,
        "label_coverage": 0.8333,
        "roc_auc": 0.7777,
        "roc_auc_basis": ESTIMATOR,
        "roc_auc_low": 0.70,
        "roc_auc_high": 0.85,
        "positive_rate_snipw": 0.21,
        "positive_rate_snipw_low": 0.18,
        "positive_rate_snipw_high": 0.24,
        "worklist_value": 41.0,
        "worklist_value_low": 35.0,
        "worklist_value_high": 47.0,
        "effective_size": 180.0,
        "expected_roc_auc": 0.92,
        "expected_roc_auc_unworked": 0.88,
        "expected_positive_rate": 0.22,
        "expected_positive_rate_unworked": 0.12,
        "estimates_disagree": "ROC AUC",
        "roc_auc_unweighted": 0.7,
        "roc_auc_explored": 0.66,
        "explored_labelled": 50,
        "calibration_error": 0.0456,
        "calibration": [{"bin": 0, "rows": 250, "weight": 250.0, "mean_predicted": 0.2, "observed_rate": 0.25}],
        "tiers": [{"tier": "A", "scored": 300, "labelled": 250}],
    }
    checks = (
        Check("max feature drift share", 0.5, 0.3, False, "drifted: industry"),
        Check("max score PSI", 0.0123, 0.2, True),
    )
    probabilities = {"reference": np.linspace(0, 1, 50), "current": np.linspace(0, 0.5, 50)} if scores else {}
    windows = {"current": MARCH, "reference": FEBRUARY}
    return Findings("monitor", "scores March vs February", "3", figures, checks, {}, windows, probabilities)


def test_the_summary_page_shows_every_check_feature_and_figure() -> None:
    findings, drift = hand_built(scores=True), drift_summary()
    body = page_body(findings, drift)
    assert body.count('<span class="fail">fail</span>') == 1 and body.count('<span class="pass">pass</span>') == 1
    assert "<td>industry</td><td>Jensen-Shannon distance</td><td>0.31</td><td>0.1</td><td>yes</td>" in body
    assert "<b>0.0123</b> over every row" in body and "300 current, 280 reference" in body
    assert f"ROC AUC 0.7777 ({ESTIMATOR})" in body and "calibration error 0.0456" in body
    assert "0.7777 (0.7000 to 0.8500)" in body and "0.9200 / 0.8800" in body  # outcomes beside expectations
    assert "The estimates disagree on ROC AUC" in body
    assert "<h3>By tier</h3>" in body and "<h3>Calibration (labelled records)</h3>" in body
    assert body.count("data:image/png;base64,") == 1  # distributions and reliability curve
    assert "data:image/png" not in page_body(hand_built(scores=False), drift)


def test_the_summary_names_status_headline_windows_and_files() -> None:
    summary = summarize(hand_built(scores=True), drift_summary())
    assert summary["status"] == "fail" and summary["kind"] == "monitor" and summary["model_version"] == "3"
    headline = {"drifted": ["industry"], "drifted_columns": 1, "share_drifted": 0.5, "psi": 0.0123}
    assert summary["headline"] == {**headline, "roc_auc": 0.7777, "labelled": 250}
    assert summary["windows"]["current"] == {"start": "2024-03-01T00:00:00", "end": "2024-04-01T00:00:00"}
    assert list(summary["files"].values()) == ["drift.html", "drift.json", "summary.json"]
    assert [c["name"] for c in summary["checks"]] == ["max feature drift share", "max score PSI"]
