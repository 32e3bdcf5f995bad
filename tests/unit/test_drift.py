"""Drift adapter against real Evidently reports: what it flags, what it writes, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.spec import DatasetSpec
from scoreloop.monitoring.drift import DriftSummary, build_drift_report

SPEC = DatasetSpec(
    id_column="lead_id",
    target="converted",
    positive_label="yes",
    numeric=["age", "income", "visits"],
    categorical=["channel", "region"],
    text=["notes"],
)
CHANNELS = ["web", "email", "partner"]
REGIONS = ["north", "south", "east", "west"]


def make_frame(
    seed: int, rows: int = 2000, income_shift_sd: float = 0.0, channel_mix: tuple[float, ...] = (0.6, 0.3, 0.1)
) -> pd.DataFrame:
    """An ingested-looking frame: typed features plus id, target and text columns drift must ignore."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lead_id": [f"L{seed}-{i}" for i in range(rows)],
            "age": rng.normal(40, 10, rows),
            "income": rng.normal(50_000 + income_shift_sd * 12_000, 12_000, rows),
            "visits": rng.exponential(3.0, rows),
            "channel": rng.choice(CHANNELS, rows, p=channel_mix).astype(object),
            "region": rng.choice(REGIONS, rows).astype(object),
            "notes": rng.choice(["call back", "no answer", ""], rows),
            "converted": rng.choice(["yes", "no"], rows),
        }
    )


def by_column(summary: DriftSummary) -> dict[str, bool]:
    return {c.column: c.drifted for c in summary.columns}


@pytest.fixture(scope="module")
def stable(tmp_path_factory: pytest.TempPathFactory) -> DriftSummary:
    out = tmp_path_factory.mktemp("stable") / "reports"  # not yet existing: the adapter creates it
    return build_drift_report(make_frame(1), make_frame(2), SPEC, out)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> DriftSummary:
    current = make_frame(2, income_shift_sd=2.0, channel_mix=(0.1, 0.3, 0.6))
    return build_drift_report(make_frame(1), current, SPEC, tmp_path_factory.mktemp("shifted"))


def test_same_distribution_flags_nothing(stable: DriftSummary) -> None:
    assert set(by_column(stable)) == {"age", "income", "visits", "channel", "region"}
    assert stable.drifted_columns == 0
    assert stable.share_drifted == 0.0
    assert all(c.score < c.threshold for c in stable.columns)
    assert (stable.reference_rows, stable.current_rows) == (2000, 2000)


def test_shifted_numeric_and_categorical_columns_are_flagged(shifted: DriftSummary) -> None:
    assert by_column(shifted) == {
        "age": False,
        "income": True,
        "visits": False,
        "channel": True,
        "region": False,
    }
    assert shifted.drifted_columns == 2
    assert shifted.share_drifted == pytest.approx(2 / 5)
    methods = {c.column: c.method for c in shifted.columns}
    assert methods["income"] == "Wasserstein distance (normed)"
    assert methods["channel"] == "Jensen-Shannon distance"


def test_small_samples_use_p_values_and_still_flag_the_shift(tmp_path: Path) -> None:
    """Under ~1000 rows Evidently reports p-values, where a *low* score means drift."""
    reference = make_frame(1, rows=300)
    current = make_frame(2, rows=300, income_shift_sd=2.0, channel_mix=(0.1, 0.3, 0.6))
    summary = build_drift_report(reference, current, SPEC, tmp_path)
    income = next(c for c in summary.columns if c.column == "income")
    assert "p_value" in income.method
    assert income.score < income.threshold
    assert by_column(summary) == {"age": False, "income": True, "visits": False, "channel": True, "region": False}


def test_reports_are_written(shifted: DriftSummary) -> None:
    assert shifted.html_path.name == "drift.html"
    assert shifted.html_path.stat().st_size > 10_000
    assert "<html" in shifted.html_path.read_text(encoding="utf-8").lower()
    snapshot = json.loads(shifted.json_path.read_text())
    assert "metrics" in snapshot


def test_to_dict_is_json_ready(shifted: DriftSummary) -> None:
    data = json.loads(json.dumps(shifted.to_dict()))
    assert data["drifted_columns"] == 2
    assert data["html_path"] == str(shifted.html_path)
    assert {c["column"] for c in data["columns"] if c["drifted"]} == {"income", "channel"}


def test_missing_feature_column_is_named(tmp_path: Path) -> None:
    current = make_frame(2).drop(columns=["visits"])
    with pytest.raises(ValueError, match="visits"):
        build_drift_report(make_frame(1), current, SPEC, tmp_path)


@pytest.mark.parametrize("empty_side", ["reference", "current"])
def test_empty_frame_is_refused(tmp_path: Path, empty_side: str) -> None:
    frames = {"reference": make_frame(1), "current": make_frame(2)}
    frames[empty_side] = frames[empty_side].iloc[0:0]
    with pytest.raises(ValueError, match=f"{empty_side} frame is empty"):
        build_drift_report(frames["reference"], frames["current"], SPEC, tmp_path)
    assert not (tmp_path / "drift.html").exists()


def test_missing_categories_count_as_a_value(tmp_path: Path) -> None:
    """A steady share of missing values is not drift; a jump in it is, as the model sees a different mix."""
    reference, steady, jumped = make_frame(1), make_frame(2), make_frame(3)
    reference.loc[reference.index[::10], "region"] = None
    steady.loc[steady.index[::10], "region"] = None
    jumped.loc[jumped.index[::2], "region"] = None
    assert by_column(build_drift_report(reference, steady, SPEC, tmp_path / "steady"))["region"] is False
    assert by_column(build_drift_report(reference, jumped, SPEC, tmp_path / "jumped"))["region"] is True


def test_all_missing_categorical_column_does_not_crash(tmp_path: Path) -> None:
    current = make_frame(2)
    current["region"] = None
    summary = build_drift_report(make_frame(1), current, SPEC, tmp_path)
    assert by_column(summary)["region"] is True
