"""JSON bodies of `/score` and `/score/columns` decoded straight into columns of typed values, for the engine.

msgspec decodes a body against types generated from the spec (scalars of the kinds the engine reads per field; an
absent field is null), without a Python dict per record, and hands the values over a column at a time to
`scoreloop.core.coerce.read_columns`, as every other door does. JSON numbers decode as pydantic's parser decodes
them (an integer stays an exact int, so a category or id `12` reads as `"12"` on both paths).

This is the fast path for what will be accepted: a body that does not decode into those types (a boolean number, a
list, an unknown field or key, a number out of range, malformed JSON), or whose values the engine refuses, gets
None, and the request is read again by pydantic and `check_records`/`check_columns`, which name every problem by
record index and field. So the 400s, the 413 and their order are the general path's, and the fast path is equal to
it on everything it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from scoreloop.core.coerce import input_fields, read_columns
from scoreloop.core.spec import DatasetSpec
from scoreloop.serving.schema import check_size

Reader = Callable[[bytes], dict[str, np.ndarray] | None]


def _value_type(spec: DatasetSpec, name: str) -> Any:
    """The JSON values the fast path takes for a field, as the engine may read them (a number or text for a number;
    any scalar for a category, `true` included; text or a number for an id or free text); a boolean where the engine
    refuses one, a list or an object is left to the general path, which names it."""
    if name in spec.numeric:
        return float | str | None
    if name in spec.categorical:
        return str | int | float | bool | None
    return str | int | float | None


def _record_struct(spec: DatasetSpec, names: list[str]) -> type[msgspec.Struct]:
    """One record: a field per input field (attributes f0, f1, ... renamed to the spec's names, which need not be
    Python identifiers), absent = null, unknown fields refused."""
    fields = [(f"f{i}", _value_type(spec, name), None) for i, name in enumerate(names)]
    return msgspec.defstruct("Record", fields, rename=_renamed(names), forbid_unknown_fields=True)


def _renamed(names: list[str]) -> dict[str, str]:
    return {f"f{i}": name for i, name in enumerate(names)}


def records_reader(spec: DatasetSpec, max_records: int) -> Reader:
    """`{"records": [...]}` or `{"records": {...}}` -> `{"records": typed rows}`, or None (see the module)."""
    names = input_fields(spec)
    record = _record_struct(spec, names)
    body = msgspec.defstruct("Records", [("records", list[record] | record)], forbid_unknown_fields=True)
    decoder = msgspec.json.Decoder(body)

    def read(data: bytes) -> dict[str, np.ndarray] | None:
        try:
            records = decoder.decode(data).records
        except msgspec.MsgspecError:
            return None
        if not isinstance(records, list):
            records = [records]
        check_size(len(records), max_records)
        values = zip(*map(msgspec.structs.astuple, records), strict=True) if records else ()
        return _typed("records", dict(zip(names, values, strict=False)), len(records), spec)

    return read


def columns_reader(spec: DatasetSpec, max_records: int) -> Reader:
    """`{"columns": {"field": [...]}}` -> `{"columns": typed rows}`, or None (see the module)."""
    names = input_fields(spec)
    lists = [(f"f{i}", list[_value_type(spec, n)] | msgspec.UnsetType, msgspec.UNSET) for i, n in enumerate(names)]
    table = msgspec.defstruct("Table", lists, rename=_renamed(names), forbid_unknown_fields=True)
    body = msgspec.defstruct("Columns", [("columns", table)], forbid_unknown_fields=True)
    decoder = msgspec.json.Decoder(body)

    def read(data: bytes) -> dict[str, np.ndarray] | None:
        try:
            given = msgspec.structs.astuple(decoder.decode(data).columns)
        except msgspec.MsgspecError:
            return None
        columns = {name: values for name, values in zip(names, given, strict=True) if values is not msgspec.UNSET}
        sizes = set(map(len, columns.values()))
        if len(sizes) > 1:  # uneven columns: the general path names them (after its own size check)
            return None
        size = sizes.pop() if sizes else 0
        check_size(size, max_records)
        return _typed("columns", columns, size, spec)

    return read


def _typed(key: str, columns: dict[str, Any], size: int, spec: DatasetSpec) -> dict[str, np.ndarray] | None:
    checked = read_columns(columns, size, spec)
    return None if checked.issues else {key: checked.rows}
