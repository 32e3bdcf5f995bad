"""The engine: every messy form a CRM export uses, and a reason naming the field and value for every rejection."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.coerce import (
    Checked,
    field_counts,
    normalise_category,
    parse_number,
    read_category,
    read_frame,
    read_number,
)
from scoreloop.core.spec import DatasetSpec, NumberFormat, Range

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


def _coerce(frame: pd.DataFrame, spec: DatasetSpec | None = None) -> Checked:
    return read_frame(frame, spec or _spec(), with_target=True)


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
        ("1e5", 100_000.0),
        ("2.5E-3", 0.0025),
        ("5.", 5.0),
        ("5.e3", 5000.0),
        (".5", 0.5),
        ("0.0000001", 1e-7),  # no rounding unless a suffix scales it
        ("-$5", -5.0),
        ("$-5", -5.0),
        ("€1,200", 1200.0),
        ("1,200 USD", 1200.0),
        ("gbp 3", 3.0),
        ("£2.5k", 2500.0),
        ("1 200", 1200.0),
        ("1\u00a0200.5", 1200.5),
        ("1'200.5", 1200.5),
    ],
)
def test_parse_number_reads_spreadsheet_forms_exactly(text, expected):
    assert parse_number(text) == expected


EU = NumberFormat(delimiter=";", decimal=",")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.234,56", 1234.56),
        ("1.234", 1234.0),  # ambiguous: the spec's format decides, never the value
        ("1,5", 1.5),
        ("5,", 5.0),
        (",5", 0.5),
        ("5,e3", 5000.0),
        ("1.234,56 €", 1234.56),
        ("€ -12,5", -12.5),
        ("EUR 1.000", 1000.0),
        ("12,5%", 12.5),
        ("1,2k", 1200.0),
        ("1 234,5", 1234.5),
        ("1\u202f234,5", 1234.5),
    ],
)
def test_parse_number_reads_decimal_comma_exports_by_the_declared_format(text, expected):
    assert parse_number(text, EU) == expected


@pytest.mark.parametrize(("text", "fmt"), [("1,2,3", EU), ("1.23", EU), ("1.234,5", NumberFormat()), ("1,23", None)])
def test_a_number_malformed_under_the_format_is_refused_naming_the_format(text, fmt):
    fmt = fmt or NumberFormat()
    expected = f"cannot read {text!r} as a number with decimal {fmt.decimal!r} and thousands {fmt.thousands!r}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_number(text, fmt)


def test_a_spaced_thousands_format_refuses_the_other_mark_as_a_separator():
    spaced = NumberFormat(decimal=",", thousands=" ")
    assert parse_number("1 234,5", spaced) == 1234.5
    with pytest.raises(ValueError, match="thousands ' '"):
        parse_number("1.234,5", spaced)


@pytest.mark.parametrize("text", ["12abc", "twelve", "3,4x", "1.2.3", "k", "$", "-$-5", "5e", "1,2,3", "inf"])
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


def test_numbers_outside_the_range_are_refused_with_the_bound_in_the_message():
    spec = _spec(ranges={"revenue": Range(min=0, max=100)})
    result = _coerce(_frame(3, revenue=["$50", "-5", "150"]), spec)
    assert result.reasons() == {1: "revenue: -5 is below the minimum 0", 2: "revenue: 150 is above the maximum 100"}


def test_an_export_in_decimal_commas_reads_by_its_spec():
    result = _coerce(_frame(3, revenue=["1.234,56 €", "1.234", "1,2,3"]), _spec(format=EU))
    assert result.frame()["revenue"].tolist() == [1234.56, 1234.0]
    assert result.reasons() == {
        2: "revenue: cannot read '1,2,3' as a number with decimal ',' and thousands '.' (the spec's format)"
    }


def test_frame_reads_every_number_form_in_one_column():
    forms = ["$1,200", "1.2k", "1.234M", "1,200,000.00", "3.0", "-5", "12%", "42"]
    result = _coerce(_frame(len(forms), revenue=forms))
    assert result.issues == []
    assert result.frame()["revenue"].tolist() == [1200.0, 1200.0, 1_234_000.0, 1_200_000.0, 3.0, -5.0, 12.0, 42.0]
    assert result.frame()["revenue"].dtype == np.float64


@pytest.mark.parametrize("bad", ["12abc", "twelve", "3,4x", "inf", "-Infinity"])
def test_frame_rejects_unreadable_numbers_naming_field_and_value(bad):
    result = _coerce(_frame(2, revenue=["10", bad]))
    assert result.reasons() == {1: f"revenue: cannot read {bad!r} as a number"}
    assert result.frame()["revenue"].tolist() == [10.0]


@pytest.mark.parametrize(
    "column", [pd.Series([True, False]), pd.Series([True, "3"], dtype=object)], ids=["bool-dtype", "object"]
)
def test_frame_rejects_booleans_in_a_numeric_column(column):
    result = _coerce(_frame(2, revenue=column))
    rejected = [pos for pos, value in enumerate(column) if isinstance(value, bool | np.bool_)]
    assert list(result.reasons()) == rejected
    assert all(re.fullmatch("revenue: cannot read '?(True|False)'? as a number", r) for r in result.reasons().values())
    assert len(result.frame()) == len(column) - len(rejected)


def test_frame_passes_numeric_dtype_columns_through_and_still_checks_ranges():
    spec = _spec(ranges={"revenue": Range(min=0)})
    result = _coerce(_frame(3, revenue=pd.Series([5, -1, 7], dtype="int64")), spec)
    assert result.frame()["revenue"].tolist() == [5.0, 7.0]
    assert result.reasons() == {1: "revenue: -1 is below the minimum 0"}


def test_frame_passes_nullable_numeric_columns_through_with_nan_for_missing():
    result = _coerce(_frame(2, revenue=pd.Series([5, None], dtype="Int64")))
    assert result.issues == []
    assert result.frame()["revenue"].iloc[0] == 5.0
    assert np.isnan(result.frame()["revenue"].iloc[1])


# --------------------------------------------------------------------------------------------------- missing values


@pytest.mark.parametrize("token", MISSING)
def test_missing_tokens_become_nan_numbers_and_none_categories(token):
    result = _coerce(_frame(1, revenue=[token], industry=[token]))
    assert result.issues == []
    assert np.isnan(result.frame()["revenue"].iloc[0])
    assert result.frame()["industry"].iloc[0] is None


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
    assert result.frame()["industry"].tolist() == ["saas"] * 3
    assert result.mapped == {}


def test_frame_maps_one_edit_misspellings_and_counts_them():
    result = _coerce(_frame(4, industry=["fintec", "Helthcare", "fintec", "saas"]))
    assert result.issues == []
    assert result.frame()["industry"].tolist() == ["fintech", "healthcare", "fintech", "saas"]
    assert result.mapped == {"industry": 3}


def test_a_closed_field_refuses_a_far_value_listing_the_allowed_values():
    result = _coerce(_frame(3, industry=["saas", "Crypto", "fintec"]), _spec(closed=["industry"]))
    assert result.reasons() == {1: f"industry: 'crypto' is not one of {INDUSTRIES}"}
    assert result.frame()["industry"].tolist() == ["saas", "fintech"]


def test_a_far_value_is_kept_and_counted_as_unseen():
    result = _coerce(_frame(3, industry=["Crypto", "crypto", "saas"]))
    assert result.issues == []
    assert result.frame()["industry"].tolist() == ["crypto", "crypto", "saas"]
    assert field_counts(result.rows, _spec())[1] == {"industry": 2}


def test_a_missing_required_feature_is_refused_in_training_data_too():
    result = _coerce(_frame(2, industry=["saas", "N/A"]), _spec(required=["industry"]))
    assert result.reasons() == {1: "industry: is missing"}


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
    assert result.frame()["created_at"].iloc[0] == pd.Timestamp(expected)
    assert result.frame()["created_at"].dt.tz is None


def test_mixed_date_formats_in_one_column_all_parse():
    texts = ["2024-03-05 14:22:01", "03/05/2024", "Mar 5, 2024", "2024-03-05T14:22:01Z", "2024/03/05"]
    result = _coerce(_frame(5, created_at=texts))
    assert result.issues == []
    assert result.frame()["created_at"].dt.date.eq(pd.Timestamp("2024-03-05").date()).all()


def test_impossible_and_missing_dates_are_rejected_with_reasons():
    result = _coerce(_frame(3, created_at=["2024-13-45", "N/A", "2024-03-05"]))
    assert result.reasons() == {
        0: "created_at: cannot read '2024-13-45' as a date",
        1: "created_at: is missing",
    }


# --------------------------------------------------------------------------------------------------- target


@pytest.mark.parametrize("positive_label", ["yes", "1"])
def test_target_reads_boolean_spellings(positive_label):
    positives, negatives = ["yes", "Yes", "YES", "1", "true", "True"], ["no", "No", "0", "false", "False"]
    result = _coerce(_frame(11, converted=positives + negatives), _spec(positive_label=positive_label))
    assert result.issues == []
    assert result.frame()["converted"].tolist() == [1] * 6 + [0] * 5


def test_target_with_arbitrary_labels_matches_the_normalised_positive_label():
    spec = _spec(positive_label=">50K")
    result = _coerce(_frame(4, converted=[">50K", " >50k ", "<=50K", "<=50k"]), spec)
    assert result.issues == []
    assert result.frame()["converted"].tolist() == [1, 1, 0, 0]


def test_target_with_arbitrary_labels_counts_any_other_present_value_as_negative():
    # The spec names only the positive label, so there is no negative label to check against.
    result = _coerce(_frame(2, converted=[">50K", "unknown"]), _spec(positive_label=">50K"))
    assert result.issues == []
    assert result.frame()["converted"].tolist() == [1, 0]


@pytest.mark.parametrize("positive_label", ["yes", ">50K"])
@pytest.mark.parametrize("missing", ["", "N/A", None, np.nan])
def test_missing_target_is_rejected_as_missing(positive_label, missing):
    result = _coerce(_frame(2, converted=["yes", missing]), _spec(positive_label=positive_label))
    assert result.reasons() == {1: "converted: is missing"}


def test_missing_target_in_a_nullable_column_is_rejected_as_missing():
    result = _coerce(_frame(2, converted=pd.Series(["yes", None], dtype="string")))
    assert result.reasons() == {1: "converted: is missing"}


def test_target_that_is_neither_positive_nor_negative_is_rejected():
    result = _coerce(_frame(2, converted=["yes", "maybe"]))
    assert result.reasons() == {1: "converted: 'maybe' is neither positive ('yes') nor negative"}


# --------------------------------------------------------------------------------------------------- id


def test_missing_id_is_rejected():
    result = _coerce(_frame(3, lead_id=["L1", "", "null"]))
    assert result.reasons() == {1: "lead_id: is missing", 2: "lead_id: is missing"}


def test_duplicate_id_rejects_the_later_row_naming_the_first_position():
    result = _coerce(_frame(4, lead_id=["L1", "L2", " L1", "L1"]))
    assert result.reasons() == {
        2: "lead_id: duplicate id 'L1' (the first row with it was kept)",
        3: "lead_id: duplicate id 'L1' (the first row with it was kept)",
    }
    assert result.frame()["lead_id"].tolist() == ["L1", "L2"]


# --------------------------------------------------------------------------------------------------- ranges


def test_values_outside_the_range_are_rejected_with_the_bound():
    spec = _spec(ranges={"revenue": Range(min=0, max=1000)})
    result = _coerce(_frame(4, revenue=["-1", "1,001", "1k", "N/A"]), spec)
    assert result.reasons() == {
        0: "revenue: -1 is below the minimum 0",
        1: "revenue: 1001 is above the maximum 1000",
    }
    assert len(result.frame()) == 2


# --------------------------------------------------------------------------------------------------- whole rows


def test_several_problems_in_one_row_give_one_reason_listing_all():
    spec = _spec(ranges={"revenue": Range(min=0)}, closed=["industry"])
    frame = _frame(2, lead_id=["L1", ""], created_at=["2024-03-05", "2024-13-45"], revenue=["1", "-3"])
    frame.loc[1, ["industry", "converted"]] = ["crypto", "maybe"]
    reasons = _coerce(frame, spec).reasons()
    assert list(reasons) == [1]
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
    assert len(result.frame()) + len(reasons) == len(frame)
    assert set(result.frame().index).isdisjoint(reasons)
    assert all(reasons.values())


def test_training_frame_missing_spec_columns_raises_naming_them():
    frame = _frame(1).drop(columns=["revenue", "converted"])
    with pytest.raises(ValueError, match=r"lacks spec columns \['converted', 'revenue'\]"):
        _coerce(frame)


def test_scoring_frame_treats_absent_features_as_missing():
    frame = pd.DataFrame({"industry": ["SaaS"]})
    result = read_frame(frame, _spec())
    assert result.issues == []
    assert list(result.frame().columns) == ["revenue", "industry", "lead_id"]
    assert np.isnan(result.frame()["revenue"].iloc[0])
    assert result.frame()["industry"].iloc[0] == "saas"


def test_text_columns_keep_their_words_and_blank_missing_values():
    spec = _spec(text=["notes"])
    result = _coerce(_frame(2, notes=["  asked for pricing ", "N/A"]), spec)
    assert result.frame()["notes"].tolist() == ["asked for pricing", ""]
