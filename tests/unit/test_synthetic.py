"""The synthetic lead world: determinism, calibration, learnability, drift, and the messy and broken exports."""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from scoreloop.core.synthetic import (
    CATEGORIES,
    EXTRA_COLUMNS,
    FEATURES_CATEGORICAL,
    FEATURES_NUMERIC,
    MISSING_TOKENS,
    NEGATIVE_TOKENS,
    POSITIVE_TOKENS,
    WorldConfig,
    corrupt_lines,
    generate_leads,
    make_messy,
    true_probability,
)

BAD_NUMBERS = {"twelve", "12abc", "3,4x"}


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return generate_leads(WorldConfig(rows=20_000, seed=7))


@pytest.fixture(scope="module")
def clean_and_messy() -> tuple[pd.DataFrame, pd.DataFrame]:
    leads = generate_leads(WorldConfig(rows=5_000, seed=3))
    return leads, make_messy(leads, seed=11)


def _month_share(leads: pd.DataFrame, column: str, value: str) -> tuple[float, float]:
    month = leads["created_at"].dt.to_period("M")
    share = (leads[column] == value).groupby(month).mean()
    return float(share.iloc[0]), float(share.iloc[-1])


def _parse_number(text: str) -> Decimal | None:
    """Reference parser for the documented numeric forms; None for missing or unparseable cells."""
    cleaned = text.strip().replace("$", "").replace(",", "")
    scale = {"k": Decimal(1000), "M": Decimal(1_000_000)}.get(cleaned[-1:], Decimal(1))
    try:
        return Decimal(cleaned[:-1] if scale != 1 else cleaned) * scale
    except InvalidOperation:
        return None


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with adjacent transpositions counted as one edit."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


# ------------------------------------------------------------------------------------------------ clean world


def test_same_seed_gives_identical_world_and_other_seed_differs() -> None:
    config = WorldConfig(rows=2_000, seed=5)
    first, again = generate_leads(config), generate_leads(config)
    pd.testing.assert_frame_equal(first, again)
    other = generate_leads(WorldConfig(rows=2_000, seed=6))
    assert not first["employees"].equals(other["employees"])


def test_clean_frame_shape_types_and_time_span(world: pd.DataFrame) -> None:
    expected = {"lead_id", "created_at", *FEATURES_NUMERIC, *FEATURES_CATEGORICAL, "p_true", "converted"}
    assert set(world.columns) == expected
    assert len(world) == 20_000
    assert world["lead_id"].is_unique and world["lead_id"].iloc[0] == "L0000001"
    assert world["created_at"].is_monotonic_increasing
    assert world["created_at"].dt.tz is None
    assert (world["created_at"] == world["created_at"].dt.floor("s")).all()
    assert world["created_at"].min() >= pd.Timestamp("2024-01-01")
    assert world["created_at"].max() < pd.Timestamp("2025-01-01")
    assert world["created_at"].dt.month.nunique() == 12
    assert world.notna().all().all()
    for column, allowed in CATEGORIES.items():
        assert world[column].dtype == object and set(world[column]) == set(allowed)
    assert world["employees"].between(1, 50_000).all()
    assert world["days_since_last_activity"].between(0, 120).all()
    assert (world["annual_revenue"] % 1000 == 0).all()
    assert set(world["converted"]) == {0, 1}


def test_weekends_are_quieter_than_weekdays(world: pd.DataFrame) -> None:
    per_day = world["created_at"].dt.dayofweek.value_counts()
    assert per_day[[5, 6]].max() < 0.6 * per_day[[0, 1, 2, 3, 4]].min()


@pytest.mark.parametrize("base_rate", [0.12, 0.3])
def test_positive_rate_is_near_base_rate(base_rate: float) -> None:
    leads = generate_leads(WorldConfig(rows=20_000, seed=1, base_rate=base_rate))
    assert abs(leads["converted"].mean() - base_rate) < 0.02
    assert abs(leads["p_true"].mean() - base_rate) < 0.02


def test_true_probability_recomputes_p_true(world: pd.DataFrame) -> None:
    subset = world.sample(500, random_state=0)
    np.testing.assert_allclose(true_probability(subset, WorldConfig(rows=20_000, seed=7)), subset["p_true"])


def test_true_probability_names_unknown_categories_and_gaps(world: pd.DataFrame) -> None:
    bad = world.head(3).assign(industry=["saas", "crypto", "retail"])
    with pytest.raises(ValueError, match="crypto"):
        true_probability(bad, WorldConfig())
    with pytest.raises(ValueError, match="pages_viewed"):
        true_probability(world.head(3).assign(pages_viewed=[1.0, None, 2.0]), WorldConfig())


def test_world_is_learnable_but_not_trivial() -> None:
    leads = generate_leads(WorldConfig(rows=10_000, seed=2))
    features = leads[[*FEATURES_NUMERIC, *FEATURES_CATEGORICAL]].astype({c: "category" for c in FEATURES_CATEGORICAL})
    cut = int(len(leads) * 0.8)
    model = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.08, categorical_features="from_dtype", random_state=0
    )
    model.fit(features.iloc[:cut], leads["converted"].iloc[:cut])
    newest = leads["converted"].iloc[cut:]
    model_auc = roc_auc_score(newest, model.predict_proba(features.iloc[cut:])[:, 1])
    oracle_auc = roc_auc_score(newest, leads["p_true"].iloc[cut:])
    assert 0.75 < model_auc < 0.92
    assert oracle_auc > 0.75 > roc_auc_score(newest, np.zeros(len(newest)))
    assert oracle_auc > model_auc - 0.01


def _probability_by_month(concept_drift: float) -> tuple[np.ndarray, np.ndarray]:
    config = WorldConfig(rows=3_000, seed=4, concept_drift=concept_drift)
    leads = generate_leads(config)
    early = true_probability(leads.assign(created_at=pd.Timestamp("2024-01-02")), config)
    late = true_probability(leads.assign(created_at=pd.Timestamp("2024-12-30")), config)
    return early, late


def test_without_concept_drift_the_truth_is_the_same_every_month() -> None:
    early, late = _probability_by_month(0.0)
    np.testing.assert_array_equal(early, late)


def test_with_concept_drift_the_truth_changes_over_the_year() -> None:
    early, late = _probability_by_month(1.0)
    assert np.abs(early - late).mean() > 0.02
    leads = generate_leads(WorldConfig(rows=3_000, seed=4))
    healthcare = (leads["industry"] == "healthcare").to_numpy()
    assert (late - early)[healthcare].mean() > 0.02


def test_covariate_drift_moves_the_source_mix() -> None:
    drifting = generate_leads(WorldConfig(rows=20_000, seed=8, covariate_drift=1.0))
    first, last = _month_share(drifting, "source", "paid_search")
    assert last - first > 0.12
    assert drifting["product_events"].iloc[-2_000:].mean() > 1.3 * drifting["product_events"].iloc[:2_000].mean()


def test_without_covariate_drift_the_mix_is_stationary(world: pd.DataFrame) -> None:
    first, last = _month_share(world, "source", "paid_search")
    assert abs(last - first) < 0.05


def test_drift_settings_outside_unit_interval_are_rejected() -> None:
    with pytest.raises(ValueError, match="concept_drift"):
        WorldConfig(concept_drift=1.5)


# ------------------------------------------------------------------------------------------------ messy export


def test_messy_export_is_all_strings_without_the_hidden_truth(clean_and_messy) -> None:
    leads, messy = clean_and_messy
    assert messy.columns[0] == "lead_id"
    assert "p_true" not in messy.columns
    assert set(EXTRA_COLUMNS) <= set(messy.columns)
    assert set(messy.columns) == {*leads.columns, *EXTRA_COLUMNS} - {"p_true"}
    assert len(messy) == len(leads)
    assert all(messy[c].map(type).eq(str).all() for c in messy.columns)


def test_messy_export_is_deterministic(clean_and_messy) -> None:
    leads, messy = clean_and_messy
    pd.testing.assert_frame_equal(make_messy(leads, seed=11), messy)
    assert not make_messy(leads, seed=12).equals(messy)


def test_categories_come_in_many_spellings_that_map_back(clean_and_messy) -> None:
    leads, messy = clean_and_messy
    for column, allowed in CATEGORIES.items():
        raw = messy[column][~messy[column].isin(MISSING_TOKENS)]
        assert raw.str.strip().str.lower().nunique() >= len(allowed)
        assert raw[raw.str.strip().str.lower() == allowed[1]].nunique() >= 4
        assert (raw != raw.str.strip()).mean() > 0.05
        normal = raw.str.strip().str.lower()
        misspelled = normal[~normal.isin(allowed)]
        for typo, truth in zip(misspelled, leads.loc[misspelled.index, column], strict=True):
            assert len(truth) >= 5 and _edit_distance(typo, truth) == 1
    typos = messy["industry"].str.strip().str.lower()
    assert 0.003 < (~typos.isin([*CATEGORIES["industry"], *MISSING_TOKENS])).mean() < 0.02


def test_missing_values_use_crm_spellings_in_feature_columns_only(clean_and_messy) -> None:
    _, messy = clean_and_messy
    features = messy[[*FEATURES_NUMERIC, *FEATURES_CATEGORICAL]]
    share = features.isin(MISSING_TOKENS).to_numpy().mean()
    assert 0.02 < share < 0.04
    assert set(features.stack()) & set(MISSING_TOKENS) == set(MISSING_TOKENS)
    assert not messy["created_at"].isin(MISSING_TOKENS).any()


def test_numbers_come_in_messy_forms_that_round_trip_exactly(clean_and_messy) -> None:
    leads, messy = clean_and_messy
    revenue = messy["annual_revenue"]
    for pattern in (r"^\$\d{1,3}(,\d{3})+$", r"^\d+(\.\d{1,3})?M$", r"^\d+k$", r"^\d{1,3}(,\d{3})*\.00$", r"^\d+$"):
        assert revenue.str.match(pattern).any(), pattern
    assert messy["employees"].str.match(r"^\d{1,2},\d{3}$").any()
    assert messy["product_events"].str.match(r"^\d+\.0$").any()
    for column in FEATURES_NUMERIC:
        parsed = messy[column].map(_parse_number)
        usable = parsed.notna() & ~messy[column].str.startswith("-")
        assert usable.mean() > 0.95
        expected = leads[column].map(lambda v: Decimal(int(v)))
        assert (parsed[usable] == expected[usable]).all(), column


def test_dates_come_in_mixed_formats_that_keep_the_day(clean_and_messy) -> None:
    leads, messy = clean_and_messy
    formats = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%m/%d/%Y", "%b %d, %Y", "%Y/%m/%d")
    parsed = {f: pd.to_datetime(messy["created_at"], format=f, errors="coerce") for f in formats}
    assert all(p.notna().mean() > 0.05 for p in parsed.values())
    combined = pd.concat(parsed.values(), axis=1).bfill(axis=1).iloc[:, 0]
    readable = combined.notna()
    assert (~readable).sum() == (messy["created_at"].str.contains("-13-45")).sum() > 0
    assert (combined[readable].dt.normalize() == leads["created_at"][readable].dt.normalize()).all()
    with_time = parsed[formats[0]].notna() | parsed[formats[1]].notna()
    assert (combined[with_time] == leads["created_at"][with_time]).all()


def test_target_uses_mixed_tokens_that_map_back(clean_and_messy) -> None:
    leads, messy = clean_and_messy
    target = messy["converted"]
    labelled = target != ""
    assert set(target[labelled & (leads["converted"] == 1)]) == set(POSITIVE_TOKENS)
    assert set(target[labelled & (leads["converted"] == 0)]) == set(NEGATIVE_TOKENS)


def test_a_few_rows_carry_defects_ingestion_must_quarantine(clean_and_messy) -> None:
    _, messy = clean_and_messy
    assert (messy["lead_id"] == "").sum() == 2
    assert (messy["converted"] == "").sum() == 2
    assert messy["created_at"].str.endswith("-13-45").sum() == 2
    assert messy["employees"].str.match(r"^-\d+$").sum() == 2
    assert messy[list(FEATURES_NUMERIC)].isin(BAD_NUMBERS).to_numpy().sum() == 2


# ------------------------------------------------------------------------------------------------ broken CSV


def _field_counts(lines: list[str]) -> list[int]:
    return [len(row) for row in csv.reader(lines)]


def test_corrupt_lines_breaks_exactly_count_data_lines(clean_and_messy) -> None:
    _, messy = clean_and_messy
    text = messy.head(1_000).to_csv(index=False)
    broken = corrupt_lines(text, seed=3, count=40)
    before, after = text.splitlines(keepends=True), broken.splitlines(keepends=True)
    assert len(after) == len(before) and after[0] == before[0]
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == 40
    width = len(messy.columns)
    counts = _field_counts([after[i] for i in changed])
    assert all(c != width for c in counts)
    assert any(c > width for c in counts) and any(c < width for c in counts)
    assert corrupt_lines(text, seed=3, count=40) == broken


def test_pandas_skips_exactly_the_lines_with_too_many_fields(clean_and_messy) -> None:
    _, messy = clean_and_messy
    sample = messy.head(300).reset_index(drop=True)
    broken = corrupt_lines(sample.to_csv(index=False), seed=9, count=30)
    counts = _field_counts(broken.splitlines()[1:])
    kept = [i for i, c in enumerate(counts) if c <= len(sample.columns)]
    intact = [i for i, c in enumerate(counts) if c == len(sample.columns)]
    read = pd.read_csv(io.StringIO(broken), dtype=str, keep_default_na=False, engine="python", on_bad_lines="skip")
    assert len(read) == len(kept) == len(sample) - sum(c > len(sample.columns) for c in counts)
    read.index = kept
    pd.testing.assert_frame_equal(read.loc[intact], sample.loc[intact])


def test_corrupt_lines_spares_the_header_and_first_record_and_checks_count() -> None:
    text = "a,b,c,d\n1,2,3,4\n5,6,7,8\n9,10,11,12\n"
    assert corrupt_lines(text, seed=0, count=0) == text
    with pytest.raises(ValueError, match="count"):
        corrupt_lines(text, seed=0, count=3)
    broken = corrupt_lines(text, seed=0, count=2).splitlines()
    assert broken[:2] == ["a,b,c,d", "1,2,3,4"]
    assert all(c != 4 for c in _field_counts(broken[2:]))
