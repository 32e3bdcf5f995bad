"""Arrow IPC in and out, for batch clients: `POST /score/arrow` skips JSON on both sides.

A request body is one Arrow IPC stream (`pyarrow.ipc.new_stream`, or `DataFrame.to_arrow`-style writers) holding a
table with a column per field. Its values go through `check_columns`, the same validation and coercion as
`/score/columns` (so `"$1,200"` in a string column is read as in an export), and problems are the same 400s naming
the field and the record index. The answer is an Arrow IPC stream of the `/score` fields.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from scoreloop.spec import DatasetSpec
from scoreloop.store import ipc_bytes, ipc_table
from serving.schema import check_columns, check_size, request_error

ARROW_STREAM = "application/vnd.apache.arrow.stream"
BYTES_PER_RECORD = 16 * 1024  # a body above this per allowed record is refused (413) before it is read whole


def read_arrow(body: bytes, spec: DatasetSpec, max_records: int) -> np.ndarray:
    """An Arrow IPC stream -> typed rows; a 413 above `max_records` before any value is read."""
    try:
        table = ipc_table(body)
    except (pa.ArrowInvalid, OSError) as exc:
        raise request_error((), f"expected an Arrow IPC stream ({ARROW_STREAM}): {exc}") from None
    check_size(table.num_rows, max_records)
    return check_columns(table.to_pydict(), spec, max_records)


def arrow_bytes(scored: np.ndarray) -> bytes:
    """Scored rows (`score_rows`) as an Arrow IPC stream, a column per field."""
    return ipc_bytes(pa.table({name: pa.array(scored[name]) for name in scored.dtype.names}))
