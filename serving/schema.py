"""Request and response models generated from the dataset spec, so the API contract is the spec.

Validators call the same coercion functions as ingestion: `"$1,200"` and `"N/A"` mean the same in a request as
in an export. A value that cannot be read fails validation, which BentoML answers with a 400 naming the record
index and the field.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from scoreloop.coerce import read_category, read_number
from scoreloop.spec import DatasetSpec


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def record_model(spec: DatasetSpec) -> type[BaseModel]:
    """A pydantic model of one record to score: every feature optional (missing is scored), unknown fields refused."""
    fields: dict[str, Any] = {}
    for name in spec.numeric:
        validator = BeforeValidator(partial(read_number, bounds=spec.ranges.get(name)))
        fields[name] = (Annotated[float | None, validator], Field(None, description=_describe(spec, name)))
    for name in spec.categorical:
        validator = BeforeValidator(partial(read_category, allowed=tuple(spec.allowed_values.get(name, ()))))
        fields[name] = (Annotated[str | None, validator], Field(None, description=_describe(spec, name)))
    for name in [*spec.text, *filter(None, [spec.id_column])]:
        fields[name] = (Annotated[str | None, BeforeValidator(_text)], Field(None))
    return create_model("Record", __config__=ConfigDict(extra="forbid", str_strip_whitespace=True), **fields)


def _describe(spec: DatasetSpec, name: str) -> str:
    if name in spec.allowed_values:
        return f"one of {spec.allowed_values[name]} (case-insensitive; unseen values are scored)"
    bounds = spec.ranges.get(name)
    if bounds is None:
        return "a number; '$1,200', '1.2k' and 'N/A' are read too"
    return f"a number in [{bounds.min}, {bounds.max}]; '$1,200', '1.2k' and 'N/A' are read too"


class Scored(BaseModel):
    """One scored record."""

    id: str | None = Field(None, description="The record's id, when the request carried one.")
    probability: float = Field(description="Calibrated-by-training probability of the positive outcome.")
    score: int = Field(ge=0, le=100, description="Percentile of the probability among validation records.")
    tier: str = Field(description="Tier from cut-offs fixed at training time (A best).")
    model: str
    version: str
