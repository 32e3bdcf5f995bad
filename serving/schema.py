"""Request and response models generated from the dataset spec, so the API contract is the spec.

A request's records are read a column at a time by the engine ingestion uses (`scoreloop.core.coerce`: `"$1,200"`,
`"N/A"` and an unseen category mean the same in a request as in an export). `/score` and `/score/columns` bodies are
decoded by msgspec first (`serving.jsonbody`); one that it or the engine refuses is parsed here by pydantic as plain
JSON values and checked by `check_records`/`check_columns`: problems become one pydantic `ValidationError` whose
locations name the record index and the field, which BentoML answers with a 400. `record_model` documents one
record for `/docs` and `/metadata`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any

import numpy as np
from bentoml.exceptions import BentoMLException
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, from_json

from scoreloop.core.calibration import Method
from scoreloop.core.coerce import (
    NEGATIVE_TOKENS,
    POSITIVE_TOKENS,
    REQUIRED,
    Issue,
    id_problem,
    input_fields,
    json_type,
    normalise_category,
    read_columns,
)
from scoreloop.core.spec import DatasetSpec, NumberFormat, Range

Loc = tuple[int | str, ...]
EARLIEST_OUTCOME = datetime(2000, 1, 1, tzinfo=UTC)  # an outcome before it is a typo (year 1), not a lead
OUTCOME_LEEWAY = timedelta(days=1)  # how far in the future an outcome's time may be (clocks and time zones)


class TooManyRecords(BentoMLException):
    """A request larger than the configured maximum: 413, before any record is read."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def record_model(spec: DatasetSpec) -> type[BaseModel]:
    """One record as the API documents it: every feature optional unless the spec requires it."""
    fields: dict[str, Any] = {}
    for name in spec.numeric:
        fields[name] = (float | str | None, _field(spec, name))
    for name in [*spec.categorical, *spec.text]:
        fields[name] = (str | None, _field(spec, name))
    if spec.id_column:
        fields[spec.id_column] = (str | int | None, Field(None, description="Echoed back as `id`; logged."))
    return create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)


def _field(spec: DatasetSpec, name: str) -> Any:
    if name in spec.allowed_values:
        outside = "refused" if name in spec.closed else "scored as unseen"
        what = f"one of {spec.allowed_values[name]} (case-insensitive; close misspellings mapped, others {outside})"
    elif name in spec.text:
        what = "free text"
    elif (bounds := spec.ranges.get(name)) is not None:
        what = f"a number {_bounds_text(bounds)}; {_number_text(spec.format)}"
    else:
        what = f"a number; {_number_text(spec.format)}"
    if name in spec.required:
        return Field(description=f"Required: {what}.")
    return Field(None, description=f"{what[0].upper()}{what[1:]}; missing is scored.")


def _number_text(fmt: NumberFormat) -> str:
    return (
        f"text is read with decimal {fmt.decimal!r} and thousands {fmt.thousands!r}, with a currency, 'k'/'M' or "
        "'%', and 'N/A' as missing"
    )


def _bounds_text(bounds: Range) -> str:
    if bounds.max is None:
        return f">= {bounds.min:g}"
    if bounds.min is None:
        return f"<= {bounds.max:g}"
    return f"in [{bounds.min:g}, {bounds.max:g}]"


def records_type(spec: DatasetSpec, max_records: int) -> Any:
    """The `records` argument: a list of record objects (or one object), validated into typed rows.

    Declared as `Any` so that pydantic only parses the JSON (~0.5 ms for 1,000 records) and `check_records` checks
    the shape: `list[dict[str, Any]] | dict[str, Any]` makes pydantic rebuild every record, five times the cost.
    """
    schema = record_model(spec).model_json_schema()
    return Annotated[
        Any,
        AfterValidator(partial(check_records, spec=spec, max_records=max_records)),
        WithJsonSchema({"anyOf": [{"type": "array", "items": schema, "maxItems": max_records}, schema]}),
    ]


def columns_type(spec: DatasetSpec, max_records: int) -> Any:
    """The `columns` argument: one equally long list of values per field, validated into typed rows."""
    properties = {name: {"type": "array", **spec_of} for name, spec_of in _property_schemas(spec).items()}
    return Annotated[
        dict[str, list[Any]],
        AfterValidator(partial(check_columns, spec=spec, max_records=max_records)),
        WithJsonSchema({"type": "object", "properties": properties, "additionalProperties": False}),
    ]


def _property_schemas(spec: DatasetSpec) -> dict[str, dict]:
    """Each field's JSON schema as the items of a column."""
    properties = record_model(spec).model_json_schema()["properties"]
    return {name: {"items": _without(prop, "default", "title")} for name, prop in properties.items()}


def _without(schema: dict, *keys: str) -> dict:
    return {k: v for k, v in schema.items() if k not in keys}


def check_records(value: list[dict[str, Any]] | dict[str, Any], spec: DatasetSpec, max_records: int) -> np.ndarray:
    """Records -> typed rows; a 413 above `max_records`; a ValidationError naming every (index, field) at fault.

    Fields the spec does not declare are refused: a typo would otherwise be scored as a missing value.
    """
    records = [value] if isinstance(value, dict) else value
    if not isinstance(records, list):
        _raise_if_any([_value_error((), f"expected a list of records or one record, got {json_type(value)}", value)])
    check_size(len(records), max_records)
    _raise_if_any([_value_error((i,), f"expected a record object, got {json_type(record)}", record)
                   for i, record in enumerate(records) if not isinstance(record, dict)])  # fmt: skip
    known = frozenset(input_fields(spec))
    errors: list[InitErrorDetails] = []
    if not all(map(known.issuperset, records)):
        errors = [_extra((i, name), record[name]) for i, record in enumerate(records) for name in record.keys() - known]
    columns = {name: [record.get(name) for record in records] for name in known}
    checked = read_columns(columns, len(records), spec)
    errors += [_error(issue, (issue.row, issue.field), _raw(columns, issue)) for issue in checked.issues]
    _raise_if_any(sorted(errors, key=lambda error: error["loc"][0]))
    return checked.rows


def check_columns(value: dict[str, list[Any]], spec: DatasetSpec, max_records: int) -> np.ndarray:
    """Columns -> typed rows, as `check_records`; locations are (field, index)."""
    known = set(input_fields(spec))
    errors = [_extra((name,), values) for name, values in value.items() if name not in known]
    lengths = {name: len(values) for name, values in value.items() if name in known}
    size = max(lengths.values(), default=0)
    check_size(size, max_records)
    uneven = f"has {{}} values where the longest column has {size}"
    errors += [_value_error((name,), uneven.format(n), None) for name, n in lengths.items() if n != size]
    _raise_if_any(errors)
    checked = read_columns(value, size, spec)
    _raise_if_any([_error(issue, (issue.field, issue.row), _raw(value, issue)) for issue in checked.issues])
    return checked.rows


def _raw(columns: dict[str, list[Any]], issue: Issue) -> Any:
    return columns[issue.field][issue.row] if issue.field in columns else None


def check_size(size: int, max_records: int) -> None:
    if size > max_records:
        raise TooManyRecords(
            f"a request may carry at most {max_records} records, this one has {size}: split it, or score files "
            "with `scoreloop score`"
        )


def request_error(loc: Loc, message: str) -> ValidationError:
    """A ValidationError about the request as a whole or a part of it, answered with a 400 naming `loc`."""
    return ValidationError.from_exception_data("Records", [_value_error(loc, message, None)])


def _error(issue: Issue, loc: Loc, raw: Any) -> InitErrorDetails:
    if issue.message == REQUIRED:
        return InitErrorDetails(type="missing", loc=loc, input=raw)
    return _value_error(loc, issue.message, raw)


def _value_error(loc: Loc, message: str, raw: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "Value error, {reason}", {"reason": message}), loc=loc, input=raw
    )


def _extra(loc: Loc, raw: Any) -> InitErrorDetails:
    return InitErrorDetails(type="extra_forbidden", loc=loc, input=raw)


def _raise_if_any(errors: list[InitErrorDetails]) -> None:
    if errors:
        raise ValidationError.from_exception_data("Records", errors)


class Scored(BaseModel):
    """One scored record."""

    id: str | None = Field(None, description="The record's id, when the request carried one.")
    probability: float = Field(description="Probability of the positive label.")
    score: int = Field(ge=0, le=100, description="Percentile of the probability among the holdout records.")
    tier: str = Field(description="Tier from cut-offs fixed at training time (A best).")
    model: str = Field(description="Registered model name.")
    version: str = Field(description="Registered model version.")


class ScoredColumns(BaseModel):
    """Scored records as columns, in request order."""

    id: list[str | None]
    probability: list[float]
    score: list[int]
    tier: list[str]
    model: list[str]
    version: list[str]


class Reason(BaseModel):
    """One feature's part in a record's probability."""

    feature: str
    value: float | str | None = Field(description="The value as the model read it (after coercion).")
    log_odds: float = Field(
        description="The feature's signed contribution to the calibrated log-odds (CatBoost's SHAP value, scaled by "
        "the calibration: its slope for Platt, per record for isotonic)."
    )
    points: float = Field(
        description="Percentage points of probability this feature moved the record away from the baseline."
    )
    text: str = Field(description="The reason in words.")


class Explained(Scored):
    """A scored record with the reasons behind its probability."""

    baseline: float = Field(description="Probability before any feature is seen (the model's expected output).")
    reasons: list[Reason] = Field(description="The features that moved the probability most, largest first.")
    other_points: float = Field(description="Points of all the other features: baseline + all points = probability.")


def strict_input(
    model: type[BaseModel], fast: Callable[[bytes], dict[str, Any] | None] | None = None
) -> type[BaseModel]:
    """An API's input model that refuses top-level keys it does not name (as records refuse unknown fields) and the
    `NaN`/`Infinity` literals, which are not JSON (Python's parser reads them as numbers that would be scored).

    `fast` (`serving.jsonbody`) may read a body into the model's fields first; where it gives None, the body is
    validated here, which names every problem."""

    class Strict(model):  # type: ignore[valid-type, misc]
        model_config = ConfigDict(extra="forbid")

        @classmethod
        def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Any:
            if fast is not None and isinstance(json_data, bytes) and (fields := fast(json_data)) is not None:
                return cls.model_construct(**fields)
            try:
                parsed = from_json(json_data, allow_inf_nan=False)
            except ValueError as exc:
                error = InitErrorDetails(type="json_invalid", loc=(), input="", ctx={"error": str(exc)})
                raise ValidationError.from_exception_data(cls.__name__, [error]) from None
            return cls.model_validate(parsed, **kwargs)

    Strict.__name__ = Strict.__qualname__ = model.__name__
    return Strict


def _storable_id(value: str) -> str:
    """As `/score` reads an id: stripped, not blank, storable."""
    text = value.strip()
    if not text:
        raise ValueError("is blank")
    if problem := id_problem(text):
        raise ValueError(problem)
    return text


def _truth(value: Any) -> bool:
    """The yes/no spellings ingest reads in a target column (true/false, yes/no, 1/0, t/f, y/n), and nothing else."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, list | dict) and value is not None:
        read = normalise_category(value)
        if read in POSITIVE_TOKENS or read in NEGATIVE_TOKENS:
            return read in POSITIVE_TOKENS
    raise ValueError(f"expected true or false (or {sorted(POSITIVE_TOKENS)} / {sorted(NEGATIVE_TOKENS)})")


def _utc(moment: datetime | None) -> datetime | None:
    """In UTC, as the record store keeps it; a moment before 2000 or more than a day ahead is refused."""
    if moment is None:
        return moment
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is out of range in UTC") from None
    latest = datetime.now(UTC) + OUTCOME_LEEWAY
    if not EARLIEST_OUTCOME <= utc <= latest:
        raise ValueError(f"{moment.isoformat()} is outside [{EARLIEST_OUTCOME:%Y-%m-%d}, now + 1 day]")
    return utc if moment.tzinfo else moment


class Outcome(BaseModel):
    """What happened to a scored record."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, AfterValidator(_storable_id)] = Field(
        min_length=1, description="The id the record was scored with (stripped, as /score reads it)."
    )
    converted: Annotated[bool, BeforeValidator(_truth)] = Field(
        description="Whether the positive outcome happened: true/false, or yes/no, 1/0, t/f, y/n as ingest reads."
    )
    at: Annotated[datetime | None, AfterValidator(_utc)] = Field(
        None, description="When it happened (ISO 8601; no offset means UTC), from 2000 to a day ahead of now."
    )


class Stored(BaseModel):
    """Outcomes committed to the record store."""

    stored: int


class CalibrationInfo(BaseModel):
    """How the served probabilities are calibrated (the model card's calibration, without its fitted numbers)."""

    method: Method = Field(
        "identity", description="platt, isotonic, or identity: the classifier's own probabilities (no calibration)."
    )
    rows: int = Field(0, description="Labelled predictions the calibration was fitted on (0: nothing fitted).")


class Following(BaseModel):
    """How this worker follows the registry's champion (`serving.follow`)."""

    alias: str = Field(description="The registry alias followed, e.g. models:/scoreloop-model@champion.")
    poll_seconds: float = Field(description="Seconds between checks of the alias (0: only on POST /admin/reload).")
    champion: str | None = Field(description="The version the alias named at the last check.")
    checked_at: datetime | None = Field(description="When the alias was last checked (UTC).")
    restart_needed: str | None = Field(
        description="Why the champion cannot be swapped in without a restart (another input spec), else null."
    )
    last_failure: str | None = Field(description="The last check's failure (lookup, import, load, verify), else null.")


class Reloaded(BaseModel):
    """What POST /admin/reload found and did."""

    outcome: str = Field(description="unchanged, swapped, not swapped, restart needed, or lookup failed.")
    served: str = Field(description="The version served after the check.")
    champion: str | None = Field(description="The version the alias names (null when it could not be read).")
    detail: str


class Metadata(BaseModel):
    """What is being served and how to call it."""

    model: str
    version: str
    run_id: str | None
    windows: dict[str, str] = Field(description="ISO bounds of the train/valid/holdout slices.")
    metrics: dict[str, dict[str, float]] = Field(description="Validation and holdout metrics.")
    tier_cutoffs: dict[str, float] = Field(description="Tier -> lowest probability in it; below the last: 'D'.")
    score_scale: str
    calibration: CalibrationInfo = Field(
        default_factory=CalibrationInfo, description="How the probability, score, tier and reasons are calibrated."
    )
    max_records: int
    required: list[str]
    input_schema: dict[str, Any] = Field(description="JSON schema of one record.")
    following: Following | None = Field(
        default=None,
        description="How the service follows the champion alias, and what it found (null from an older server).",
    )


class HistoryEntry(BaseModel):
    """One scoring of a record: what it got, from which model, what happened, and why."""

    scored_at: str = Field(description="When it was scored (UTC, ISO 8601).")
    score: int
    probability: float
    tier: str
    model: str
    version: str
    outcome: bool | None = Field(description="Whether it converted, when known.")
    outcome_at: str | None
    reasons: list[Reason] | None = Field(
        description="The top reasons at that score; null when the version that scored it is not the one served "
        "(`scoreloop record ID` loads every version)."
    )
