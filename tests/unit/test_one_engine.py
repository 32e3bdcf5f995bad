"""One engine for every path: the same raw values sent through ingest, `/score` (records, columns, Arrow), batch
scoring's reader and monitoring's reader get the same verdict and the same typed value per field.

CSV carries only strings, so the file paths are compared on strings; JSON-only values (booleans, lists, null,
numbers) are compared between the JSON paths, and with the text a CSV would carry for the same number.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scoreloop.core.coerce import read_columns, read_frame
from scoreloop.core.ingest import ingest_file, quarantine_path
from scoreloop.core.spec import DatasetSpec, NumberFormat, Range
from scoreloop.core.store import ipc_bytes
from scoreloop.monitoring.monitor import read_features
from scoreloop.serving.arrow import read_arrow
from scoreloop.serving.batch import read_chunks
from scoreloop.serving.schema import check_columns, check_records

FEATURES = ["amount", "size", "kind", "tier", "note"]
SPECS = [
    DatasetSpec(
        name="engine",
        id_column="id",
        target="y",
        positive_label="yes",
        time_column="at",
        numeric=["amount", "size"],
        categorical=["kind", "tier"],
        text=["note"],
        allowed_values={"kind": ["alpha", "beta", "gamma_ray"], "tier": ["gold", "silver"]},
        closed=["kind"],
        ranges={"amount": Range(min=0)},
        required=["tier"],
        format=fmt,
    )
    for fmt in (NumberFormat(), NumberFormat(delimiter=";", decimal=",", thousands="."))
]

characters = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
spelled = st.sampled_from(
    ["$1,200", "1.2k", "3M", "12%", "5.", "5.e3", ".5", "1e5", "-5", "1.234,56 €", "€ 12,5", "1.234", "1,234",
     "1 234,5", "1\u00a0234", "1\u202f234,5", "1'234.5", "EUR 50", "50 USD", "£3", "5,", ",5", "1e400", "1,2,3",
     "twelve", "inf", "0.0000001", "N/A", "", "-", "null", "?"]
)  # fmt: skip
numbers = st.one_of(
    spelled, st.floats().map(str), st.integers(-(10**20), 10**20).map(str), st.text(characters, max_size=8)
)
categories = st.one_of(
    st.sampled_from(["Alpha", " BETA ", "gama_ray", "Gamma-Ray", "delta", "GOLD", "silvr", "platinum", "N/A", ""]),
    st.text(characters, max_size=6),
)
notes = st.one_of(st.sampled_from(["", "N/A", " called twice "]), st.text(characters, max_size=10))
records = st.lists(
    st.fixed_dictionaries({"amount": numbers, "size": numbers, "kind": categories, "tier": categories, "note": notes}),
    min_size=1,
    max_size=12,
)


def typed(value: Any) -> Any:
    """A typed value in one comparable form: NaN and None are both 'missing'."""
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


def rows_of(rows: np.ndarray | pd.DataFrame, positions: list[int]) -> dict[int, tuple]:
    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame({name: rows[name] for name in FEATURES})
    values = table[FEATURES].itertuples(index=False)
    return {pos: tuple(map(typed, row)) for pos, row in zip(positions, values, strict=True)}


def refused_fields(call, *args: Any, loc: str = "index-field") -> set[tuple[int, str]]:
    """The (index, field) pairs a serving reader answers with a 400, or none."""
    try:
        call(*args)
    except ValidationError as exc:
        locs = [error["loc"] for error in exc.errors()]
        return {(loc_[0], loc_[1]) if loc == "index-field" else (loc_[1], loc_[0]) for loc_ in locs}
    return set()


def write_csv(path: Path, spec: DatasetSpec, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=spec.format.delimiter)
        writer.writerow(["id", "at", "y", *FEATURES])
        writer.writerows(
            [f"r{i}", "2024-03-05", "yes", *(row[name] for name in FEATURES)] for i, row in enumerate(rows)
        )


@given(spec=st.sampled_from(SPECS), rows=records)
@example(spec=SPECS[1], rows=[{"amount": "1.234", "size": "1,2,3", "kind": "delta", "tier": "silvr", "note": ""}])
@example(spec=SPECS[0], rows=[{"amount": "5.e3", "size": "5.", "kind": "Gamma-Ray", "tier": "platinum", "note": "x"}])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_same_strings_get_the_same_verdict_and_value_on_every_path(
    tmp_path: Path, spec: DatasetSpec, rows: list[dict]
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "out.parquet"
    write_csv(source, spec, rows)
    n = len(rows)

    # Field by field: the batch scorer's reader, /score records, columns and Arrow.
    chunk = next(read_chunks(source, 10_000, spec.format.delimiter))
    batch = read_frame(chunk.table.frame, spec)
    expected = {(issue.row, issue.field) for issue in batch.issues}
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    arrow = ipc_bytes(pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()}))
    assert refused_fields(check_records, rows, spec, 100) == expected
    assert refused_fields(check_columns, columns, spec, 100, loc="field-index") == expected
    assert refused_fields(read_arrow, arrow, spec, 100, loc="field-index") == expected

    refused = sorted({row for row, _ in expected})
    kept = [i for i in range(n) if i not in refused]
    values = rows_of(batch.rows[kept], kept)
    if kept:
        accepted = [rows[i] for i in kept]
        assert rows_of(check_records(accepted, spec, 100), kept) == values
        kept_columns = {name: [row[name] for row in accepted] for name in FEATURES}
        assert rows_of(check_columns(kept_columns, spec, 100), kept) == values
        kept_arrow = ipc_bytes(pa.table({k: pa.array(v, pa.string()) for k, v in kept_columns.items()}))
        assert rows_of(read_arrow(kept_arrow, spec, 100), kept) == values

    # Record by record: ingest (the file in, Parquet and quarantine out) and monitoring's reader.
    report = ingest_file(source, spec, output)
    assert report.rows_in == report.rows_out + report.rows_quarantined == n
    quarantined = (
        pd.read_csv(quarantine_path(output), dtype=str) if report.quarantine else pd.DataFrame({"_record": []})
    )
    assert sorted(quarantined["_record"].astype(int) - 1) == refused
    assert rows_of(pd.read_parquet(output), kept) == values
    monitored = read_features(source, spec)
    assert rows_of(monitored.frame, list(monitored.frame.index)) == values
    assert sorted(monitored.refused["_record"] - 1) == refused


json_values = st.one_of(
    numbers,
    categories,
    st.floats(),
    st.integers(-(10**400), 10**400),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
json_records = st.lists(st.fixed_dictionaries({name: json_values for name in FEATURES}), min_size=1, max_size=10)


@given(spec=st.sampled_from(SPECS), rows=json_records)
@example(spec=SPECS[0], rows=[{"amount": 1e400, "size": True, "kind": True, "tier": 5, "note": [1]}])
@settings(max_examples=100, deadline=None)
def test_json_values_get_the_same_verdict_and_value_as_records_columns_and_one_by_one(
    spec: DatasetSpec, rows: list[dict]
) -> None:
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    engine = read_columns(columns, len(rows), spec)
    expected = {(issue.row, issue.field) for issue in engine.issues}
    assert refused_fields(check_records, rows, spec, 100) == expected
    assert refused_fields(check_columns, columns, spec, 100, loc="field-index") == expected
    # The fast paths (all numbers, all strings: each distinct value read once) give the per-record path's verdict.
    slow = read_columns({name: [*values, [0]] for name, values in columns.items()}, len(rows) + 1, spec)
    assert {(i.row, i.field) for i in slow.issues if i.row < len(rows)} == expected
    assert rows_of(slow.rows[: len(rows)], list(range(len(rows)))) == rows_of(engine.rows, list(range(len(rows))))
    # A number a client sends as JSON reads as the text a CSV export in the spec's format writes for it.
    for name in spec.numeric:
        numbers = [value for value in columns[name] if type(value) in (int, float)]
        texts = [str(value).replace(".", spec.format.decimal) for value in numbers]
        as_text = read_columns({name: texts}, len(numbers), spec)
        as_json = read_columns({name: numbers}, len(numbers), spec)
        assert rows_of(as_text.rows, list(range(len(numbers)))) == rows_of(as_json.rows, list(range(len(numbers))))
        assert [(i.row, i.field) for i in as_text.issues] == [(i.row, i.field) for i in as_json.issues]
