"""Black-box: an export ingested then scored gets exactly the answers of the same export scored raw, and a European
export (`;`, decimal commas, currencies) is detected by `spec infer` and read alike by ingest and batch scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier

from scoreloop.cli.data import spec_infer
from scoreloop.core.coerce import read_frame
from scoreloop.core.infer import infer_spec
from scoreloop.core.ingest import ingest_file, quarantine_path, read_rows
from scoreloop.core.model import ModelCard, ScoringModel, fit_card_scale, make_pool
from scoreloop.core.spec import DatasetSpec, NumberFormat
from scoreloop.core.synthetic import (
    EXTRA_COLUMNS,
    ID_COLUMN,
    TARGET,
    TIME_COLUMN,
    WorldConfig,
    generate_leads,
    make_messy,
)
from scoreloop.serving.batch import read_chunks, score_file


def crm_export(rows: int, seed: int) -> pd.DataFrame:
    """The synthetic messy export with its feature defects, but a clean id, time and target (which only training
    data carries), so ingest and batch scoring have the same things to refuse."""
    leads = generate_leads(WorldConfig(rows=rows, seed=seed))
    messy = make_messy(leads, seed)
    messy[ID_COLUMN] = leads[ID_COLUMN].astype(str)
    messy[TIME_COLUMN] = leads[TIME_COLUMN].dt.strftime("%Y-%m-%d %H:%M:%S")
    messy[TARGET] = np.where(leads[TARGET] == 1, "yes", "no")
    return messy


def respell(messy: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Numbers and categories the way other CRMs write them: '5.', '1.25e3', '€1200', unseen and closed values."""
    out = messy.copy()
    plain = out["employees"].str.fullmatch(r"\d+")
    style = rng.integers(3, size=len(out))
    out.loc[plain & (style == 0), "employees"] += "."
    exponent = plain & (style == 1)
    out.loc[exponent, "employees"] = [f"{int(v) / 1000:g}e3" for v in out.loc[exponent, "employees"]]
    revenue = out["annual_revenue"].str.fullmatch(r"\d+")
    out.loc[revenue & (style == 2), "annual_revenue"] = "€" + out.loc[revenue & (style == 2), "annual_revenue"]
    out.loc[revenue & (style == 0), "annual_revenue"] += " USD"
    out.loc[out.index[::37], "industry"] = "Quantum Farming"  # unseen: kept and scored
    out.loc[out.index[5::53], "plan_interest"] = "Platinum"  # outside a closed field: refused
    return out


def tiny_model(rows: pd.DataFrame, spec: DatasetSpec) -> ScoringModel:
    classifier = CatBoostClassifier(iterations=30, depth=3, verbose=False, allow_writing_files=False, thread_count=1)
    classifier.fit(make_pool(rows, spec, rows[spec.target]))
    quantiles, cutoffs = fit_card_scale(classifier.predict_proba(make_pool(rows, spec))[:, 1], {"A": 0.1, "B": 0.3})
    return ScoringModel(classifier, ModelCard(spec=spec, score_quantiles=quantiles, tier_cutoffs=cutoffs), "m", "1")


def test_ingest_then_score_gives_the_answers_of_scoring_the_raw_export(tmp_path: Path) -> None:
    messy = crm_export(800, seed=3)
    inferred = infer_spec(messy, TARGET, exclude=EXTRA_COLUMNS)
    spec = DatasetSpec.model_validate({**inferred.model_dump(), "closed": ["plan_interest"]})
    source = tmp_path / "export.csv"
    respell(messy, np.random.default_rng(0)).to_csv(source, index=False)

    report = ingest_file(source, spec, tmp_path / "ingested.parquet")
    rows, rejected = read_rows(report.output, spec)
    assert (len(rows), rejected) == (report.rows_out, report.rows_quarantined)
    assert report.unseen_categories["industry"] > 0
    model = tiny_model(rows, spec)
    ingested = score_file(model, report.output, tmp_path / "ingested-scored.csv")
    raw = score_file(model, source, tmp_path / "raw-scored.csv")

    assert ingested.rows_scored == raw.rows_scored == report.rows_out
    by_id = {path: pd.read_csv(path).set_index("id")["probability"] for path in (ingested.output, raw.output)}
    pd.testing.assert_series_equal(by_id[ingested.output], by_id[raw.output].loc[by_id[ingested.output].index])
    assert ingested.quarantine is None
    refused = {path: set(pd.read_csv(path, dtype=str)[ID_COLUMN]) for path in (report.quarantine, raw.quarantine)}
    assert refused[report.quarantine] == refused[raw.quarantine]
    assert len(refused[raw.quarantine]) >= 800 // 53  # every 'Platinum' plan at least


EU_HEADER = "lead_id;created_at;revenue;employees;industry;converted\n"
EU_ROWS = [
    ("1.234,56 €", 1234.56, "1.250", 1250.0),
    ("€ 980,5", 980.5, "12", 12.0),
    ("12.500 EUR", 12500.0, "3,5", 3.5),
    ("1.234", 1234.0, "1\u00a0200", 1200.0),  # '1.234' is 1234 in this file: the format says so, not the value
    ("USD 7", 7.0, "N/A", None),
    ("2,5k", 2500.0, "5,", 5.0),
]


def test_a_european_export_is_detected_by_spec_infer_and_read_alike_by_ingest_and_batch_scoring(
    tmp_path: Path,
) -> None:
    lines = [
        f"L{i};2024-03-{1 + i % 28:02d};{revenue};{employees};{('SaaS', 'Retail')[i % 2]};{('ja', 'nein')[i % 3 > 0]}\n"
        for i, (revenue, _, employees, _) in enumerate(EU_ROWS * 10)
    ]
    source = tmp_path / "export.csv"
    source.write_text(EU_HEADER + "".join(lines) + "L99;2024-03-05;1,2,3;1;saas;ja\n", encoding="utf-8")

    spec_infer(source, "converted", positive="ja", output=tmp_path / "spec.yaml")
    spec = DatasetSpec.load(tmp_path / "spec.yaml")
    assert spec.format == NumberFormat(delimiter=";", decimal=",", thousands=".")
    assert spec.numeric == ["revenue", "employees"]

    report = ingest_file(source, spec, tmp_path / "leads.parquet")
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (61, 60, 1)
    reason = pd.read_csv(quarantine_path(report.output), dtype=str)["_reason"].item()
    assert reason == "revenue: cannot read '1,2,3' as a number with decimal ',' and thousands '.' (the spec's format)"
    ingested = pd.read_parquet(report.output)
    expected = pd.DataFrame([(revenue, employees) for _, revenue, _, employees in EU_ROWS * 10], dtype=float)
    np.testing.assert_array_equal(ingested[["revenue", "employees"]].to_numpy(), expected.to_numpy())

    chunk = next(read_chunks(source, 1_000, spec.format.delimiter))
    batch = read_frame(chunk.table.frame, spec)
    assert batch.reasons() == {60: reason}
    np.testing.assert_array_equal(batch.frame()[["revenue", "employees"]].to_numpy(), expected.to_numpy())


def test_batch_scoring_quarantines_unreadable_lines_and_an_interrupted_run_leaves_no_output(tmp_path: Path) -> None:
    messy = crm_export(300, seed=5)
    spec = infer_spec(messy, TARGET, exclude=EXTRA_COLUMNS)
    model = tiny_model(read_frame(messy, spec, with_target=True).frame(), spec)
    source = tmp_path / "export.csv"
    messy.to_csv(source, index=False)
    lines = source.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b",", b",\xff", 1)  # record 5 (line 6) holds a byte that is not UTF-8
    source.write_bytes(b"\n".join(lines))
    output = tmp_path / "scored.csv"
    report = score_file(model, source, output, chunk_rows=100)
    quarantine = pd.read_csv(report.quarantine, dtype=str)
    assert report.rows_quarantined >= 1 and report.rows_in == 300
    assert quarantine.set_index("_record").loc["5", "_reason"] == "not valid UTF-8 (line 6)"
    before = output.read_bytes()

    def interrupted(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(model, source, output, chunk_rows=100, on_chunk=interrupted)
    assert output.read_bytes() == before  # the last complete run's output, untouched
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export.csv", "scored.csv", "scored.quarantine.csv"]
