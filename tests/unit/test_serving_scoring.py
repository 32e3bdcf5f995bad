"""The scoring path behind /score, /explain and `scoreloop score`, on a small real CatBoost model, with and without
a calibration on its card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier

from scoreloop.core.calibration import Calibration, fit_calibration, logit, sigmoid
from scoreloop.core.coerce import read_frame
from scoreloop.core.model import (
    CARD_KEY,
    ModelCard,
    ScoringModel,
    fit_card_scale,
    make_pool,
    read_card,
    to_scores,
    to_tiers,
)
from scoreloop.core.spec import DatasetSpec, Range
from scoreloop.serving.batch import score_file
from scoreloop.serving.schema import check_records
from scoreloop.serving.scoring import (
    _log_odds_scale,
    _secant_slopes,
    as_records,
    explain_rows,
    model_pool,
    reason_text,
    records_json,
    score_rows,
)

SPEC = DatasetSpec(
    id_column="lead_id",
    target="converted",
    positive_label="yes",
    numeric=["employees", "visits"],
    categorical=["industry"],
    allowed_values={"industry": ["saas", "retail", "media"]},
    ranges={"employees": Range(min=0)},
)


def leads(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "employees": rng.integers(1, 5000, n).astype(float),
            "visits": rng.poisson(5, n).astype(float),
            "industry": rng.choice(["saas", "retail", "media"], n),
        }
    )


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    rows = leads(600, seed=0)
    log_odds = -2 + 0.4 * rows["visits"] - 1.5 * (rows["industry"] == "retail")
    label = (np.random.default_rng(1).random(len(rows)) < sigmoid(log_odds)).astype(int)
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


TIERS = {"A": 0.1, "B": 0.3}


def calibrated_model(model: ScoringModel, method: str) -> ScoringModel:
    """`model` with a calibration fitted by training's own function on labels drawn at rate raw**2 (so the raw
    probabilities are over-confident), and the score scale refitted on calibrated probabilities, as training does."""
    raw = model.raw_proba(leads(400, seed=2))
    label = np.random.default_rng(3).random(len(raw)) < raw**2
    calibration = fit_calibration(label, raw, method)
    quantiles, cutoffs = fit_card_scale(calibration.apply(raw), TIERS)
    update = {"calibration": calibration, "score_quantiles": quantiles, "tier_cutoffs": cutoffs}
    return ScoringModel(model.classifier, model.card.model_copy(update=update), model.name, model.version)


def typed(frame: pd.DataFrame) -> np.ndarray:
    return check_records(RECORDS + frame.to_dict("records"), SPEC, max_records=1000)


def test_a_card_from_before_calibration_loads_as_identity_and_serves_what_it_served(
    model: ScoringModel, tmp_path: Path
) -> None:
    from mlflow.models import Model

    old = model.card.model_dump(mode="json")
    del old["calibration"]
    Model(metadata={CARD_KEY: old}).save(str(tmp_path / "MLmodel"))
    card = read_card(tmp_path)
    assert card.calibration == Calibration() and card.calibration.method == "identity"
    legacy = ScoringModel(model.classifier, card, "m", "3")
    rows = typed(leads(20, seed=7))
    raw = model.classifier.predict_proba(model_pool(rows, SPEC))[:, 1]
    assert score_rows(legacy, rows)["probability"].tolist() == raw.tolist()
    shap = model.classifier.get_feature_importance(model_pool(rows, SPEC), type="ShapValues")
    contributions, base = shap[:, :-1], shap[:, -1]
    log_odds = contributions.sum(axis=1)
    slopes = (sigmoid(base + log_odds) - sigmoid(base)) / log_odds  # the formula /explain used before calibration
    for i, record in enumerate(explain_rows(legacy, rows, top=3)):
        assert record["baseline"] == sigmoid(base[i])
        for reason in record["reasons"]:
            j = SPEC.features.index(reason["feature"])
            assert reason["log_odds"] == contributions[i, j]
            assert reason["points"] == 100 * contributions[i, j] * slopes[i]


def test_a_fitted_calibration_travels_with_the_card(model: ScoringModel) -> None:
    card = calibrated_model(model, "isotonic").card
    assert ModelCard.model_validate_json(card.model_dump_json()).calibration == card.calibration


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_served_probability_is_the_cards_calibration_of_the_classifiers_and_score_and_tier_follow_it(
    model: ScoringModel, method: str
) -> None:
    calibrated = calibrated_model(model, method)
    card = calibrated.card
    frame = leads(300, seed=4)
    raw = model.classifier.predict_proba(make_pool(frame, SPEC))[:, 1]
    expected = card.calibration.apply(raw)
    assert np.abs(expected - raw).max() > 0.05  # the calibration moves probabilities, so the checks can tell
    scored = score_rows(calibrated, read_frame(frame, SPEC).rows)
    assert scored["probability"] == pytest.approx(expected, abs=1e-12)
    assert calibrated.predict_proba(frame) == pytest.approx(expected, abs=1e-12)
    assert calibrated.score(frame)["probability"].to_numpy() == pytest.approx(expected, abs=1e-12)
    assert scored["score"].tolist() == to_scores(expected, card.score_quantiles).tolist()
    assert scored["score"].tolist() != to_scores(raw, card.score_quantiles).tolist()
    assert scored["tier"].tolist() == to_tiers(expected, card.tier_cutoffs).tolist()
    by_probability = np.argsort(scored["probability"], kind="stable")
    assert np.all(np.diff(scored["score"][by_probability]) >= 0)
    rank = {"A": 0, "B": 1, "D": 2}
    assert np.all(np.diff([rank[t] for t in scored["tier"][by_probability]]) <= 0)


@pytest.mark.parametrize("method", ["identity", "platt", "isotonic"])
def test_explanations_add_up_to_the_calibrated_probability_score_serves(model: ScoringModel, method: str) -> None:
    calibrated = calibrated_model(model, method)
    calibration = calibrated.card.calibration
    rows = typed(leads(60, seed=5))
    served = score_rows(calibrated, rows)["probability"]
    shap = model.classifier.get_feature_importance(model_pool(rows, SPEC), type="ShapValues")
    explained = explain_rows(calibrated, rows, top=len(SPEC.features))
    scales = set()
    for i, record in enumerate(explained):
        reasons = record["reasons"]
        assert record["probability"] == served[i]
        assert record["baseline"] == pytest.approx(calibration.apply(sigmoid(shap[i, -1])), abs=1e-12)
        assert record["other_points"] == pytest.approx(0, abs=1e-12)
        points = sum(reason["points"] for reason in reasons)
        assert record["baseline"] + points / 100 == pytest.approx(served[i], abs=1e-9)
        log_odds = sum(reason["log_odds"] for reason in reasons)
        assert log_odds == pytest.approx(logit(served[i]) - logit(record["baseline"]), abs=1e-7)
        assert all(np.sign(reason["points"]) == np.sign(reason["log_odds"]) for reason in reasons)
        for reason in reasons:
            shap_value = shap[i, SPEC.features.index(reason["feature"])]
            scales.add(round(reason["log_odds"] / shap_value, 9))
    if method == "platt":
        assert scales == {round(calibration.slope, 9)}  # affine: every contribution scaled by the slope
    elif method == "identity":
        assert scales == {1.0}
    else:
        assert len(scales) > 1  # not affine: rescaled record by record


@pytest.mark.parametrize("method", ["identity", "platt", "isotonic"])
def test_a_record_whose_features_cancel_out_is_explained_by_the_calibrations_local_slope(
    model: ScoringModel, method: str
) -> None:
    calibrated = calibrated_model(model, method)
    base, raw = np.full(2, -0.7), np.array([1e-12, 1e-6])  # the first counts as cancelled, the second does not
    scale = _log_odds_scale(calibrated, base, raw)
    baseline, probability = calibrated.calibrated(sigmoid(base)), calibrated.calibrated(sigmoid(base + raw))
    slopes = _secant_slopes(baseline, probability, raw, scale)
    assert scale[0] == pytest.approx(scale[1], rel=1e-3)
    assert slopes[0] == pytest.approx(slopes[1], rel=1e-3)
    if method == "platt":
        assert scale == pytest.approx(calibrated.card.calibration.slope, rel=1e-6)
    elif method == "identity":
        assert scale.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_file_gets_the_calibrated_probabilities_score_serves(
    model: ScoringModel, tmp_path: Path, method: str
) -> None:
    calibrated = calibrated_model(model, method)
    frame = leads(120, seed=6)
    frame.to_csv(tmp_path / "in.csv", index=False)
    report = score_file(calibrated, tmp_path / "in.csv", tmp_path / "out.parquet", chunk_rows=50)
    out = pd.read_parquet(report.output)
    served = score_rows(calibrated, check_records(frame.to_dict("records"), SPEC, max_records=1000))
    raw = model.classifier.predict_proba(make_pool(frame, SPEC))[:, 1]
    assert out["probability"].to_numpy() == pytest.approx(served["probability"], abs=1e-12)
    assert out["probability"].to_numpy() == pytest.approx(calibrated.card.calibration.apply(raw), abs=1e-12)
    assert (out["score"].tolist(), out["tier"].tolist()) == (served["score"].tolist(), served["tier"].tolist())
