"""Records to score, read against the spec one column at a time: the input contract of `/score` and `scoreloop score`.

Each value goes through the same coercion functions as ingestion (`read_number`, `read_category`); the loops only
skip the work when it is certain to be a no-op (a JSON number needs no parsing, a category string repeated across
records is normalised once). The result is a structured array, one typed field per feature plus the id, that
concatenates cheaply across requests for adaptive batching. Every problem is an `Issue` naming the record's position
and the field; unseen categories and missing optional features are not problems (they are scored, and counted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scoreloop.core.coerce import MISSING_TOKENS, Issue, is_missing, read_category, read_number
from scoreloop.core.spec import DatasetSpec

ID_MAX_LENGTH = 200  # the scoring log's record_id column
REQUIRED = "Field required"
_PLAIN_NUMBERS = frozenset({int, float, type(None)})
_TEXTS = frozenset({str, type(None)})


@dataclass(frozen=True)
class Distinct:
    """A column as its distinct values and, per record, the position of its value among them: how an Arrow
    dictionary encoding hands over a text column, so that each distinct value is read once and the records are
    filled by one `take`."""

    values: list[Any]
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: int) -> Any:
        return self.values[self.codes[index]]


@dataclass(frozen=True)
class Checked:
    """Typed rows (a structured array in `rows_dtype(spec)`) and the issues of the records that failed."""

    rows: np.ndarray
    issues: list[Issue]

    @property
    def rejected(self) -> np.ndarray:
        """Positions of the records with at least one issue."""
        return np.unique(np.fromiter((issue.row for issue in self.issues), dtype=np.int64))


def rows_dtype(spec: DatasetSpec) -> np.dtype:
    """One field per feature in model order (float for numbers, object for text and categories), then the id."""
    fields = [(name, np.float64) for name in spec.numeric]
    fields += [(name, object) for name in [*spec.categorical, *spec.text]]
    if spec.id_column:
        fields.append((spec.id_column, object))
    return np.dtype(fields)


def input_fields(spec: DatasetSpec) -> list[str]:
    """The fields a record may carry: the features and the id."""
    return [*spec.features, *filter(None, [spec.id_column])]


def read_columns(columns: Mapping[str, Sequence[Any]], size: int, spec: DatasetSpec) -> Checked:
    """Read `size` records given as raw values per field (absent fields are missing); see the module docstring.

    Besides lists, a numeric feature may come as a float array and a category as `Distinct` (both from Arrow).
    """
    rows = np.zeros(size, dtype=rows_dtype(spec))  # np.empty initialises object fields 15x slower
    issues: list[Issue] = []
    for name in spec.numeric:
        rows[name], problems = _read_numbers(columns.get(name), size, spec, name)
        issues += problems
    for name in spec.categorical:
        rows[name], problems = _read_categories(columns.get(name), size, tuple(spec.allowed_values.get(name, ())), name)
        issues += problems
    for name in spec.text:
        rows[name], problems = _read_texts(columns.get(name), size, name, missing="")
        issues += problems
    if spec.id_column:
        rows[spec.id_column], problems = _read_texts(columns.get(spec.id_column), size, spec.id_column, missing=None)
        issues += problems
    issues += _missing_required(rows, spec, issues)
    return Checked(rows, sorted(issues, key=lambda issue: issue.row))


def read_frame(frame: pd.DataFrame, spec: DatasetSpec) -> Checked:
    """`read_columns` over a frame's columns (columns the spec does not name are ignored)."""
    columns = {name: frame[name].tolist() for name in input_fields(spec) if name in frame}
    return read_columns(columns, len(frame), spec)


def _read_numbers(values: Sequence[Any] | None, size: int, spec: DatasetSpec, name: str) -> tuple[np.ndarray, list]:
    if values is None:
        return np.full(size, np.nan), []
    issues: list[Issue] = []
    numbers = _plain_numbers(values)
    if numbers is None:
        numbers = _parse_numbers(values, name, issues)
    bounds = spec.ranges.get(name)
    if bounds is not None:
        with np.errstate(invalid="ignore"):
            low = numbers < bounds.min if bounds.min is not None else np.zeros(size, bool)
            high = numbers > bounds.max if bounds.max is not None else np.zeros(size, bool)
        issues += [Issue(int(i), name, str(bounds.violation(numbers[i]))) for i in np.flatnonzero(low | high)]
    return numbers, issues


def _plain_numbers(values: Sequence[Any]) -> np.ndarray | None:
    """Numbers and nulls (JSON's, or a float array) as floats without parsing each one (booleans excluded); None
    when some value needs `read_number`'s verdict: text, or a number too large to be finite (JSON's 1e400)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        numbers = values.astype(np.float64, copy=False)
    elif set(map(type, values)) <= _PLAIN_NUMBERS:
        try:
            numbers = np.array(values, dtype=np.float64)
        except OverflowError:
            return None
    else:
        return None
    return None if np.isinf(numbers).any() else numbers


def _parse_numbers(values: Sequence[Any], name: str, issues: list[Issue]) -> np.ndarray:
    numbers = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        try:
            number = read_number(value)
        except (ValueError, OverflowError) as exc:
            issues.append(Issue(i, name, _number_problem(value, exc)))
            continue
        if number is not None:
            numbers[i] = number
    return numbers


def _number_problem(value: Any, exc: Exception) -> str:
    if isinstance(exc, OverflowError):
        return "is too large to be a number"
    if isinstance(value, list | dict):
        return f"expected a number, got {json_type(value)}"
    return str(exc)


def _read_categories(
    values: Sequence[Any] | None, size: int, allowed: tuple[str, ...], name: str
) -> tuple[np.ndarray, list]:
    out = np.full(size, None, dtype=object)
    if values is None:
        return out, []
    if isinstance(values, Distinct) and set(map(type, values.values)) <= _TEXTS:
        categories = np.array([read_category(value, allowed) for value in values.values], dtype=object)
        return categories[values.codes], []
    if set(map(type, values)) <= _TEXTS:  # the usual request: each distinct value read once, no per-record checks
        categories = {value: read_category(value, allowed) for value in set(values)}
        out[:] = list(map(categories.__getitem__, values))
        return out, []
    issues: list[Issue] = []
    read: dict[tuple[type, Any], str | None] = {}  # (type, raw value) -> category: repeated values are read once
    for i, value in enumerate(values):
        if isinstance(value, list | dict):  # booleans and numbers are read as text: `true` may be a category
            issues.append(Issue(i, name, f"expected text, got {json_type(value)}"))
            continue
        key = (type(value), value)
        if key not in read:
            read[key] = read_category(value, allowed)
        out[i] = read[key]
    return out, issues


def _read_texts(values: Sequence[Any] | None, size: int, name: str, *, missing: str | None) -> tuple[np.ndarray, list]:
    out = np.full(size, missing, dtype=object)
    if values is None:
        return out, []
    if (texts := _plain_texts(values, check_ids=missing is None)) is not None:
        out[:] = texts
        return out, []
    issues: list[Issue] = []
    for i, value in enumerate(values):
        if isinstance(value, list | dict | bool):
            issues.append(Issue(i, name, f"expected text or a number, got {json_type(value)}"))
        elif not is_missing(value):
            text = str(value).strip()
            if missing is None and (problem := id_problem(text)):
                issues.append(Issue(i, name, problem))
            out[i] = text
    return out, issues


def _plain_texts(values: Sequence[Any], *, check_ids: bool) -> list[str] | None:
    """Stripped strings when every value is a string that is neither missing nor (`check_ids`) an id problem;
    None when some value needs `_read_texts`' verdict, one record at a time."""
    if set(map(type, values)) != {str}:
        return None
    texts = list(map(str.strip, values))
    if not MISSING_TOKENS.isdisjoint(map(str.lower, texts)):
        return None
    if check_ids and (max(map(len, texts)) > ID_MAX_LENGTH or "\x00" in "".join(texts)):
        return None
    return texts


def id_problem(text: str) -> str | None:
    """Why `text` cannot be stored as a record id (too long, or a NUL character PostgreSQL refuses), or None."""
    if len(text) > ID_MAX_LENGTH:
        return f"is {len(text)} characters long; at most {ID_MAX_LENGTH} are stored"
    if "\x00" in text:
        return "contains a NUL character"
    return None


def json_type(value: Any) -> str:
    """How a JSON client would name the type of `value`."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a JSON object"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    return "text" if isinstance(value, str) else type(value).__name__


def missing_mask(rows: np.ndarray, name: str) -> np.ndarray:
    """True where feature `name` is missing in typed `rows` (NaN number, no category, empty text)."""
    column = rows[name]
    if column.dtype.kind == "f":
        return np.isnan(column)
    return np.equal(column, None) | np.equal(column, "")


def _missing_required(rows: np.ndarray, spec: DatasetSpec, found: list[Issue]) -> list[Issue]:
    """Required features that are missing; a value that failed to read already has its own issue."""
    failed = {(issue.row, issue.field) for issue in found}
    return [
        Issue(int(i), name, REQUIRED)
        for name in spec.required
        for i in np.flatnonzero(missing_mask(rows, name))
        if (i, name) not in failed
    ]


def field_counts(rows: np.ndarray, spec: DatasetSpec) -> tuple[dict[str, int], dict[str, int]]:
    """Per feature: how many rows miss it, and (categories) how many carry a value outside the allowed ones.

    A text or category column is counted once (its distinct values), not compared element-wise: this runs on
    every scored request.
    """
    missing, unseen = {}, {}
    for name in spec.features:
        column = rows[name]
        if column.dtype.kind == "f":
            missing[name] = int(np.isnan(column).sum())
            continue
        counts = Counter(column.tolist())
        missing[name] = counts[None] + counts[""]
        if allowed := frozenset(spec.allowed_values.get(name, ())):
            unseen[name] = sum(n for value, n in counts.items() if value not in (None, "") and value not in allowed)
    return {k: v for k, v in missing.items() if v}, {k: v for k, v in unseen.items() if v}
