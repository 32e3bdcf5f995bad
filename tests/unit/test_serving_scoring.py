"""The scoring path behind /score, /explain and `scoreloop score`, on a small real CatBoost model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier

from scoreloop.core.coerce import read_frame
from scoreloop.core.model import ModelCard, ScoringModel, fit_card_scale, make_pool
from scoreloop.core.spec import DatasetSpec, Range
from scoreloop.serving.batch import score_file
from scoreloop.serving.schema import check_records
from scoreloop.serving.scoring import as_records, explain_rows, reason_text, records_json, score_rows

SPEC = DatasetSpec(
    id_column="lead_id",
    target="converted",
    positive_label="yes",
    numeric=["employees", "visits"],
    categorical=["industry"],
    allowed_values={"industry": ["saas", "retail", "media"]},
    ranges={"employees": Range(min=0)},
)


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    rng = np.random.default_rng(0)
    n = 600
    rows = pd.DataFrame(
        {
            "employees": rng.integers(1, 5000, n).astype(float),
            "visits": rng.poisson(5, n).astype(float),
            "industry": rng.choice(["saas", "retail", "media"], n),
        }
    )
    logit = -2 + 0.4 * rows["visits"] - 1.5 * (rows["industry"] == "retail")
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    classifier = CatBoostClassifier(iterations=60, depth=3, verbose=False, allow_writing_files=False, thread_count=1)
    classifier.fit(make_pool(rows, SPEC, label))
    quantiles, cutoffs = fit_card_scale(classifier.predict_proba(make_pool(rows, SPEC))[:, 1], {"A": 0.1, "B": 0.3})
    return ScoringModel(classifier, ModelCard(spec=SPEC, score_quantiles=quantiles, tier_cutoffs=cutoffs), "m", "3")


RECORDS = [
    {"lead_id": "a", "employees": "1,200", "visits": 9, "industry": "SaaS"},
    {"lead_id": "b", "visits": "N/A", "industry": "quantum"},  # unseen category, missing numbers: scored
    {"industry": "retail", "employees": 3},
]


def test_scores_match_the_classifier_on_the_training_frame(model: ScoringModel) -> None:
    rows = check_records(RECORDS, SPEC, max_records=10)
    scored = as_records(score_rows(model, rows))
    frame = pd.DataFrame({"employees": [1200, np.nan, 3], "visits": [9, np.nan, np.nan],
                          "industry": ["saas", "quantum", "retail"]})  # fmt: skip
    assert [s["probability"] for s in scored] == pytest.approx(model.predict_proba(frame).tolist(), abs=1e-6)
    assert [s["id"] for s in scored] == ["a", "b", None]
    assert all(0 <= s["score"] <= 100 and s["tier"] in "ABD" for s in scored)
    assert {(s["model"], s["version"]) for s in scored} == {("m", "3")}
    assert json.loads(records_json(score_rows(model, rows))) == scored
    assert records_json(score_rows(model, rows[:0])) == b"[]"


def test_explanations_add_up_to_the_probability(model: ScoringModel) -> None:
    explained = explain_rows(model, check_records(RECORDS, SPEC, max_records=10), top=2)
    for record in explained:
        assert len(record["reasons"]) == 2
        points = sum(reason["points"] for reason in record["reasons"]) + record["other_points"]
        assert record["baseline"] + points / 100 == pytest.approx(record["probability"], abs=1e-6)
        first, second = record["reasons"]
        assert abs(first["points"]) >= abs(second["points"])
        assert np.sign(first["points"]) == np.sign(first["log_odds"])
    every = explain_rows(model, check_records(RECORDS, SPEC, max_records=10), top=3)[1]["reasons"]
    industry = next(reason for reason in every if reason["feature"] == "industry")
    assert industry["value"] == "quantum" and "(a value not seen in training)" in industry["text"]
    assert next(reason for reason in every if reason["feature"] == "visits")["text"].startswith("visits is missing")
    assert explain_rows(model, check_records([], SPEC, max_records=1), top=2) == []


def test_reasons_read_as_sentences() -> None:
    assert reason_text("industry", "saas", 12.04) == "industry = saas raises the probability by 12.0 points"
    assert reason_text("employees", 1200.0, -3.25) == "employees = 1,200 lowers the probability by 3.2 points"
    assert reason_text("visits", None, 0.01).startswith("visits is missing, which barely changes")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_is_scored_in_chunks_like_the_api_and_every_row_is_accounted_for(
    model: ScoringModel, tmp_path: Path, suffix: str
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(
        "lead_id,employees,visits,industry,notes\n"
        'a,"1,200",9,SaaS,x\n'
        "b,N/A,-,quantum,\n"
        "c,-5,1,retail,y\n"  # refused: below the minimum
        "d,3,1\n"  # malformed: 3 fields of 5
        'e,lots,2,media,"multi\nline"\n'  # refused: not a number
        ",3,1,retail,\n"
    )
    progress: list[int] = []
    report = score_file(model, source, tmp_path / f"out{suffix}", chunk_rows=2, on_chunk=progress.append)
    assert (report.rows_in, report.rows_scored, report.rows_quarantined) == (6, 3, 3)
    assert progress == sorted(progress) and progress[-1] == source.stat().st_size
    out = pd.read_parquet(report.output) if suffix == ".parquet" else pd.read_csv(report.output, dtype={"id": str})
    assert out["_record"].tolist() == [1, 2, 6]
    assert list(out.columns) == ["_record", "id", "probability", "score", "tier", "model", "version"]
    api = as_records(score_rows(model, check_records([RECORDS[0], RECORDS[1] | {"visits": None}], SPEC, 10)))
    assert out["probability"].tolist()[:2] == pytest.approx([r["probability"] for r in api], abs=1e-9)
    assert out["id"].tolist()[:2] == ["a", "b"] and pd.isna(out["id"].tolist()[2])
    quarantine = pd.read_csv(report.quarantine)
    assert quarantine["_record"].tolist() == [3, 4, 5]
    assert quarantine["_reason"].tolist()[0] == "employees: -5 is below the minimum 0"
    assert quarantine["_reason"].tolist()[1].startswith("expected 5 fields, found 3")
    assert quarantine["_raw_line"].tolist()[1] == "d,3,1"
    assert quarantine["notes"].tolist()[2] == "multi\nline"


def test_parquet_input_and_a_file_with_nothing_to_refuse(model: ScoringModel, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pd.DataFrame({"employees": [1.0, None], "industry": ["saas", None]}).to_parquet(source)
    (tmp_path / "out.quarantine.csv").write_text("stale")
    report = score_file(model, source, tmp_path / "out.csv")
    assert (report.rows_in, report.rows_scored, report.quarantine) == (2, 2, None)
    assert not (tmp_path / "out.quarantine.csv").exists()
    assert len(pd.read_csv(report.output)) == 2


def test_an_unknown_file_type_is_refused_naming_the_allowed_ones(model: ScoringModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unsupported file type; use one of \.csv"):
        score_file(model, tmp_path / "in.xlsx", tmp_path / "out.csv")


def test_frames_are_read_like_requests() -> None:
    frame = pd.DataFrame({"employees": ["1k", "x"], "industry": ["saas", "retail"], "other": [1, 2]})
    checked = read_frame(frame, SPEC)
    assert checked.rows["employees"][0] == 1000
    assert [(issue.row, issue.field) for issue in checked.issues] == [(1, "employees")]
