"""`/score/arrow`'s reader on real Arrow IPC streams: typed columns (numbers as one float array, text categories
dictionary-encoded) read exactly as the same records sent as JSON, and their problems name the field and index."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import ipc_bytes
from scoreloop.serving.arrow import read_arrow
from scoreloop.serving.schema import check_records
from tests.unit.test_serving_contract import SPEC

RECORDS = [
    {"lead_id": "a", "industry": " SaaS ", "employees": 12, "revenue": 1.5e6},
    {"lead_id": "b", "industry": "retial", "employees": None, "revenue": math.nan},  # misspelling; null and NaN
    {"lead_id": "c", "industry": "quantum farming", "employees": 7, "revenue": None},  # unseen category
    {"lead_id": "d", "industry": "saas", "employees": 0, "revenue": 0.0},
]


def stream(columns: dict[str, pa.Array]) -> bytes:
    return ipc_bytes(pa.table(columns))


def same_rows(left: np.ndarray, right: np.ndarray) -> bool:
    return all(
        np.array_equal(left[name], right[name], equal_nan=left[name].dtype.kind == "f") for name in left.dtype.names
    )


@pytest.mark.parametrize(
    "industry",
    [pa.string(), pa.large_string(), pa.string_view(), pa.dictionary(pa.int8(), pa.string())],
)
def test_typed_columns_read_as_the_same_records_in_json(industry: pa.DataType) -> None:
    columns = {
        "lead_id": pa.array([r["lead_id"] for r in RECORDS]),
        "industry": pa.array([r["industry"] for r in RECORDS]).cast(industry),
        "employees": pa.array([r["employees"] for r in RECORDS], pa.int64()),  # an integer column with a null
        "revenue": pa.array([r["revenue"] for r in RECORDS], pa.float32()),  # a float column with NaN and null
    }
    rows = read_arrow(stream(columns), SPEC, max_records=10)
    assert same_rows(rows, check_records(RECORDS, SPEC, max_records=10))
    assert rows["industry"].tolist() == ["saas", "retail", "quantum_farming", "saas"]


@pytest.mark.parametrize("text", [pa.string(), pa.large_string(), pa.string_view()])
def test_text_in_a_numeric_feature_is_parsed_and_a_missing_category_is_reported_as_sent(text: pa.DataType) -> None:
    columns = {"industry": pa.array(["saas", None, "n/a"], text), "employees": pa.array(["1,200", "N/A", None], text)}
    with pytest.raises(ValidationError) as info:
        read_arrow(stream(columns), SPEC, max_records=10)
    found = info.value.errors()
    assert [(error["loc"], error["input"]) for error in found] == [(("industry", 1), None), (("industry", 2), "n/a")]
    rows = read_arrow(stream({**columns, "industry": pa.array(["saas"] * 3)}), SPEC, max_records=10)
    assert rows["employees"][0] == 1200 and np.isnan(rows["employees"][1:]).all()


@pytest.mark.parametrize(
    ("values", "index", "message"),
    [(pa.array([1.0, math.inf]), 1, "not a finite number"),
     (pa.array([1, -3], pa.int32()), 1, "-3 is below the minimum 0"),
     (pa.array([-1.0, None]), 0, "-1 is below the minimum 0")],
)  # fmt: skip
def test_a_bad_typed_value_names_the_field_and_index(values: pa.Array, index: int, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        read_arrow(stream({"industry": pa.array(["saas", "saas"]), "employees": values}), SPEC, max_records=10)
    assert [error["loc"] for error in info.value.errors()] == [("employees", index)]
    assert message in info.value.errors()[0]["msg"]


def test_an_empty_stream_is_an_empty_batch() -> None:
    columns = {"industry": pa.array([], pa.string()), "employees": pa.array([], pa.float64())}
    assert len(read_arrow(stream(columns), SPEC, max_records=10)) == 0


def test_a_field_sent_twice_is_refused_rather_than_one_copy_dropped() -> None:
    table = pa.Table.from_arrays([pa.array(["saas"]), pa.array(["retail"])], names=["industry", "industry"])
    with pytest.raises(ValidationError) as info:
        read_arrow(ipc_bytes(table), SPEC, max_records=10)
    assert info.value.errors()[0]["loc"] == ("industry",) and "more than once" in info.value.errors()[0]["msg"]


def test_a_dictionary_encoded_closed_field_refuses_like_json() -> None:
    closed = DatasetSpec.model_validate({**SPEC.model_dump(), "closed": ["industry"]})
    industry = pa.array(["saas", "quantum", "retial", "quantum"]).dictionary_encode()
    with pytest.raises(ValidationError) as info:
        read_arrow(stream({"industry": industry}), closed, max_records=10)
    assert [error["loc"] for error in info.value.errors()] == [("industry", 1), ("industry", 3)]
