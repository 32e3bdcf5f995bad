"""Coercion of raw values (strings from a CRM export or JSON from a request) into typed, normalised columns.

Ingestion and serving share this module so that `"$1,200"`, `"1.2k"`, `" SaaS "` and `"N/A"` mean the same thing
everywhere. Every check reports *which* row and field failed and why; nothing is dropped without a reason.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from scoreloop.core.spec import DatasetSpec, Range

MISSING_TOKENS = frozenset({"", "na", "n/a", "#n/a", "-", "--", "null", "none", "nan", "?", "missing"})
POSITIVE_TOKENS = frozenset({"1", "1.0", "true", "t", "yes", "y"})
NEGATIVE_TOKENS = frozenset({"0", "0.0", "false", "f", "no", "n"})
MISSING_CATEGORY = "__missing__"

_NUMBER = re.compile(r"^([+-]?)\$?\s*((?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:e[+-]?\d+)?)\s*([kmb%]?)$", re.IGNORECASE)
_SCALE = {"": 1.0, "%": 1.0, "k": 1e3, "m": 1e6, "b": 1e9}
_CATEGORY_JUNK = re.compile(r"[\s\-/]+")


@dataclass(frozen=True)
class Issue:
    """One reason a record cannot be used: its position in the input, the field and what is wrong."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class Coerced:
    """Typed rows that passed, issues for rows that did not, and counts worth monitoring."""

    rows: pd.DataFrame
    issues: list[Issue]
    unseen_categories: dict[str, int] = field(default_factory=dict)
    mapped_categories: dict[str, int] = field(default_factory=dict)

    def reasons(self) -> pd.Series:
        """One '; '-joined reason per rejected input position."""
        by_row: dict[int, list[str]] = {}
        for issue in self.issues:
            by_row.setdefault(issue.row, []).append(str(issue))
        return pd.Series({row: "; ".join(msgs) for row, msgs in sorted(by_row.items())}, dtype=object)


def is_missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def parse_number(value: object) -> float:
    """Read a number written the way spreadsheets and CRMs write them: '$1,200', '1.2k', '3M', '12%'."""
    if isinstance(value, bool):
        raise ValueError(f"cannot read {value!r} as a number")
    if isinstance(value, int | float | np.integer | np.floating):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        text = str(value).strip()
        match = _NUMBER.match(text)
        if not match:
            raise ValueError(f"cannot read {text[:40]!r} as a number")
        sign, digits, suffix = match.groups()
        number = round(float(digits.replace(",", "")) * _SCALE[suffix.lower()], 6)  # 1.234 * 1e6 is not exact
        number = -number if sign == "-" else number
    if not math.isfinite(number):
        raise ValueError(f"{str(value)[:40]!r} is not a finite number")
    return number


def normalise_category(value: object) -> str:
    """Case- and spacing-insensitive form: ' Paid Search ' and 'paid-search' both become 'paid_search'."""
    return _CATEGORY_JUNK.sub("_", str(value).strip().lower()).strip("_")


def read_number(value: object, bounds: Range | None = None) -> float | None:
    """One value as a request carries it: missing -> None; unreadable or out of `bounds` -> ValueError."""
    if is_missing(value):
        return None
    number = parse_number(value)
    problem = bounds.violation(number) if bounds else None
    if problem:
        raise ValueError(problem)
    return number


def read_category(value: object, allowed: tuple[str, ...]) -> str | None:
    """One category: missing -> None; a close misspelling -> the allowed value; anything else kept as unseen."""
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


def _missing_mask(raw: pd.Series) -> pd.Series:
    lowered = raw.astype("string").str.strip().str.lower()
    return raw.isna() | lowered.isin(MISSING_TOKENS).fillna(True)


def _coerce_numeric(raw: pd.Series, name: str, spec: DatasetSpec) -> tuple[pd.Series, list[Issue]]:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.astype(float)
    else:
        missing = _missing_mask(raw)
        # As text, so booleans fail here too; what to_numeric reads as infinite gets parse_number's verdict.
        values = pd.to_numeric(raw.where(~missing).astype("string"), errors="coerce").astype(float)
        issues = []
        for pos in np.flatnonzero(~np.isfinite(values.to_numpy()) & ~missing.to_numpy()):
            try:
                values.iat[pos] = parse_number(raw.iat[pos])
            except ValueError as exc:
                issues.append(Issue(int(pos), name, str(exc)))
        if issues:
            return values, issues + _range_issues(values, name, spec)
    return values, _range_issues(values, name, spec)


def _range_issues(values: pd.Series, name: str, spec: DatasetSpec) -> list[Issue]:
    bounds = spec.ranges.get(name)
    if bounds is None:
        return []
    low = values < bounds.min if bounds.min is not None else False
    high = values > bounds.max if bounds.max is not None else False
    outside = np.flatnonzero(np.asarray(low | high))
    return [Issue(int(pos), name, str(bounds.violation(values.iat[pos]))) for pos in outside]


def _coerce_categorical(
    raw: pd.Series, name: str, spec: DatasetSpec, strict: bool, result: Coerced
) -> tuple[pd.Series, list[Issue]]:
    missing = _missing_mask(raw)
    values = raw.where(~missing).map(normalise_category, na_action="ignore").astype(object)
    values[missing] = None
    allowed = tuple(spec.allowed_values.get(name, ()))
    if not allowed:
        return values, []
    issues: list[Issue] = []
    known = set(allowed)
    for value in values.dropna().unique():
        if value in known:
            continue
        positions = np.flatnonzero((values == value).to_numpy())
        closest = _closest(value, allowed)
        if closest is not None:
            values.iloc[positions] = closest
            result.mapped_categories[name] = result.mapped_categories.get(name, 0) + len(positions)
        elif strict:
            issues += [Issue(int(p), name, f"{value!r} is not one of {list(allowed)}") for p in positions]
        else:
            result.unseen_categories[name] = result.unseen_categories.get(name, 0) + len(positions)
    return values, issues


def _coerce_time(raw: pd.Series, name: str) -> tuple[pd.Series, list[Issue]]:
    missing = _missing_mask(raw)
    text = raw.where(~missing).astype("string").str.strip()
    values = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    retry = values.isna() & ~missing
    if retry.any():
        values[retry] = pd.to_datetime(text[retry], format="mixed", errors="coerce", utc=True)
    values = values.dt.tz_localize(None).astype("datetime64[ns]")
    issues = [Issue(int(p), name, "is missing") for p in np.flatnonzero(missing.to_numpy())]
    bad = np.flatnonzero((values.isna() & ~missing).to_numpy())
    issues += [Issue(int(p), name, f"cannot read {raw.iat[p]!r} as a date") for p in bad]
    return values, issues


def _coerce_target(raw: pd.Series, spec: DatasetSpec) -> tuple[pd.Series, list[Issue]]:
    positive = normalise_category(spec.positive_label)
    positives = POSITIVE_TOKENS if positive in POSITIVE_TOKENS else frozenset({positive})
    normalised = raw.map(lambda v: None if is_missing(v) else normalise_category(v))
    is_positive = normalised.isin(positives)
    negatives = NEGATIVE_TOKENS if positive in POSITIVE_TOKENS else None
    known = is_positive | (normalised.isin(negatives) if negatives else normalised.notna())
    issues = []
    for pos in np.flatnonzero(~known.to_numpy()):
        value = raw.iat[pos]
        message = "is missing" if is_missing(value) else f"{value!r} is neither positive ({positive!r}) nor negative"
        issues.append(Issue(int(pos), spec.target, message))
    return is_positive.astype("int8"), issues


def _coerce_id(raw: pd.Series, name: str) -> tuple[pd.Series, list[Issue]]:
    missing = _missing_mask(raw)
    values = raw.astype("string").str.strip().astype(object)
    issues = [Issue(int(p), name, "is missing") for p in np.flatnonzero(missing.to_numpy())]
    duplicated = values.duplicated(keep="first") & ~missing
    issues += [
        Issue(int(p), name, f"duplicate id {values.iat[p]!r} (the first row with it was kept)")
        for p in np.flatnonzero(duplicated.to_numpy())
    ]
    return values, issues


def missing_columns(columns: list[str] | pd.Index, spec: DatasetSpec, *, with_target: bool) -> list[str]:
    """Spec columns absent from the input (features always; target, id and time for training data)."""
    needed = spec.required_columns if with_target else spec.features
    return [c for c in needed if c not in set(columns)]


def coerce_frame(raw: pd.DataFrame, spec: DatasetSpec, *, with_target: bool, strict: bool) -> Coerced:
    """Type and normalise `raw` against `spec`.

    `with_target` reads training data (id, time and target required); otherwise feature columns only, and absent
    optional features are scored as missing. `strict` rejects categories outside the allowed values; when False
    they are kept and counted as unseen. Raises ValueError when required columns are absent.
    """
    absent = missing_columns(raw.columns, spec, with_target=with_target)
    if absent and with_target:
        raise ValueError(f"input lacks spec columns {absent}; present: {list(raw.columns)}")
    raw = raw.reset_index(drop=True).reindex(columns=[*raw.columns, *absent])
    result = Coerced(rows=pd.DataFrame(index=raw.index), issues=[])
    columns: dict[str, pd.Series] = {}
    if with_target:
        if spec.id_column:
            columns[spec.id_column], issues = _coerce_id(raw[spec.id_column], spec.id_column)
            result.issues += issues
        if spec.time_column:
            columns[spec.time_column], issues = _coerce_time(raw[spec.time_column], spec.time_column)
            result.issues += issues
    for name in spec.numeric:
        columns[name], issues = _coerce_numeric(raw[name], name, spec)
        result.issues += issues
    for name in spec.categorical:
        columns[name], issues = _coerce_categorical(raw[name], name, spec, strict, result)
        result.issues += issues
    for name in spec.text:
        columns[name] = raw[name].where(~_missing_mask(raw[name]), "").astype(str).str.strip()
    if with_target:
        columns[spec.target], issues = _coerce_target(raw[spec.target], spec)
        result.issues += issues
    rejected = sorted({issue.row for issue in result.issues})
    result.rows = pd.DataFrame(columns, index=raw.index).drop(index=rejected)
    return result
