"""Coercion: every messy form a CRM export uses, and a reason naming the field and value for every rejection."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.coerce import coerce_frame, normalise_category, parse_number, read_category, read_number
from scoreloop.core.spec import DatasetSpec, Range

MISSING = ["", "N/A", "n/a", "-", "null", "NULL", "none", None, np.nan]
INDUSTRIES = ["fintech", "healthcare", "saas"]


def _spec(**overrides) -> DatasetSpec:
    fields = {
        "id_column": "lead_id",
        "target": "converted",
        "positive_label": "yes",
        "time_column": "created_at",
        "numeric": ["revenue"],
        "categorical": ["industry"],
        "allowed_values": {"industry": INDUSTRIES},
    }
    return DatasetSpec(**{**fields, **overrides})


def _frame(n: int = 1, **columns) -> pd.DataFrame:
    """`n` valid rows for `_spec()`, with `columns` replacing whole columns."""
    base = {
        "lead_id": [f"L{i}" for i in range(n)],
        "created_at": ["2024-03-05"] * n,
        "revenue": ["100"] * n,
        "industry": ["saas"] * n,
        "converted": ["yes"] * n,
    }
    return pd.DataFrame({**base, **columns})


def _coerce(frame: pd.DataFrame, spec: DatasetSpec | None = None, *, strict: bool = True):
    return coerce_frame(frame, spec or _spec(), with_target=True, strict=strict)


# --------------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,200", 1200.0),
        ("1.2k", 1200.0),
        ("1.234M", 1_234_000.0),
        ("1,200,000.00", 1_200_000.0),
        ("3.0", 3.0),
        ("-5", -5.0),
        ("12%", 12.0),
        (" 7 ", 7.0),
        ("2b", 2e9),
        ("1e5", 100_000.0),  # pandas reads it at ingest, so the API must too
        ("2.5E-3", 0.0025),
    ],
)
def test_parse_number_reads_spreadsheet_forms_exactly(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize("text", ["12abc", "twelve", "3,4x", "1.2.3", "k", "$"])
def test_parse_number_rejects_unreadable_text_naming_it(text):
    with pytest.raises(ValueError, match=re.escape(f"cannot read {text!r} as a number")):
        parse_number(text)


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_parse_number_rejects_booleans(value):
    with pytest.raises(ValueError, match="as a number"):
        parse_number(value)


def test_parse_number_passes_real_numbers_through():
    assert parse_number(3) == 3.0
    assert parse_number(np.int64(-2)) == -2.0
    assert parse_number(2.5) == 2.5


@pytest.mark.parametrize("value", MISSING)
def test_read_number_treats_missing_tokens_as_none(value):
    assert read_number(value) is None


def test_read_number_applies_bounds_with_the_bound_in_the_message():
    assert read_number("$50", Range(min=0, max=100)) == 50.0
    with pytest.raises(ValueError, match="-5 is below the minimum 0"):
        read_number("-5", Range(min=0))
    with pytest.raises(ValueError, match="150 is above the maximum 100"):
        read_number("150", Range(max=100))


def test_frame_reads_every_number_form_in_one_column():
    forms = ["$1,200", "1.2k", "1.234M", "1,200,000.00", "3.0", "-5", "12%", "42"]
    result = _coerce(_frame(len(forms), revenue=forms))
    assert result.issues == []
    assert result.rows["revenue"].tolist() == [1200.0, 1200.0, 1_234_000.0, 1_200_000.0, 3.0, -5.0, 12.0, 42.0]
    assert result.rows["revenue"].dtype == np.float64


@pytest.mark.parametrize("bad", ["12abc", "twelve", "3,4x", "inf", "-Infinity"])
def test_frame_rejects_unreadable_numbers_naming_field_and_value(bad):
    result = _coerce(_frame(2, revenue=["10", bad]))
    assert result.reasons().to_dict() == {1: f"revenue: cannot read {bad!r} as a number"}
    assert result.rows["revenue"].tolist() == [10.0]


@pytest.mark.parametrize(
    "column", [pd.Series([True, False]), pd.Series([True, "3"], dtype=object)], ids=["bool-dtype", "object"]
)
def test_frame_rejects_booleans_in_a_numeric_column(column):
    result = _coerce(_frame(2, revenue=column))
    rejected = [pos for pos, value in enumerate(column) if isinstance(value, bool | np.bool_)]
    assert result.reasons().index.tolist() == rejected
    assert all(re.fullmatch("revenue: cannot read '?(True|False)'? as a number", r) for r in result.reasons())
    assert len(result.rows) == len(column) - len(rejected)


def test_frame_passes_numeric_dtype_columns_through_and_still_checks_ranges():
    spec = _spec(ranges={"revenue": Range(min=0)})
    result = _coerce(_frame(3, revenue=pd.Series([5, -1, 7], dtype="int64")), spec)
    assert result.rows["revenue"].tolist() == [5.0, 7.0]
    assert result.reasons().to_dict() == {1: "revenue: -1 is below the minimum 0"}


def test_frame_passes_nullable_numeric_columns_through_with_nan_for_missing():
    result = _coerce(_frame(2, revenue=pd.Series([5, None], dtype="Int64")))
    assert result.issues == []
    assert result.rows["revenue"].iloc[0] == 5.0
    assert np.isnan(result.rows["revenue"].iloc[1])


# --------------------------------------------------------------------------------------------------- missing values


@pytest.mark.parametrize("token", MISSING)
def test_missing_tokens_become_nan_numbers_and_none_categories(token):
    result = _coerce(_frame(1, revenue=[token], industry=[token]))
    assert result.issues == []
    assert np.isnan(result.rows["revenue"].iloc[0])
    assert result.rows["industry"].iloc[0] is None


# --------------------------------------------------------------------------------------------------- categories


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SaaS", "saas"),
        (" saas ", "saas"),
        ("SAAS", "saas"),
        ("Paid Search", "paid_search"),
        ("paid-search", "paid_search"),
        (" paid / search ", "paid_search"),
        (">50K", ">50k"),
        ("<=50K", "<=50k"),
    ],
)
def test_normalise_category_ignores_case_spacing_and_separators(raw, expected):
    assert normalise_category(raw) == expected


def test_frame_normalises_case_and_whitespace_to_the_allowed_value():
    result = _coerce(_frame(3, industry=["SaaS", " saas ", "SAAS"]))
    assert result.rows["industry"].tolist() == ["saas"] * 3
    assert result.mapped_categories == {}


def test_frame_maps_one_edit_misspellings_and_counts_them():
    result = _coerce(_frame(4, industry=["fintec", "Helthcare", "fintec", "saas"]))
    assert result.issues == []
    assert result.rows["industry"].tolist() == ["fintech", "healthcare", "fintech", "saas"]
    assert result.mapped_categories == {"industry": 3}


def test_strict_frame_quarantines_a_far_value_listing_the_allowed_values():
    result = _coerce(_frame(2, industry=["saas", "Crypto"]), strict=True)
    assert result.reasons().to_dict() == {1: f"industry: 'crypto' is not one of {INDUSTRIES}"}
    assert result.unseen_categories == {}


def test_lenient_frame_keeps_a_far_value_and_counts_it_as_unseen():
    result = _coerce(_frame(3, industry=["Crypto", "crypto", "saas"]), strict=False)
    assert result.issues == []
    assert result.rows["industry"].tolist() == ["crypto", "crypto", "saas"]
    assert result.unseen_categories == {"industry": 2}


def test_read_category_maps_close_values_and_keeps_far_ones():
    allowed = tuple(INDUSTRIES)
    assert read_category(" FinTech ", allowed) == "fintech"
    assert read_category("fintec", allowed) == "fintech"
    assert read_category("crypto", allowed) == "crypto"
    assert read_category("N/A", allowed) is None


# --------------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05 14:22:01", "2024-03-05 14:22:01"),
        ("2024-03-05T14:22:01Z", "2024-03-05 14:22:01"),
        ("03/05/2024", "2024-03-05"),
        ("Mar 5, 2024", "2024-03-05"),
        ("2024/03/05", "2024-03-05"),
    ],
)
def test_dates_in_every_export_format_parse_to_naive_timestamps(text, expected):
    result = _coerce(_frame(1, created_at=[text]))
    assert result.issues == []
    assert result.rows["created_at"].iloc[0] == pd.Timestamp(expected)
    assert result.rows["created_at"].dt.tz is None


def test_mixed_date_formats_in_one_column_all_parse():
    texts = ["2024-03-05 14:22:01", "03/05/2024", "Mar 5, 2024", "2024-03-05T14:22:01Z", "2024/03/05"]
    result = _coerce(_frame(5, created_at=texts))
    assert result.issues == []
    assert result.rows["created_at"].dt.date.eq(pd.Timestamp("2024-03-05").date()).all()


def test_impossible_and_missing_dates_are_rejected_with_reasons():
    result = _coerce(_frame(3, created_at=["2024-13-45", "N/A", "2024-03-05"]))
    assert result.reasons().to_dict() == {
        0: "created_at: cannot read '2024-13-45' as a date",
        1: "created_at: is missing",
    }


# --------------------------------------------------------------------------------------------------- target


@pytest.mark.parametrize("positive_label", ["yes", "1"])
def test_target_reads_boolean_spellings(positive_label):
    positives, negatives = ["yes", "Yes", "YES", "1", "true", "True"], ["no", "No", "0", "false", "False"]
    result = _coerce(_frame(11, converted=positives + negatives), _spec(positive_label=positive_label))
    assert result.issues == []
    assert result.rows["converted"].tolist() == [1] * 6 + [0] * 5


def test_target_with_arbitrary_labels_matches_the_normalised_positive_label():
    spec = _spec(positive_label=">50K")
    result = _coerce(_frame(4, converted=[">50K", " >50k ", "<=50K", "<=50k"]), spec)
    assert result.issues == []
    assert result.rows["converted"].tolist() == [1, 1, 0, 0]


def test_target_with_arbitrary_labels_counts_any_other_present_value_as_negative():
    # The spec names only the positive label, so there is no negative label to check against.
    result = _coerce(_frame(2, converted=[">50K", "unknown"]), _spec(positive_label=">50K"))
    assert result.issues == []
    assert result.rows["converted"].tolist() == [1, 0]


@pytest.mark.parametrize("positive_label", ["yes", ">50K"])
@pytest.mark.parametrize("missing", ["", "N/A", None, np.nan])
def test_missing_target_is_rejected_as_missing(positive_label, missing):
    result = _coerce(_frame(2, converted=["yes", missing]), _spec(positive_label=positive_label))
    assert result.reasons().to_dict() == {1: "converted: is missing"}


def test_missing_target_in_a_nullable_column_is_rejected_as_missing():
    result = _coerce(_frame(2, converted=pd.Series(["yes", None], dtype="string")))
    assert result.reasons().to_dict() == {1: "converted: is missing"}


def test_target_that_is_neither_positive_nor_negative_is_rejected():
    result = _coerce(_frame(2, converted=["yes", "maybe"]))
    assert result.reasons().to_dict() == {1: "converted: 'maybe' is neither positive ('yes') nor negative"}


# --------------------------------------------------------------------------------------------------- id


def test_missing_id_is_rejected():
    result = _coerce(_frame(3, lead_id=["L1", "", "null"]))
    assert result.reasons().to_dict() == {1: "lead_id: is missing", 2: "lead_id: is missing"}


def test_duplicate_id_rejects_the_later_row_naming_the_first_position():
    result = _coerce(_frame(4, lead_id=["L1", "L2", " L1", "L1"]))
    assert result.reasons().to_dict() == {
        2: "lead_id: duplicate id 'L1' (the first row with it was kept)",
        3: "lead_id: duplicate id 'L1' (the first row with it was kept)",
    }
    assert result.rows["lead_id"].tolist() == ["L1", "L2"]


# --------------------------------------------------------------------------------------------------- ranges


def test_values_outside_the_range_are_rejected_with_the_bound():
    spec = _spec(ranges={"revenue": Range(min=0, max=1000)})
    result = _coerce(_frame(4, revenue=["-1", "1,001", "1k", "N/A"]), spec)
    assert result.reasons().to_dict() == {
        0: "revenue: -1 is below the minimum 0",
        1: "revenue: 1001 is above the maximum 1000",
    }
    assert len(result.rows) == 2


# --------------------------------------------------------------------------------------------------- whole rows


def test_several_problems_in_one_row_give_one_reason_listing_all():
    spec = _spec(ranges={"revenue": Range(min=0)})
    frame = _frame(2, lead_id=["L1", ""], created_at=["2024-03-05", "2024-13-45"], revenue=["1", "-3"])
    frame.loc[1, ["industry", "converted"]] = ["crypto", "maybe"]
    reasons = _coerce(frame, spec).reasons()
    assert list(reasons.index) == [1]
    assert reasons[1].split("; ") == [
        "lead_id: is missing",
        "created_at: cannot read '2024-13-45' as a date",
        "revenue: -3 is below the minimum 0",
        f"industry: 'crypto' is not one of {INDUSTRIES}",
        "converted: 'maybe' is neither positive ('yes') nor negative",
    ]


def test_every_input_row_is_either_kept_or_has_a_reason():
    frame = _frame(6, revenue=["1", "x", "2", "3", "4", "5"], lead_id=["a", "b", "a", "c", "", "d"])
    result = _coerce(frame)
    reasons = result.reasons()
    assert len(result.rows) + len(reasons) == len(frame)
    assert set(result.rows.index).isdisjoint(reasons.index)
    assert all(reasons.str.len() > 0)


def test_training_frame_missing_spec_columns_raises_naming_them():
    frame = _frame(1).drop(columns=["revenue", "converted"])
    with pytest.raises(ValueError, match=r"lacks spec columns \['converted', 'revenue'\]"):
        _coerce(frame)


def test_scoring_frame_treats_absent_features_as_missing():
    frame = pd.DataFrame({"industry": ["SaaS"]})
    result = coerce_frame(frame, _spec(), with_target=False, strict=False)
    assert result.issues == []
    assert list(result.rows.columns) == ["revenue", "industry"]
    assert np.isnan(result.rows["revenue"].iloc[0])
    assert result.rows["industry"].iloc[0] == "saas"


def test_text_columns_keep_their_words_and_blank_missing_values():
    spec = _spec(text=["notes"])
    result = _coerce(_frame(2, notes=["  asked for pricing ", "N/A"]), spec)
    assert result.rows["notes"].tolist() == ["asked for pricing", ""]
