"""Arrow IPC in and out, for batch clients: `POST /score/arrow` skips JSON on both sides.

A request body is one Arrow IPC stream (`pyarrow.ipc.new_stream`, or `DataFrame.to_arrow`-style writers) holding a
table with a column per field. Its values go through `check_columns`, the same validation and coercion as
`/score/columns` (so `"$1,200"` in a string column is read as in an export), and problems are the same 400s naming
the field and the record index. The answer is an Arrow IPC stream of the `/score` fields.

Typed columns skip Python objects: a numeric feature in a number column arrives as one float array, and a text
column of a category as its dictionary encoding (`Distinct`), so each distinct value is read once. Any other
column (text in a numeric feature, ids, nested values) is read value by value, as JSON is.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from scoreloop.core.coerce import Distinct
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import ipc_bytes, ipc_table
from scoreloop.serving.schema import check_columns, check_size, request_error

ARROW_STREAM = "application/vnd.apache.arrow.stream"
BYTES_PER_RECORD = 16 * 1024  # a body above this per allowed record is refused (413) before it is read whole


def read_arrow(body: bytes, spec: DatasetSpec, max_records: int) -> np.ndarray:
    """An Arrow IPC stream -> typed rows; a 413 above `max_records` before any value is read."""
    try:
        table = ipc_table(body)
        table.validate(full=True)  # text that is not UTF-8 would fail later, as a 500, when its values are read
        names = table.column_names
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise request_error((), f"expected an Arrow IPC stream ({ARROW_STREAM}) of UTF-8 text: {exc}") from None
    check_size(table.num_rows, max_records)
    if repeated := sorted(name for name, count in Counter(names).items() if count > 1):
        raise request_error((repeated[0],), "appears more than once in the stream: one column per field")
    numeric, categorical = frozenset(spec.numeric), frozenset(spec.categorical)
    columns = {}
    for name, column in zip(names, table.columns, strict=True):
        if name in numeric and pa.types.is_floating(column.type):
            columns[name] = column.to_numpy()  # nulls are NaN
        elif name in numeric and pa.types.is_integer(column.type):
            columns[name] = column.cast(pa.float64(), safe=False).to_numpy()
        elif name in categorical and pa.types.is_dictionary(column.type) and _is_text(column.type.value_type):
            columns[name] = _distinct(column.cast(column.type.value_type))
        elif name in categorical and _is_text(column.type):
            columns[name] = _distinct(column)
        else:
            columns[name] = column.to_pylist()
    return check_columns(columns, spec, max_records)


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)  # string_view encodes a null as ""


def _distinct(column: pa.ChunkedArray) -> Distinct:
    encoded: Any = column.dictionary_encode(null_encoding="encode").combine_chunks()  # a null is a distinct value
    return Distinct(encoded.dictionary.to_pylist(), encoded.indices.to_numpy())


def arrow_bytes(scored: np.ndarray) -> bytes:
    """Scored rows (`score_rows`) as an Arrow IPC stream, a column per field."""
    return ipc_bytes(pa.table({name: pa.array(scored[name]) for name in scored.dtype.names}))
