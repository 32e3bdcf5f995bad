"""Spec inference: a first spec from an unknown export, so a user starts in one command and edits from there."""

from __future__ import annotations

import difflib
import re
from collections import Counter

import pandas as pd

from scoreloop.core.coerce import (
    GROUP_SPACES,
    NEGATIVE_TOKENS,
    POSITIVE_TOKENS,
    is_missing,
    normalise_category,
    parse_number,
)
from scoreloop.core.spec import DatasetSpec, NumberFormat, Range

NUMERIC_SHARE = 0.95  # share of non-missing values that must read as numbers
DATE_SHARE = 0.9
MAX_CATEGORIES = 50
MIN_WORDS_FOR_TEXT = 3
NEGATIVE_AS_ERRORS = 0.005  # a column this rarely negative is non-negative with a few bad values
FORMAT_SAMPLE = 5000  # distinct values per column looked at to tell the number format
MISSPELLING_SHARE = 0.1  # a near-duplicate this rare beside a frequent value is its misspelling
_GROUPED = re.compile(rf"\d([.,{GROUP_SPACES}])\d{{3}}(?!\d)")


def _present(series: pd.Series) -> pd.Series:
    return series[~series.map(is_missing)]


def _try_number(value: object, fmt: NumberFormat) -> float | None:
    try:
        return parse_number(value, fmt)
    except ValueError:
        return None


def _numeric_share(values: pd.Series, fmt: NumberFormat) -> float:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return 1.0
    return float(values.map(lambda value: _try_number(value, fmt)).notna().mean()) if len(values) else 0.0


def infer_number_format(frame: pd.DataFrame, delimiter: str = ",") -> NumberFormat:
    """The decimal mark and thousands separator the export's numbers are written in, judged on its numeric-looking
    columns as a whole: the decimal mark under which more of their values read, on a tie '.' (',' in a
    ';'-delimited file, which decimal-comma locales write); then the separator their digit groups use most."""
    formats = {mark: NumberFormat(delimiter=delimiter, decimal=mark) for mark in (".", ",")}
    read = Counter[str]()
    grouped = Counter[str]()
    for column in frame.columns:
        values = _present(frame[column])
        if pd.api.types.is_numeric_dtype(values) or values.empty:
            continue
        counts = values.astype(str).value_counts().head(FORMAT_SAMPLE)
        fits = {mark: counts[[_try_number(text, fmt) is not None for text in counts.index]].sum()
                for mark, fmt in formats.items()}  # fmt: skip
        if max(fits.values()) >= NUMERIC_SHARE * counts.sum():
            read.update(fits)
            grouped.update({match: count for text, count in counts.items() for match in _GROUPED.findall(text)})
    tie = "," if delimiter == ";" else "."
    decimal = max(formats, key=lambda mark: (read[mark], mark == tie))
    separators = [(count, sep) for sep, count in grouped.items() if sep != decimal]
    thousands = {"thousands": max(separators)[1]} if separators else {}
    return NumberFormat.model_validate({"delimiter": delimiter, "decimal": decimal, **thousands})


def _date_share(values: pd.Series) -> float:
    if pd.api.types.is_datetime64_any_dtype(values):
        return 1.0
    parsed = pd.to_datetime(values.astype(str), format="mixed", errors="coerce", utc=True)
    return float(parsed.notna().mean()) if len(values) else 0.0


def _allowed_values(normalised: pd.Series) -> list[str]:
    """Frequent values, minus rare near-duplicates of more frequent ones (misspellings get mapped at ingest).

    A near-duplicate with at least MISSPELLING_SHARE of its neighbour's rows is a value of its own: 'male' beside
    'female' (a 0.8 match) is a category, and mapping it onto 'female' would corrupt every such row."""
    counts = normalised.value_counts()
    threshold = max(2, int(0.002 * len(normalised)))
    allowed: dict[str, int] = {}
    for value, count in counts.items():
        near = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.8)
        if count >= threshold and not (near and count < MISSPELLING_SHARE * allowed[near[0]]):
            allowed[value] = count
    return sorted(allowed)


def _positive_label(target: pd.Series) -> str:
    values = _present(target).map(normalise_category)
    counts = values.value_counts()
    if counts.empty:
        raise ValueError("target column has no values")
    if set(counts.index) <= POSITIVE_TOKENS | NEGATIVE_TOKENS:
        positives = counts[counts.index.isin(POSITIVE_TOKENS)]
        if positives.empty:
            raise ValueError(
                f"target has only negative values {list(counts.index)}: pass the positive label explicitly"
            )
        return str(positives.idxmax())
    if len(counts) != 2:
        raise ValueError(
            f"target has {len(counts)} distinct values {list(counts.index[:10])}: pass the positive label explicitly"
        )
    return str(counts.idxmin())


def _guess_id(frame: pd.DataFrame) -> str | None:
    """The first column named like an id whose present values are unique (a few may be missing)."""
    for column in frame.columns:
        name = column.lower()
        present = _present(frame[column])
        if (name == "id" or name.endswith("_id")) and len(present) >= 0.95 * len(frame) and present.is_unique:
            return column
    return None


def _guess_time(frame: pd.DataFrame, taken: set[str]) -> str | None:
    for column in frame.columns:
        if column in taken or not any(k in column.lower() for k in ("date", "time", "created", "_at")):
            continue
        if _date_share(_present(frame[column])) >= DATE_SHARE:
            return column
    return None


def infer_spec(
    frame: pd.DataFrame,
    target: str,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    positive_label: str | None = None,
    exclude: tuple[str, ...] = (),
    name: str = "dataset",
    delimiter: str = ",",
) -> DatasetSpec:
    """Classify every column of `frame` as id, time, target, numeric, categorical, text or ignored, and tell the
    number format (`infer_number_format`) of a file whose fields are separated by `delimiter`."""
    for column in (target, id_column, time_column, *exclude):
        if column and column not in frame.columns:
            raise ValueError(f"column {column!r} not found; columns are {list(frame.columns)}")
    id_column = id_column or _guess_id(frame.drop(columns=[target, *exclude]))
    time_column = time_column or _guess_time(frame, {target, id_column or "", *exclude})
    taken = {target, id_column, time_column, *exclude}
    fmt = infer_number_format(frame.drop(columns=[c for c in taken if c]), delimiter)
    numeric: list[str] = []
    categorical: list[str] = []
    text: list[str] = []
    allowed: dict[str, list[str]] = {}
    ranges: dict[str, Range] = {}
    for column in frame.columns:
        if column in taken:
            continue
        values = _present(frame[column])
        if values.empty:
            continue
        if _numeric_share(values, fmt) >= NUMERIC_SHARE:
            numeric.append(column)
            parsed = pd.to_numeric(values.map(lambda value: _try_number(value, fmt)))
            if (parsed < 0).mean() <= NEGATIVE_AS_ERRORS:
                ranges[column] = Range(min=0)
            continue
        if _date_share(values.sample(min(len(values), 500), random_state=0)) >= DATE_SHARE:
            continue  # another date: not a model feature as it stands (derive e.g. an age from it upstream)
        normalised = values.map(normalise_category)
        distinct = normalised.nunique()
        wordy = values.astype(str).str.split().str.len().mean() >= MIN_WORDS_FOR_TEXT
        if distinct <= max(MAX_CATEGORIES, int(0.01 * len(values))):
            categorical.append(column)
            allowed[column] = _allowed_values(normalised)
        elif wordy:
            text.append(column)
        elif distinct < len(values) or len(values) <= 20:
            categorical.append(column)
        # else: unique per row and not prose, an identifier or contact field, not a feature
    return DatasetSpec(
        name=name,
        id_column=id_column,
        target=target,
        positive_label=positive_label or _positive_label(frame[target]),
        time_column=time_column,
        numeric=numeric,
        categorical=categorical,
        text=text,
        allowed_values=allowed,
        ranges=ranges,
        format=fmt,
    )
