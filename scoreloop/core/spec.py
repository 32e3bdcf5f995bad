"""The dataset spec: what a table of records must look like before anything trains on or scores it.

A spec is a small YAML file, validated by pydantic, that names the id, target and event-time columns, the typed
feature lists and how the export writes numbers. Ingestion, training, serving and monitoring all read the same spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Range(BaseModel):
    """Inclusive bounds for a numeric feature; either side may be open."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None

    def violation(self, value: float) -> str | None:
        """Describe how `value` breaks the range, or None when it fits."""
        if self.min is not None and value < self.min:
            return f"{value:g} is below the minimum {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{value:g} is above the maximum {self.max:g}"
        return None


class NumberFormat(BaseModel):
    """How an export separates fields and writes numbers. A value such as '1.234' is read by the declared format
    (1.234 with decimal '.', 1234 with decimal ',' and thousands '.'), never guessed per value. Spaces (also
    non-breaking) and "'" between digit groups are always thousands separators: they are never a decimal mark."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delimiter: Literal[",", ";", "\t", "|"] = ","
    decimal: Literal[".", ","] = "."
    thousands: Literal[",", ".", " ", "\u00a0", "\u202f", "'"] = ","

    @model_validator(mode="before")
    @classmethod
    def _default_thousands(cls, data: Any) -> Any:
        """Absent thousands: the other of '.' and ','."""
        if isinstance(data, dict) and "thousands" not in data:
            return {**data, "thousands": "," if data.get("decimal", ".") == "." else "."}
        return data

    @model_validator(mode="after")
    def _check_marks(self) -> Self:
        if self.thousands == self.decimal:
            raise ValueError(f"format: thousands {self.thousands!r} cannot also be the decimal mark")
        return self


class DatasetSpec(BaseModel):
    """Declared shape of a scoring dataset (one row per scored entity)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "dataset"
    id_column: str | None = None
    target: str
    positive_label: str = Field(description="Target value that marks the positive class, e.g. 'yes' or '1'.")
    time_column: str | None = None
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)
    allowed_values: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Canonical values per categorical feature; close misspellings are mapped onto them.",
    )
    closed: list[str] = Field(
        default_factory=list,
        description="Categorical features whose values outside allowed_values are refused; elsewhere such a value "
        "is kept and counted as unseen.",
    )
    ranges: dict[str, Range] = Field(default_factory=dict)
    format: NumberFormat = Field(default_factory=NumberFormat, description="Field delimiter and number format.")
    required: list[str] = Field(
        default_factory=list,
        description="Features a record to score must carry; the others may be missing (they are scored as missing).",
    )

    @property
    def features(self) -> list[str]:
        """Model input columns, in the fixed order the model sees them."""
        return [*self.numeric, *self.categorical, *self.text]

    @property
    def required_columns(self) -> list[str]:
        """Columns a training export must contain."""
        keys = [c for c in (self.id_column, self.time_column) if c]
        return [*keys, self.target, *self.features]

    @model_validator(mode="after")
    def _check_columns(self) -> Self:
        seen: dict[str, str] = {}
        roles = [("id_column", [self.id_column]), ("target", [self.target]), ("time_column", [self.time_column])]
        roles += [("numeric", self.numeric), ("categorical", self.categorical), ("text", self.text)]
        for role, columns in roles:
            for column in filter(None, columns):
                if column in seen:
                    raise ValueError(f"column {column!r} is listed as both {seen[column]} and {role}")
                seen[column] = role
        if not self.features:
            raise ValueError("the spec declares no features: list at least one numeric, categorical or text column")
        for key, known, kind in (
            ("allowed_values", self.categorical, "categorical"),
            ("ranges", self.numeric, "numeric"),
        ):
            unknown = sorted(set(getattr(self, key)) - set(known))
            if unknown:
                raise ValueError(f"{key} names {unknown}, which are not {kind} features {known}")
        if unknown := sorted(set(self.closed) - set(self.allowed_values)):
            raise ValueError(
                f"closed names {unknown}, which are not categorical features with allowed_values "
                f"{sorted(self.allowed_values)}"
            )
        if unknown := sorted(set(self.required) - set(self.features)):
            raise ValueError(f"required names {unknown}, which are not features {self.features}")
        return self

    @classmethod
    def load(cls, path: Path) -> DatasetSpec:
        """Read and validate a spec file; errors name the file and the offending key."""
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read spec {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"spec {path} must be a YAML mapping, got {type(raw).__name__}")
        return cls.model_validate(raw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path
