"""The msgspec door of /score and /score/columns reads what the pydantic door reads, and leaves every refusal to it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError, create_model

from scoreloop.core.spec import DatasetSpec, Range
from scoreloop.serving.jsonbody import columns_reader, records_reader
from scoreloop.serving.schema import (
    TooManyRecords,
    check_columns,
    check_records,
    columns_type,
    records_type,
    strict_input,
)

SPEC = DatasetSpec(
    id_column="lead id",  # not a Python identifier
    target="converted",
    positive_label="yes",
    numeric=["employees", "revenue"],
    categorical=["industry", "class"],
    allowed_values={"industry": ["saas", "retail"]},
    ranges={"employees": Range(min=0), "revenue": Range(min=0, max=1e9)},
    required=["industry"],
)
MAX = 5
ACCEPTED = [  # text numbers, missing tokens, misspellings, unseen categories, number ids, absent fields, numbers and
    # booleans as categories (read as text: an exact integer reads as its digits)
    [{"lead id": 7, "industry": " SaaS ", "employees": "1,200", "revenue": "$1.2M", "class": "a"},
     {"lead id": " b2 ", "industry": "retial", "employees": "N/A", "revenue": None},
     {"industry": "quantum farming", "employees": 12, "revenue": 3.5e5, "class": None},
     {"industry": "retail", "employees": -0.0, "lead id": None}],
    {"industry": "saas", "employees": 3},
    [{"industry": 5, "class": True, "lead id": 1.5}, {"industry": "saas", "class": 123456789012345678901234567890}],
    [],
]  # fmt: skip
REFUSED = [  # each one a 400 (or a body the fast path does not type), named by the general path
    [{"industry": "saas", "employees": "lots"}],
    [{"industry": "saas", "employees": -1}],
    [{"industry": "saas", "employees": True}],
    [{"industry": "saas", "employees": [1]}],
    [{"industry": {"a": 1}}],
    [{"industry": "s" * 201}],
    [{"industry": "saas", "lead id": "x" * 201}],
    [{"industry": "saas", "employes": 3}],
    [{"employees": 3}],
    [{"industry": "N/A"}],
    [{"industry": "saas"}, 2],
    None,
    "saas",
]


def input_model(name: str, type_: object) -> type[BaseModel]:
    return create_model("Input", **{name: (type_, ...)})


RECORDS = input_model("records", records_type(SPEC, MAX))
COLUMNS = input_model("columns", columns_type(SPEC, MAX))


def as_columns(records: list[dict] | dict) -> dict[str, list]:
    records = [records] if isinstance(records, dict) else records
    names = sorted({name for record in records for name in record})
    return {name: [record.get(name) for record in records] for name in names}


def same_rows(left: np.ndarray, right: np.ndarray) -> bool:
    return left.dtype == right.dtype and all(
        np.array_equal(left[name], right[name], equal_nan=left[name].dtype.kind == "f") for name in left.dtype.names
    )


def validation_errors(model: type[BaseModel], body: bytes) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(body)
    return info.value.errors(include_url=False)


@pytest.mark.parametrize("records", ACCEPTED)
def test_accepted_records_and_columns_read_as_the_pydantic_path_reads_them(records: list[dict] | dict) -> None:
    body = json.dumps({"records": records}).encode()
    fast = records_reader(SPEC, MAX)(body)["records"]
    assert same_rows(fast, check_records(records, SPEC, MAX))
    assert same_rows(strict_input(RECORDS, records_reader(SPEC, MAX)).model_validate_json(body).records, fast)
    columns = as_columns(records)
    fast_columns = columns_reader(SPEC, MAX)(json.dumps({"columns": columns}).encode())["columns"]
    assert same_rows(fast_columns, check_columns(columns, SPEC, MAX))
    assert same_rows(fast_columns, fast)


@pytest.mark.parametrize("records", REFUSED)
def test_every_refusal_is_the_pydantic_paths_400(records: object) -> None:
    body = json.dumps({"records": records}).encode()
    assert records_reader(SPEC, MAX)(body) is None
    fast = validation_errors(strict_input(RECORDS, records_reader(SPEC, MAX)), body)
    assert fast == validation_errors(strict_input(RECORDS), body)
    assert fast[0]["loc"][0] == "records"


@pytest.mark.parametrize(
    "body",
    [b'{"records": [{"industry": "saas", "employees": NaN}]}', b'{"records": [{"employees": 1e400}]}',
     b'{"records": []} trailing', b'{"recrods": []}', b'{"records": [], "top": 1}', b"[]", b"not json"],
)  # fmt: skip
def test_bodies_that_are_not_json_or_not_the_shape_are_the_pydantic_paths_400(body: bytes) -> None:
    assert records_reader(SPEC, MAX)(body) is None
    assert validation_errors(strict_input(RECORDS, records_reader(SPEC, MAX)), body) == validation_errors(
        strict_input(RECORDS), body
    )


@pytest.mark.parametrize(
    "columns",
    [{"industry": ["saas", "saas"], "employees": [1]}, {"industry": ["saas", "saas"], "employees": [1, -2]},
     {"industry": ["saas"], "employes": [1]}, {"industry": [[1]]}, {"industry": None}, {"industry": "saas"}],
)  # fmt: skip
def test_refused_columns_are_the_pydantic_paths_400(columns: dict) -> None:
    body = json.dumps({"columns": columns}).encode()
    assert columns_reader(SPEC, MAX)(body) is None
    assert validation_errors(strict_input(COLUMNS, columns_reader(SPEC, MAX)), body) == validation_errors(
        strict_input(COLUMNS), body
    )


def test_too_many_records_is_the_same_413_on_both_doors() -> None:
    records = [{"industry": "saas"}] * (MAX + 1)
    for read, body in [(records_reader, {"records": records}), (columns_reader, {"columns": as_columns(records)})]:
        with pytest.raises(TooManyRecords, match=f"at most {MAX} records, this one has {MAX + 1}"):
            read(SPEC, MAX)(json.dumps(body).encode())
