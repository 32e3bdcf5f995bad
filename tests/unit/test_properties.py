"""Property tests: any input row is either accepted or quarantined with a reason; nothing is lost, nothing crashes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scoreloop.core.coerce import parse_number, read_category, read_frame, read_number
from scoreloop.core.ingest import ingest_file, quarantine_path
from scoreloop.core.spec import DatasetSpec, NumberFormat, Range

SPEC = DatasetSpec(
    name="props",
    id_column="id",
    target="y",
    positive_label="yes",
    time_column="at",
    numeric=["amount"],
    categorical=["kind"],
    allowed_values={"kind": ["alpha", "beta", "gamma_ray"]},
    closed=["kind"],
    ranges={"amount": Range(min=0, max=1e6)},
)

# Cells mix plausible CRM values with arbitrary text, so both the happy and the unhappy paths are exercised.
numbers = st.one_of(
    st.sampled_from(["$1,200", "1.2k", "3M", "N/A", "", "-", "12abc", "-5", "1e5", "nan", "inf", "1,2,3"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=8),
)
kinds = st.one_of(st.sampled_from(["Alpha", " BETA ", "gama_ray", "delta", "null", "Gamma-Ray"]), st.text(max_size=8))
dates = st.one_of(
    st.sampled_from(["2024-03-05", "03/05/2024", "Mar 5, 2024", "2024-13-45", "", "2024-03-05T10:00:00Z"]),
    st.text(max_size=12),
)
targets = st.one_of(st.sampled_from(["yes", "No", "1", "0", "TRUE", "", "maybe"]), st.text(max_size=4))
ids = st.one_of(st.sampled_from(["a", "b", "", "N/A"]), st.text(min_size=1, max_size=6))
records = st.lists(
    st.fixed_dictionaries({"id": ids, "at": dates, "amount": numbers, "kind": kinds, "y": targets}),
    max_size=25,
)


@pytest.mark.slow  # 300 generated frames take seconds, not milliseconds
@given(records)
@settings(max_examples=300, deadline=None)
def test_every_row_is_accepted_or_quarantined_with_a_reason(rows: list[dict]) -> None:
    raw = pd.DataFrame(rows, columns=["id", "at", "amount", "kind", "y"], dtype=object)
    result = read_frame(raw, SPEC, with_target=True)
    reasons = result.reasons()
    accepted = result.frame()
    assert set(accepted.index).isdisjoint(reasons)
    assert set(accepted.index) | set(reasons) == set(range(len(raw)))
    assert all(reason.strip() for reason in reasons.values())
    assert accepted["amount"].map(lambda v: math.isnan(v) or 0 <= v <= 1e6).all()
    assert accepted["kind"].map(lambda v: v is None or v in SPEC.allowed_values["kind"]).all()
    assert accepted["y"].isin([0, 1]).all()
    assert accepted["at"].notna().all() and accepted["id"].is_unique


@given(st.one_of(st.text(), st.floats(), st.integers(), st.booleans(), st.none()))
@example(float("inf"))
@example(10**400)
@example("1e400")
def test_scalar_readers_raise_only_value_errors(value: object) -> None:
    try:
        number = read_number(value)
    except ValueError:
        pass
    else:
        assert number is None or math.isfinite(number)
    assert read_category(value, ("alpha", "beta")) is None or isinstance(read_category(value, ("alpha",)), str)


FORMATS = [
    NumberFormat(decimal=decimal, thousands=thousands)
    for decimal in (".", ",")
    for thousands in (",", ".", " ", "\u00a0", "\u202f", "'")
    if thousands != decimal
]


@given(
    cents=st.integers(min_value=0, max_value=10**13),
    fmt=st.sampled_from(FORMATS),
    grouped=st.booleans(),
    currency=st.sampled_from(["", "€", "£", "$", "EUR", "USD", "gbp"]),
    before=st.booleans(),
    space=st.sampled_from(["", " ", "\u00a0"]),
    negative=st.booleans(),
)
def test_a_number_written_in_any_supported_format_reads_back_exactly(
    cents: int, fmt: NumberFormat, grouped: bool, currency: str, before: bool, space: str, negative: bool
) -> None:
    whole, fraction = divmod(cents, 100)
    digits = f"{whole:,}".replace(",", fmt.thousands) if grouped else str(whole)
    number = f"{'-' if negative else ''}{digits}{fmt.decimal}{fraction:02d}"
    text = f"{currency}{space}{number}" if before else f"{number}{space}{currency}"
    assert parse_number(text, fmt) == (-cents if negative else cents) / 100


lines = st.lists(
    st.lists(
        st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6), numbers),
        min_size=3,
        max_size=7,
    ),
    max_size=20,
)


@given(lines)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ingest_accounts_for_every_record_of_any_csv(tmp_path: Path, body: list[list[str]]) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "out.parquet"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "at", "amount", "kind", "y"])
        writer.writerows(body)
    records_written = sum(1 for row in body if row)  # csv.reader skips blank lines
    report = ingest_file(source, SPEC, output)
    assert report.rows_in == records_written
    assert report.rows_in == report.rows_out + report.rows_quarantined
    assert len(pd.read_parquet(output)) == report.rows_out
    if report.rows_quarantined:
        quarantined = pd.read_csv(quarantine_path(output), keep_default_na=False)
        assert len(quarantined) == report.rows_quarantined
        assert (quarantined["_reason"] != "").all()
