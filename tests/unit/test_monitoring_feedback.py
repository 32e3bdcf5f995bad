"""The feedback report's compute and page steps on an inline scoring log, with no store, registry or model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.metrics import expected_calibration_error, psi
from scoreloop.monitoring.feedback import FeedbackData, feedback_figures, page_body, summarize


def two_versions(seed: int = 0) -> FeedbackData:
    """Versions 1 then 2, 400 scored records each: the top 20% exploited, a quarter of the rest explored."""
    rng = np.random.default_rng(seed)
    parts = []
    for version in ("1", "2"):
        probability = rng.beta(2, 6, 400)
        top = probability >= np.quantile(probability, 0.8)
        explored = ~top & (rng.random(400) < 0.25)
        outcome = (rng.random(400) < probability).astype(float)
        parts.append(
            pd.DataFrame(
                {
                    "model_version": version,
                    "probability": probability,
                    "score": (pd.Series(probability).rank(pct=True) * 99).to_numpy(),
                    "policy": np.where(top, "exploit", np.where(explored, "explore", "skip")),
                    "propensity": np.where(top, 1.0, 0.25),
                    "outcome": np.where(top | explored, outcome, np.nan),
                }
            )
        )
    sample = rng.random(100)
    return FeedbackData(
        pd.concat(parts, ignore_index=True),
        {"1": sample, "2": np.clip(sample + 0.1, 0, 1)},
        {"1": {"employees": 60.0, "industry": 40.0}, "2": {"employees": 50.0, "industry": 50.0}},
    )


def test_figures_per_version_between_versions_and_by_band() -> None:
    data = two_versions()
    figures = feedback_figures(data, clip=20, bins=10)
    per_version = figures.per_version.set_index("version")
    assert list(per_version.index) == ["1", "2"] and (per_version["scored"] == 400).all()
    assert (per_version["exploited"] == 80).all()
    v2 = data.log[(data.log["model_version"] == "2") & (data.log["policy"] == "explore")]
    assert per_version.loc["2", "explored"] == len(v2)
    assert per_version.loc["2", "explored_calibration_error"] == expected_calibration_error(
        v2["outcome"], v2["probability"], 10
    )
    shift = figures.shift.iloc[0]
    assert (shift["from"], shift["to"]) == ("1", "2")
    assert shift["score_psi"] == psi(data.probabilities["1"], data.probabilities["2"])
    assert shift["importance_change"] == pytest.approx(20.0)
    assert figures.bands["1"].iloc[-1] == 1  # the top band is always worked
    assert set(figures.calibration) == {"1", "2"} and len(figures.calibration["1"]) <= 5
    assert figures.records == 800
    assert list(figures.to_json()) == ["versions", "shift", "label_coverage_by_band", "importance"]


def test_the_page_and_summary_from_the_figures_alone() -> None:
    figures = feedback_figures(two_versions(), clip=20, bins=10)
    body = page_body(figures)
    assert "clipped at 20" in body and "800 scored records in the log" in body
    assert body.count("data:image/png;base64,") == 4  # coverage, arms, calibration, importance
    assert "<h2>Between versions (same records re-scored)</h2>" in body
    summary = summarize(figures, "feedback loop: explore")
    last = figures.per_version.iloc[-1]
    assert summary["title"] == "feedback loop: explore" and summary["model_version"] == "2"
    assert summary["headline"] == {
        "roc_auc": last["explored_roc_auc"],
        "labelled": figures.per_version["labelled"].sum(),
    }
    assert summary["figures"]["versions"] == 2 and summary["status"] == "info"
