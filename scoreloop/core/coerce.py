"""The one engine that reads raw values into typed columns, for every path: ingest, training, `/score` (records,
columns, Arrow), `/explain`, batch scoring and monitoring.

Raw values are CSV strings, JSON values, float arrays or `Distinct` (dictionary-encoded) columns; the result is a
structured array, one typed field per column, and an `Issue` per refused value naming the row and the field. Paths
differ only in what they do with a refused row (quarantine it, or answer a 400), never in what they accept or the
value they read: a model trained on ingested rows is served through the same reading. Numbers follow the spec's
`format` (decimal mark and thousands separator), never a per-value guess. The fast paths (a float array, each
distinct value read once) skip only work whose verdict cannot differ.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from scoreloop.core.spec import DatasetSpec, NumberFormat

MISSING_TOKENS = frozenset({"", "na", "n/a", "#n/a", "-", "--", "null", "none", "nan", "?", "missing"})
POSITIVE_TOKENS = frozenset({"1", "1.0", "true", "t", "yes", "y"})
NEGATIVE_TOKENS = frozenset({"0", "0.0", "false", "f", "no", "n"})
MISSING_CATEGORY = "__missing__"
ID_MAX_LENGTH = 200  # the scoring log's record_id column
CATEGORY_MAX_LENGTH = 200  # longer is no category a model can learn from, and a request's way to bloat the log
REQUIRED = "is missing"
GROUP_SPACES = " \u00a0\u202f'"  # never a decimal mark, so always read as a thousands separator

_CURRENCY = r"(?:[€£$]|eur|usd|gbp)"
_SCALE = {"": 1, "%": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
_NUMERALS = re.compile(r"^[+-]?[\d.,'\s]*\d[\d.,'\s]*$")
_CATEGORY_JUNK = re.compile(r"[\s\-/]+")
_PLAIN_NUMBERS = frozenset({int, float, type(None)})
_TEXTS = frozenset({str, type(None)})


@dataclass(frozen=True)
class Issue:
    """One reason a record cannot be used: its position in the input, the field and what is wrong."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Distinct:
    """A column as its distinct values and, per record, the position of its value among them: how an Arrow
    dictionary encoding hands over a text column, so that each distinct value is read once."""

    values: list[Any]
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: int) -> Any:
        return self.values[self.codes[index]]


@dataclass(frozen=True)
class Checked:
    """Typed rows (a structured array in `rows_dtype`), the issues of the records that failed, and how many
    category values were mapped onto an allowed value, per field."""

    rows: np.ndarray
    issues: list[Issue]
    mapped: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> np.ndarray:
        """Positions of the records with at least one issue."""
        return np.unique(np.fromiter((issue.row for issue in self.issues), dtype=np.int64))

    @property
    def accepted(self) -> np.ndarray:
        """Positions of the records without issues."""
        return np.setdiff1d(np.arange(len(self.rows)), self.rejected)

    def reasons(self) -> dict[int, str]:
        """One '; '-joined reason per rejected position, in input order."""
        by_row: dict[int, list[str]] = {}
        for issue in self.issues:
            by_row.setdefault(issue.row, []).append(str(issue))
        return {row: "; ".join(by_row[row]) for row in sorted(by_row)}

    def frame(self) -> pd.DataFrame:
        """The accepted rows as a frame, a column per field, indexed by their input positions."""
        accepted = self.accepted
        rows = self.rows[accepted]
        return pd.DataFrame({name: rows[name] for name in rows.dtype.names}, index=accepted)


# --------------------------------------------------------------------------------------------------- one value


def is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def parse_number(value: object, fmt: NumberFormat = NumberFormat()) -> float:
    """Read a number written the way spreadsheets and CRMs write them, in `fmt`: '$1,200', '1.234,56 €', 'EUR 5',
    '1.2k', '3M', '12%', '5.e3'. A value that breaks `fmt` ('1,2,3') is refused, naming the format."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"cannot read {value!r} as a number")
    if isinstance(value, int | float | np.integer | np.floating):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        number = _parse_text(str(value).strip(), fmt)
    if not math.isfinite(number):
        raise ValueError(f"{str(value)[:40]!r} is not a finite number")
    return number


@lru_cache(maxsize=16)
def _number_grammar(decimal: str, thousands: str) -> tuple[re.Pattern, dict[int, str | None]]:
    """The pattern of a number in this format, and the table that turns its digits into Python's spelling."""
    groups = "".join(sorted({thousands, *GROUP_SPACES}))
    mark, group = re.escape(decimal), f"[{re.escape(groups)}]"
    digits = rf"(?:\d{{1,3}}(?:{group}\d{{3}})+|\d+)(?:{mark}\d*)?|{mark}\d+"
    pattern = re.compile(
        rf"^(?P<lead>[+-]?\s*(?:{_CURRENCY}\s*)?[+-]?)(?P<digits>{digits})(?P<exponent>e[+-]?\d+)?"
        rf"\s*(?P<scale>[kmb%]?)\s*(?:{_CURRENCY})?$",
        re.IGNORECASE,
    )
    return pattern, {**{ord(c): None for c in groups}, ord(decimal): "."}


def _parse_text(text: str, fmt: NumberFormat) -> float:
    pattern, table = _number_grammar(fmt.decimal, fmt.thousands)
    match = pattern.match(text)
    signs = match["lead"].count("-") + match["lead"].count("+") if match else 0
    if not match or signs > 1:
        if _NUMERALS.match(text):
            raise ValueError(
                f"cannot read {text[:40]!r} as a number with decimal {fmt.decimal!r} and thousands "
                f"{fmt.thousands!r} (the spec's format)"
            )
        raise ValueError(f"cannot read {text[:40]!r} as a number")
    plain = match["digits"].translate(table) + (match["exponent"] or "")
    scale = _SCALE[match["scale"].lower()]
    number = float(plain) if scale == 1 else float(Decimal(plain) * scale)  # exact: 1.234 * 1e6 in floats is not
    return -number if "-" in match["lead"] else number


def read_number(value: object, fmt: NumberFormat = NumberFormat()) -> float | None:
    """One value: missing -> None; unreadable -> ValueError."""
    return None if is_missing(value) else parse_number(value, fmt)


def normalise_category(value: object) -> str:
    """Case- and spacing-insensitive form: ' Paid Search ' and 'paid-search' both become 'paid_search'."""
    return _CATEGORY_JUNK.sub("_", str(value).strip().lower()).strip("_")


def read_category(value: object, allowed: tuple[str, ...]) -> str | None:
    """One category: missing -> None; a close misspelling -> the allowed value; anything else kept as it reads."""
    if is_missing(value):
        return None
    normalised = normalise_category(value)
    if not allowed or normalised in allowed:
        return normalised
    return _closest(normalised, allowed) or normalised


@lru_cache(maxsize=4096)
def _closest(value: str, allowed: tuple[str, ...]) -> str | None:
    matches = difflib.get_close_matches(value, allowed, n=1, cutoff=0.8)
    return matches[0] if matches else None


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


# --------------------------------------------------------------------------------------------------- columns


def rows_dtype(spec: DatasetSpec, *, with_target: bool = False) -> np.dtype:
    """One field per feature in model order (float for numbers, object for text and categories), then the id;
    `with_target` adds the event time and the target (0/1)."""
    fields = [(name, np.float64) for name in spec.numeric]
    fields += [(name, object) for name in [*spec.categorical, *spec.text]]
    if spec.id_column:
        fields.append((spec.id_column, object))
    if with_target:
        fields += [(spec.time_column, "datetime64[ns]")] if spec.time_column else []
        fields.append((spec.target, np.int8))
    return np.dtype(fields)


def input_fields(spec: DatasetSpec, *, with_target: bool = False) -> list[str]:
    """The fields a record may carry: the features and the id (`with_target`: the time and the target too)."""
    keys = [spec.id_column, *([spec.time_column, spec.target] if with_target else [])]
    return [*spec.features, *filter(None, keys)]


def missing_columns(columns: Sequence[str] | pd.Index, spec: DatasetSpec, *, with_target: bool) -> list[str]:
    """Spec columns absent from the input (features always; target, id and time for training data)."""
    needed = spec.required_columns if with_target else spec.features
    return [c for c in needed if c not in set(columns)]


def read_columns(
    columns: Mapping[str, Sequence[Any]], size: int, spec: DatasetSpec, *, with_target: bool = False
) -> Checked:
    """Read `size` records given as raw values per field (an absent field is missing).

    A numeric feature may come as a float array and a category as `Distinct`. Training data (`with_target`) also
    reads the id (required and unique), the event time and the target. Issues come in record order, and within a
    record in field order.
    """
    rows = np.zeros(size, dtype=rows_dtype(spec, with_target=with_target))  # np.empty fills objects 15x slower
    issues: list[Issue] = []
    mapped: dict[str, int] = {}
    if spec.id_column:
        rows[spec.id_column], found = _read_ids(columns.get(spec.id_column), size, spec.id_column, with_target)
        issues += found
    if with_target and spec.time_column:
        rows[spec.time_column], found = read_times(columns.get(spec.time_column, [None] * size), spec.time_column)
        issues += found
    for name in spec.numeric:
        rows[name], found = _read_numbers(columns.get(name), size, spec, name)
        issues += found
    for name in spec.categorical:
        rows[name], found, mapped[name] = _read_categories(columns.get(name), size, spec, name)
        issues += found
    for name in spec.text:
        rows[name], found = _read_texts(columns.get(name), size, name, missing="")
        issues += found
    if with_target:
        rows[spec.target], found = _read_target(columns.get(spec.target, [None] * size), spec)
        issues += found
    issues += _missing_required(rows, spec, issues)
    return Checked(rows, sorted(issues, key=lambda issue: issue.row), {k: v for k, v in mapped.items() if v})


def read_frame(frame: pd.DataFrame, spec: DatasetSpec, *, with_target: bool = False) -> Checked:
    """`read_columns` over a frame's columns (others are ignored); training data must carry every spec column."""
    if with_target and (absent := missing_columns(frame.columns, spec, with_target=True)):
        raise ValueError(f"input lacks spec columns {absent}; present: {list(frame.columns)}")
    numeric = frozenset(spec.numeric)
    fields = input_fields(spec, with_target=with_target)
    columns = {name: _values(frame[name], name in numeric) for name in fields if name in frame}
    return read_columns(columns, len(frame), spec, with_target=with_target)


def _values(column: pd.Series, numeric: bool) -> Sequence[Any]:
    """A frame column as the engine reads it: numbers typed as numbers become one float array (missing: NaN)."""
    if numeric and column.dtype.kind in "iuf":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return column if column.dtype.kind == "M" else column.tolist()


def _read_numbers(values: Sequence[Any] | None, size: int, spec: DatasetSpec, name: str) -> tuple[np.ndarray, list]:
    if values is None:
        return np.full(size, np.nan), []
    issues: list[Issue] = []
    numbers = _plain_numbers(values)
    if numbers is None:
        numbers = _parse_numbers(values, spec.format, name, issues)
    bounds = spec.ranges.get(name)
    if bounds is not None:
        with np.errstate(invalid="ignore"):
            low = numbers < bounds.min if bounds.min is not None else np.zeros(size, bool)
            high = numbers > bounds.max if bounds.max is not None else np.zeros(size, bool)
        issues += [Issue(int(i), name, str(bounds.violation(numbers[i]))) for i in np.flatnonzero(low | high)]
    return numbers, issues


def _plain_numbers(values: Sequence[Any]) -> np.ndarray | None:
    """Numbers and nulls (JSON's, or a float array) as floats without parsing each one (booleans excluded); None
    when some value needs `parse_number`'s verdict: text, or a number too large to be finite (JSON's 1e400)."""
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


def _parse_numbers(values: Sequence[Any], fmt: NumberFormat, name: str, issues: list[Issue]) -> np.ndarray:
    numbers = np.full(len(values), np.nan)
    texts: dict[str, tuple[float, str | None]] = {}  # an export repeats its values: each text is parsed once
    for i, value in enumerate(values):
        if isinstance(value, str):
            if value not in texts:
                texts[value] = _number_or_problem(value, fmt)
            number, problem = texts[value]
        else:
            number, problem = _number_or_problem(value, fmt)
        if problem:
            issues.append(Issue(i, name, problem))
        numbers[i] = number
    return numbers


def _number_or_problem(value: Any, fmt: NumberFormat) -> tuple[float, str | None]:
    if isinstance(value, list | dict):
        return math.nan, f"expected a number, got {json_type(value)}"
    try:
        number = read_number(value, fmt)
    except ValueError as exc:
        return math.nan, str(exc)
    return (math.nan if number is None else number), None


def _read_categories(
    values: Sequence[Any] | None, size: int, spec: DatasetSpec, name: str
) -> tuple[np.ndarray, list[Issue], int]:
    """Categories and the number of values mapped onto an allowed one. Each distinct value is read once; a value
    outside `allowed_values` is kept (and counted as unseen by `field_counts`) unless the spec closes the field."""
    if values is None:
        return np.full(size, None, dtype=object), [], 0
    distinct, codes, issues = _distinct(values, name)
    allowed = tuple(spec.allowed_values.get(name, ()))
    too_long = [i for i, value in enumerate(distinct) if isinstance(value, str) and len(value) > CATEGORY_MAX_LENGTH]
    reads = [(None, False) if i in too_long else _read_distinct(value, allowed) for i, value in enumerate(distinct)]
    categories = [read for read, _ in reads]
    if too_long:  # refused before it is read: matching a megabyte against the allowed values would take seconds
        message = f"is longer than {CATEGORY_MAX_LENGTH} characters, the most a category may have"
        issues = sorted(issues + [Issue(i, name, message) for i in _positions(values, distinct, codes, too_long)],
                        key=lambda issue: issue.row)  # fmt: skip
    if codes is None:
        out = np.empty(size, dtype=object)
        if all(read == raw for raw, read in zip(distinct, categories, strict=True)):  # clean values read as sent
            out[:] = values
        else:
            out[:] = list(map(dict(zip(distinct, categories, strict=True)).__getitem__, values))
    else:
        out = np.array([*categories, None], dtype=object)[codes]  # code -1: a refused value
    was_mapped = [i for i, (_, mapped) in enumerate(reads) if mapped]
    mapped = len(_positions(values, distinct, codes, was_mapped))
    if name in spec.closed:
        outside = [i for i, read in enumerate(categories) if read is not None and read not in allowed]
        refused = _positions(values, distinct, codes, outside)
        issues = sorted(issues + [Issue(i, name, f"{out[i]!r} is not one of {list(allowed)}") for i in refused],
                        key=lambda issue: issue.row)  # fmt: skip
    return out, issues, mapped


@lru_cache(maxsize=65_536, typed=True)
def _read_distinct(value: Any, allowed: tuple[str, ...]) -> tuple[str | None, bool]:
    """`read_category` of one distinct value, and whether it was mapped onto another allowed value. Requests repeat
    the few values of a category, so each is read once per process (typed: `1` and `true` read differently)."""
    read = read_category(value, allowed)
    return read, read is not None and read != normalise_category(value)


def _distinct(values: Sequence[Any], name: str) -> tuple[list[Any], np.ndarray | None, list[Issue]]:
    """The distinct readable values and each record's position among them (-1 where the value is refused), or
    None for plain text, which is mapped by value (cheaper than computing positions for every request)."""
    if isinstance(values, Distinct) and set(map(type, values.values)) <= _TEXTS:
        return values.values, values.codes, []
    try:
        distinct = set(values)  # the types of the distinct values are the types of all values
    except TypeError:  # an unhashable value (a list, an object), named record by record below
        distinct = set()
    if distinct and set(map(type, distinct)) <= _TEXTS:  # the usual request: no per-record checks
        return list(distinct), None, []
    issues: list[Issue] = []
    index, codes = {}, np.full(len(values), -1, dtype=np.intp)
    for i, value in enumerate(values):
        if isinstance(value, list | dict):  # booleans and numbers are read as text: `true` may be a category
            issues.append(Issue(i, name, f"expected text, got {json_type(value)}"))
            continue
        codes[i] = index.setdefault((type(value), value), len(index))  # 1 and True are different values
    return [value for _, value in index], codes, issues


def _positions(values: Sequence[Any], distinct: list[Any], codes: np.ndarray | None, chosen: list[int]) -> list[int]:
    """Positions of the records whose value is one of the `chosen` distinct values."""
    if not chosen:
        return []
    if codes is not None:
        return np.flatnonzero(np.isin(codes, chosen)).tolist()
    wanted = {distinct[i] for i in chosen}
    return [i for i, value in enumerate(values) if value in wanted]


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


def _read_ids(values: Sequence[Any] | None, size: int, name: str, required: bool) -> tuple[np.ndarray, list]:
    """Ids as text; training data (`required`) needs one per record, each used once (the first record keeps it)."""
    ids, issues = _read_texts(values, size, name, missing=None)
    if not required:
        return ids, issues
    failed = {issue.row for issue in issues}
    present = pd.Series(ids, dtype=object)
    absent = present.isna().to_numpy()
    issues += [Issue(int(i), name, REQUIRED) for i in np.flatnonzero(absent) if i not in failed]
    repeated = np.flatnonzero(present.duplicated(keep="first").to_numpy() & ~absent)
    issues += [Issue(int(i), name, f"duplicate id {ids[i]!r} (the first row with it was kept)") for i in repeated]
    return ids, sorted(issues, key=lambda issue: issue.row)


def read_times(values: Sequence[Any], name: str) -> tuple[np.ndarray, list[Issue]]:
    """Event times as naive UTC: typed times as they are, text in ISO 8601 or any format pandas reads."""
    raw = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if raw.dtype.kind == "M":
        times, missing = pd.to_datetime(raw, utc=True), raw.isna()
    else:
        missing = _missing_mask(raw)
        text = raw.where(~missing).astype("string").str.strip()
        times = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        retry = times.isna() & ~missing
        if retry.any():
            times[retry] = pd.to_datetime(text[retry], format="mixed", errors="coerce", utc=True)
    issues = [Issue(int(i), name, REQUIRED) for i in np.flatnonzero(missing.to_numpy())]
    bad = np.flatnonzero((times.isna() & ~missing).to_numpy())
    issues += [Issue(int(i), name, f"cannot read {raw.iat[i]!r} as a date") for i in bad]
    return times.dt.tz_localize(None).to_numpy("datetime64[ns]"), sorted(issues, key=lambda issue: issue.row)


def _missing_mask(raw: pd.Series) -> pd.Series:
    lowered = raw.astype("string").str.strip().str.lower()
    return raw.isna() | lowered.isin(MISSING_TOKENS).fillna(True)


def _read_target(values: Sequence[Any], spec: DatasetSpec) -> tuple[np.ndarray, list[Issue]]:
    """1 for the positive label, 0 for a negative one: yes/1/true vs no/0/false when the positive label is one
    of those, else the exact label vs any other present value."""
    positive = normalise_category(spec.positive_label)
    boolean = positive in POSITIVE_TOKENS
    read = [None if is_missing(value) else normalise_category(value) for value in values]
    is_positive = np.array([value in POSITIVE_TOKENS if boolean else value == positive for value in read], bool)
    issues = []
    for i, value in enumerate(read):
        if value is None:
            issues.append(Issue(i, spec.target, REQUIRED))
        elif boolean and not is_positive[i] and value not in NEGATIVE_TOKENS:
            issues.append(Issue(i, spec.target, f"{values[i]!r} is neither positive ({positive!r}) nor negative"))
    return is_positive.astype(np.int8), issues


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
    """Per feature of typed `rows`: how many miss it, and (categories) how many carry a value outside the allowed
    ones (unseen: kept and scored, the model never saw it).

    A text or category column is counted once per distinct value, not compared element-wise: this runs on every
    scored request.
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
