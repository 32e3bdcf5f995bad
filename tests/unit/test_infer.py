"""Spec inference on small frames, and the readable errors of the spec it produces."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from scoreloop.core.coerce import read_category
from scoreloop.core.infer import infer_number_format, infer_spec
from scoreloop.core.spec import DatasetSpec, NumberFormat, Range

N = 120


def _leads(n: int = N, **columns) -> pd.DataFrame:
    """`n` rows of a plausible export: an id, a date, a count, a category and a yes/no target."""
    base = {
        "lead_id": [f"L{i:04d}" for i in range(n)],
        "created_at": [f"2024-03-{1 + i % 28:02d}" for i in range(n)],
        "employees": [str(10 + i % 7) for i in range(n)],
        "industry": [("SaaS", "fintech", " Retail ")[i % 3] for i in range(n)],
        "converted": ["yes" if i % 4 == 0 else "no" for i in range(n)],
    }
    return pd.DataFrame({**base, **columns})


def test_columns_are_classified_by_their_content():
    frame = _leads(
        revenue=[f"${1000 * (i + 1):,}" for i in range(N)],
        owner_email=[f"rep{i}@example.com" for i in range(N)],
        notes=[f"called about the plan {i % 60}" for i in range(N)],
        plan=[f"plan {i % 60}" for i in range(N)],
        empty=["N/A"] * N,
    )
    spec = infer_spec(frame, "converted")
    assert spec.id_column == "lead_id"
    assert spec.time_column == "created_at"
    assert spec.numeric == ["employees", "revenue"]
    assert spec.categorical == ["industry", "plan"]
    assert spec.text == ["notes"]
    assert "owner_email" not in spec.features
    assert "empty" not in spec.features
    assert spec.allowed_values["industry"] == ["fintech", "retail", "saas"]
    assert "plan" not in spec.allowed_values


def test_a_second_date_column_is_not_made_a_feature():
    frame = _leads(updated_at=[f"2024-0{1 + i % 9}-{1 + i % 28:02d}" for i in range(N)])
    spec = infer_spec(frame, "converted", id_column="lead_id", time_column="created_at")
    assert "updated_at" not in spec.features


def test_unique_prose_is_text_and_unique_tokens_are_left_out():
    frame = _leads(
        notes=[f"called on day {i} about the renewal" for i in range(N)],
        owner_email=[f"rep{i}@example.com" for i in range(N)],
    )
    spec = infer_spec(frame, "converted")
    assert spec.text == ["notes"]
    assert "owner_email" not in spec.features


def test_explicit_id_and_time_columns_are_used_as_given():
    frame = _leads(signup_id=[f"S{i}" for i in range(N)], updated_at=["2024-01-01"] * N)
    spec = infer_spec(frame, "converted", id_column="signup_id", time_column="updated_at")
    assert (spec.id_column, spec.time_column) == ("signup_id", "updated_at")
    assert "lead_id" not in spec.features


def test_id_with_a_few_missing_values_is_still_guessed():
    ids = [f"L{i}" for i in range(N)]
    ids[3], ids[50] = "", "N/A"
    assert infer_spec(_leads(lead_id=ids), "converted").id_column == "lead_id"


def test_id_like_column_with_repeats_is_not_guessed_as_the_id():
    spec = infer_spec(_leads(lead_id=[f"L{i % 10}" for i in range(N)]), "converted")
    assert spec.id_column is None
    assert "lead_id" in spec.categorical


def test_no_time_column_is_guessed_when_the_dates_do_not_parse():
    spec = infer_spec(_leads(created_at=["soon"] * N), "converted")
    assert spec.time_column is None


def test_excluded_columns_are_left_out_everywhere():
    frame = _leads(
        crm_internal_id=[f"00Q{i}" for i in range(N)],
        updated_at=["2024-01-01"] * N,
        owner=["ana", "ben"] * (N // 2),
    )
    frame = frame[["crm_internal_id", "updated_at", *_leads().columns, "owner"]]
    spec = infer_spec(frame, "converted", exclude=("crm_internal_id", "updated_at", "owner"))
    assert (spec.id_column, spec.time_column) == ("lead_id", "created_at")
    mentioned = {spec.id_column, spec.time_column, spec.target, *spec.features}
    assert {"crm_internal_id", "updated_at", "owner"}.isdisjoint(mentioned)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["yes", "no", "No", "YES", "no"], "yes"),
        (["1", "0", "0", "1", "0"], "1"),
        (["True", "false", "false", "true", "false"], "true"),
        ([">50K", "<=50K", "<=50K", ">50K", "<=50K"], ">50k"),
        (["churned", "stayed", "stayed", "stayed", "stayed"], "churned"),
    ],
)
def test_positive_label_is_guessed(labels, expected):
    spec = infer_spec(_leads(5, converted=labels), "converted")
    assert spec.positive_label == expected


def test_numeric_target_guesses_one_as_positive():
    assert infer_spec(_leads(4, converted=[1, 0, 0, 1]), "converted").positive_label == "1"


def test_explicit_positive_label_is_kept():
    assert infer_spec(_leads(), "converted", positive_label="no").positive_label == "no"


def test_three_class_target_raises_naming_the_values():
    frame = _leads(6, converted=["a", "b", "c", "a", "b", "c"])
    with pytest.raises(ValueError, match=re.escape("target has 3 distinct values ['a', 'b', 'c']")):
        infer_spec(frame, "converted")


def test_target_without_a_positive_value_raises_readably():
    frame = _leads(4, converted=["no", "No", "0", "false"])
    with pytest.raises(ValueError, match=r"only negative values .*: pass the positive label explicitly"):
        infer_spec(frame, "converted")


def test_allowed_values_leave_out_rare_misspellings():
    industries = ["saas"] * 50 + ["fintech"] * 47 + ["FinTec"] * 3 + ["helthcare"] + ["healthcare"] * 19
    spec = infer_spec(_leads(industry=industries), "converted")
    assert spec.allowed_values["industry"] == ["fintech", "healthcare", "saas"]


def test_a_frequent_near_duplicate_is_a_value_not_a_misspelling():
    genders = ["female"] * 90 + ["male"] * 30  # a 0.8 match, but a quarter of the rows
    spec = infer_spec(_leads(gender=genders), "converted")
    assert spec.allowed_values["gender"] == ["female", "male"]
    assert read_category("Male", tuple(spec.allowed_values["gender"])) == "male"


def test_rare_legitimate_value_still_counts_when_frequent_enough():
    industries = ["saas"] * 117 + ["media"] * 3
    spec = infer_spec(_leads(industry=industries), "converted")
    assert spec.allowed_values["industry"] == ["media", "saas"]


@pytest.mark.parametrize(
    ("negatives", "expected"),
    [(0, Range(min=0)), (1, Range(min=0)), (2, None)],
    ids=["non-negative", "0.5%-negative", "1%-negative"],
)
def test_non_negative_columns_get_a_zero_minimum(negatives, expected):
    counts = [str(-3 if i < negatives else i) for i in range(200)]
    spec = infer_spec(_leads(200, employees=counts), "converted")
    assert spec.ranges.get("employees") == expected


@pytest.mark.parametrize("argument", ["target", "id_column", "time_column", "exclude"])
def test_unknown_column_names_raise_naming_the_column(argument):
    value = ("nope",) if argument == "exclude" else "nope"
    kwargs = {"target": "converted", argument: value}
    with pytest.raises(ValueError, match="column 'nope' not found"):
        infer_spec(_leads(5), **kwargs)


def test_inferred_spec_round_trips_through_yaml(tmp_path):
    frame = _leads(revenue=[f"{i}k" for i in range(N)], notes=[f"called about the plan {i % 60}" for i in range(N)])
    spec = infer_spec(frame, "converted", name="leads")
    loaded = DatasetSpec.load(spec.save(tmp_path / "specs" / "leads.yaml"))
    assert loaded == spec
    assert loaded.ranges["revenue"] == Range(min=0)


@pytest.mark.parametrize(
    ("revenue", "delimiter", "expected"),
    [
        (["$1,200.50", "1,250", "3.5", "12"], ",", NumberFormat()),
        (["1.200,50 €", "1.250", "3,5", "12"], ";", NumberFormat(delimiter=";", decimal=",", thousands=".")),
        (["1 200,50", "1 250", "3,5", "12"], ";", NumberFormat(delimiter=";", decimal=",", thousands=" ")),
        (["1\u00a0200,50", "3,5"], ",", NumberFormat(decimal=",", thousands="\u00a0")),
        (["1'200.50", "3.5"], ",", NumberFormat(thousands="'")),
        (["1.234", "12"], ",", NumberFormat()),  # ambiguous everywhere: the default
        (["1.234", "12"], ";", NumberFormat(delimiter=";", decimal=",", thousands=".")),  # a ';' file: the locale's
    ],
)
def test_the_number_format_is_told_by_the_numeric_columns_as_a_whole(revenue, delimiter, expected):
    frame = _leads(len(revenue) * 10, revenue=revenue * 10)
    assert infer_number_format(frame, delimiter) == expected
    assert infer_spec(frame, "converted", delimiter=delimiter).format == expected


def test_a_decimal_comma_column_is_numeric_under_the_format_it_shows():
    spec = infer_spec(_leads(revenue=[f"{i},5 €" for i in range(N)]), "converted", delimiter=";")
    assert spec.format.decimal == ","
    assert "revenue" in spec.numeric and spec.ranges["revenue"] == Range(min=0)


# --------------------------------------------------------------------------------------------------- spec validation


def test_spec_closes_only_categorical_features_with_allowed_values():
    with pytest.raises(ValueError, match=re.escape("closed names ['x'], which are not categorical features with")):
        DatasetSpec(target="y", positive_label="1", categorical=["c", "x"], allowed_values={"c": ["a"]}, closed=["x"])


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ({"decimal": ",", "thousands": ","}, "thousands ',' cannot also be the decimal mark"),
        ({"delimiter": ":"}, "Input should be ',', ';', '\\t' or '|'"),
        ({"decimal": " "}, "Input should be '.' or ','"),
    ],
)
def test_spec_rejects_an_impossible_number_format_naming_the_allowed_values(fmt, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DatasetSpec(target="y", positive_label="1", numeric=["x"], format=fmt)


def test_a_decimal_comma_format_defaults_to_dots_between_thousands():
    assert NumberFormat(decimal=",").thousands == "."
    assert DatasetSpec(target="y", positive_label="1", numeric=["x"]).format == NumberFormat()


def test_spec_rejects_a_column_in_two_roles():
    with pytest.raises(ValueError, match="column 'x' is listed as both numeric and categorical"):
        DatasetSpec(target="y", positive_label="1", numeric=["x"], categorical=["x"])


def test_spec_rejects_the_target_as_a_feature():
    with pytest.raises(ValueError, match="column 'y' is listed as both target and numeric"):
        DatasetSpec(target="y", positive_label="1", numeric=["y"])


def test_spec_rejects_allowed_values_for_a_non_categorical_column():
    with pytest.raises(ValueError, match=re.escape("allowed_values names ['x'], which are not categorical features")):
        DatasetSpec(target="y", positive_label="1", numeric=["x"], allowed_values={"x": ["a"]})


def test_spec_rejects_ranges_for_a_non_numeric_column():
    with pytest.raises(ValueError, match=re.escape("ranges names ['c'], which are not numeric features")):
        DatasetSpec(target="y", positive_label="1", categorical=["c"], ranges={"c": Range(min=0)})


def test_spec_without_features_is_rejected():
    with pytest.raises(ValueError, match="the spec declares no features"):
        DatasetSpec(target="y", positive_label="1")


def test_spec_file_errors_name_the_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match=f"spec {re.escape(str(path))} must be a YAML mapping"):
        DatasetSpec.load(path)
    with pytest.raises(ValueError, match="cannot read spec"):
        DatasetSpec.load(tmp_path / "absent.yaml")
