"""The /score input contract on tiny inline records, by direct call: what is coerced, what is a 400 and where."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from scoreloop.core.coerce import field_counts, read_columns
from scoreloop.core.spec import DatasetSpec, Range
from scoreloop.serving.schema import Metadata, TooManyRecords, check_columns, check_records, record_model

SPEC = DatasetSpec(
    id_column="lead_id",
    target="converted",
    positive_label="yes",
    numeric=["employees", "revenue"],
    categorical=["industry"],
    allowed_values={"industry": ["saas", "retail"]},
    ranges={"employees": Range(min=0), "revenue": Range(min=0, max=1e9)},
    required=["industry"],
)


def errors(value: object, **kwargs) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        check_records(value, SPEC, max_records=kwargs.get("max_records", 100))
    return info.value.errors()


def test_the_same_coercions_as_ingestion() -> None:
    rows = check_records(
        [
            {"lead_id": 7, "industry": " SaaS ", "employees": "1,200", "revenue": "$1.2M"},
            {"industry": "retial", "employees": "N/A", "revenue": None},  # one-edit misspelling, missing numbers
        ],
        SPEC,
        max_records=100,
    )
    assert rows["lead_id"].tolist() == ["7", None]
    assert rows["industry"].tolist() == ["saas", "retail"]
    assert rows["employees"][0] == 1200 and math.isnan(rows["employees"][1])
    assert rows["revenue"][0] == 1_200_000 and math.isnan(rows["revenue"][1])


def test_well_formed_batches_read_the_same_as_mixed_ones() -> None:
    """All-string columns take a shortcut; one odd value (a number id, a boolean category) sends the column through
    the per-record path. Both read every shared record alike, missing tokens included."""
    plain = {"lead_id": [" a1 ", "n/a", "b2", "c3"], "industry": ["SaaS", "retial", "-", "Mining"]}
    mixed = {name: [*values, odd] for (name, values), odd in zip(plain.items(), [5, True], strict=True)}
    fast, slow = read_columns(plain, 4, SPEC).rows, read_columns(mixed, 5, SPEC).rows[:4]
    assert fast["lead_id"].tolist() == slow["lead_id"].tolist() == ["a1", None, "b2", "c3"]
    assert fast["industry"].tolist() == slow["industry"].tolist() == ["saas", "retail", None, "mining"]


def test_one_record_object_is_a_batch_of_one_and_empty_is_empty() -> None:
    assert len(check_records({"industry": "saas"}, SPEC, max_records=1)) == 1
    assert len(check_records([], SPEC, max_records=1)) == 0


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"industry": "saas", "employees": "lots"}, "employees", "cannot read 'lots' as a number"),
        ({"industry": "saas", "employees": -1}, "employees", "-1 is below the minimum 0"),
        ({"industry": "saas", "revenue": 2e9}, "revenue", "above the maximum"),
        ({"industry": "saas", "employees": math.inf}, "employees", "not a finite number"),
        ({"industry": "saas", "employees": 10**400}, "employees", "not a finite number"),
        ({"industry": "saas", "employees": True}, "employees", "as a number"),
        ({"industry": "saas", "employees": [1]}, "employees", "expected a number, got a list"),
        ({"industry": {"a": 1}}, "industry", "expected text, got a JSON object"),
        ({"industry": "s" * 201}, "industry", "longer than 200 characters"),
        ({"industry": "saas", "lead_id": "x" * 201}, "lead_id", "at most 200 are stored"),
        ({"industry": "saas", "lead_id": "a\x00b"}, "lead_id", "NUL"),
        ({"industry": "saas", "lead_id": False}, "lead_id", "got a boolean"),
        ({"industry": "saas", "employes": 3}, "employes", "Extra inputs are not permitted"),
        ({"employees": 3}, "industry", "Field required"),
        ({"industry": "N/A"}, "industry", "Field required"),
    ],
)
def test_a_bad_value_names_the_record_index_and_field(record: dict, field: str, message: str) -> None:
    found = errors([{"industry": "saas"}, record])
    assert [error["loc"] for error in found] == [(1, field)]
    assert message in found[0]["msg"]


def test_every_problem_is_reported_in_record_order() -> None:
    found = errors([{"employees": -1}, {"industry": "saas"}, {"industry": "saas", "revenue": "x", "employees": "y"}])
    assert sorted(error["loc"] for error in found) == [(0, "employees"), (0, "industry"), (2, "employees"),
                                                      (2, "revenue")]  # fmt: skip
    assert [error["loc"][0] for error in found] == [0, 0, 2, 2]


def test_too_many_records_is_refused_before_reading_them() -> None:
    with pytest.raises(TooManyRecords, match="at most 2 records, this one has 3") as info:
        check_records([{"industry": object()}] * 3, SPEC, max_records=2)  # an unreadable value is never reached
    assert info.value.error_code == 413


def test_columns_are_read_like_records_and_named_by_field_then_index() -> None:
    rows = check_columns({"industry": ["saas", "nope"], "employees": ["1k", None]}, SPEC, max_records=10)
    assert rows["industry"].tolist() == ["saas", "nope"] and rows["employees"][0] == 1000
    with pytest.raises(ValidationError) as info:
        check_columns({"industry": ["saas", "saas"], "employees": [1]}, SPEC, max_records=10)
    assert info.value.errors()[0]["loc"] == ("employees",)
    assert "has 1 values where the longest column has 2" in info.value.errors()[0]["msg"]
    with pytest.raises(ValidationError) as info:
        check_columns({"industry": ["saas", "saas"], "employees": [1, -2]}, SPEC, max_records=10)
    assert info.value.errors()[0]["loc"] == ("employees", 1)


def test_unseen_categories_and_missing_optional_fields_are_scored_and_counted() -> None:
    checked = read_columns({"industry": ["saas", "quantum_farming", "quantum farming"]}, 3, SPEC)
    assert checked.issues == []
    missing, unseen = field_counts(checked.rows, SPEC)
    assert unseen == {"industry": 2}
    assert missing == {"employees": 3, "revenue": 3}


def test_the_documented_schema_is_the_spec() -> None:
    schema = record_model(SPEC).model_json_schema()
    assert schema["required"] == ["industry"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"employees", "revenue", "industry", "lead_id"}
    assert ">= 0" in schema["properties"]["employees"]["description"]
    assert "in [0, 1e+09]" in schema["properties"]["revenue"]["description"]
    assert np.dtype(float) == check_records([], SPEC, max_records=1)["employees"].dtype


def test_a_closed_field_refuses_a_value_outside_its_allowed_values_naming_index_and_field() -> None:
    closed = DatasetSpec.model_validate({**SPEC.model_dump(), "closed": ["industry"]})
    with pytest.raises(ValidationError) as info:
        check_records([{"industry": "retial"}, {"industry": "Quantum Farming"}], closed, max_records=10)
    assert [(error["loc"], error["msg"]) for error in info.value.errors()] == [
        ((1, "industry"), "Value error, 'quantum_farming' is not one of ['saas', 'retail']")
    ]
    assert "others refused" in record_model(closed).model_json_schema()["properties"]["industry"]["description"]


def test_text_numbers_follow_the_spec_format() -> None:
    eu = DatasetSpec.model_validate({**SPEC.model_dump(), "format": {"delimiter": ";", "decimal": ","}})
    rows = check_records([{"industry": "saas", "employees": "1.234", "revenue": "1.234,5 €"}], eu, max_records=1)
    assert (rows["employees"][0], rows["revenue"][0]) == (1234, 1234.5)
    assert check_records([{"industry": "saas", "employees": "1.234"}], SPEC, max_records=1)["employees"][0] == 1.234


def test_metadata_names_the_calibration_and_a_client_of_an_older_server_still_reads_it() -> None:
    older = {"model": "m", "version": "1", "run_id": None, "windows": {}, "metrics": {}, "tier_cutoffs": {"A": 0.5},
             "score_scale": "percentile", "max_records": 10, "required": [], "input_schema": {}}  # fmt: skip
    assert Metadata.model_validate(older).calibration.model_dump() == {"method": "identity", "rows": 0}
    assert not {"calibration", "following"} & set(Metadata.model_json_schema()["required"])
    served = Metadata.model_validate({**older, "calibration": {"method": "platt", "rows": 812}})
    assert served.model_dump(mode="json")["calibration"] == {"method": "platt", "rows": 812}
    with pytest.raises(ValidationError, match="platt"):
        Metadata.model_validate({**older, "calibration": {"method": "beta"}})
