"""Batch scoring of a file of any size (`scoreloop score`): read in chunks, score through the service's own path.

Each chunk is read against the spec by the one engine (`scoreloop.core.coerce.read_frame`, CSV in the spec's
delimiter and number format) and scored by `serving.scoring.score_rows`, the same code as `/score` and the same reading
as ingest, so a file, a request and an ingested export with the same values get the same answer. Rows that cannot be
scored (a value the contract refuses, a CSV line with the wrong field count, bytes that are not UTF-8, a field over
the CSV field limit) go to the quarantine file beside the output with their record number, their physical lines,
their original text and the reason. Rows in = rows scored + rows quarantined. Both files are written under temporary
names and renamed when the run completes: a run that fails leaves neither.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoreloop.core.coerce import read_frame
from scoreloop.core.ingest import (
    RECORD,
    RawTable,
    quarantine_frame,
    quarantine_path,
    read_csv_chunks,
    stored_table,
    written_atomically,
)
from scoreloop.core.model import ScoringModel
from scoreloop.core.policy import work_plan
from scoreloop.core.settings import PolicySettings
from scoreloop.core.store import RecordStore
from scoreloop.serving.scorelog import scored_batch
from scoreloop.serving.scoring import score_rows

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SCORED_SCHEMA = pa.schema(
    [(RECORD, pa.int64()), ("id", pa.string()), ("probability", pa.float64()), ("score", pa.int64()),
     ("tier", pa.string()), ("model", pa.string()), ("version", pa.string())]
)  # fmt: skip
WORK_FIELDS = [pa.field("worked", pa.bool_()), pa.field("propensity", pa.float64()), pa.field("policy", pa.string())]


@dataclass(frozen=True)
class Worklist:
    """`--work`: the work policy decides, per chunk, which scored leads are worked; the decisions and propensities
    go into the output and, with the features, into the scoring log, so outcomes reported later for worked leads
    can be reweighted by `retrain --ipw`."""

    policy: PolicySettings
    store: RecordStore

    def plan(self, scored: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        policy = self.policy
        return work_plan(scored["probability"], policy.capacity, policy.epsilon, rng, policy.exploration)


@dataclass(frozen=True)
class Chunk:
    """Records as text (or as Parquet stores them) with their numbers and malformed lines, and the progress after
    them in the unit of `total_work`."""

    table: RawTable
    done: int


@dataclass(frozen=True)
class BatchReport:
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    output: Path
    quarantine: Path | None
    model: str
    version: str
    records_spanning_lines: int  # read from several physical lines: worth a look when the file has no line breaks

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def file_kind(path: Path) -> str:
    """'csv' or 'parquet' from the file name; anything else is refused naming the suffixes allowed."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise ValueError(f"{path}: unsupported file type; use one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}")


def total_work(path: Path) -> int:
    """The progress total: rows for Parquet (from its footer), bytes for CSV (read position, cheap to know)."""
    return pq.ParquetFile(path).metadata.num_rows if file_kind(path) == "parquet" else path.stat().st_size


def read_chunks(path: Path, rows: int, delimiter: str = ",") -> Iterator[Chunk]:
    """`rows` records at a time; CSV fields are read as text so the engine sees what the file holds."""
    if file_kind(path) == "parquet":
        start = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            table = stored_table(batch.to_pandas(), first_record=start + 1)
            start += len(table.frame)
            yield Chunk(table, start)
        return
    for table, position in read_csv_chunks(path, rows, delimiter):
        yield Chunk(table, position)


def score_file(
    model: ScoringModel,
    source: Path,
    output: Path,
    *,
    chunk_rows: int = 50_000,
    on_chunk: Callable[[int], None] = lambda done: None,
    worklist: Worklist | None = None,
) -> BatchReport:
    """Score `source` into `output` (CSV or Parquet by its suffix) plus `output`'s .quarantine.csv; `on_chunk`
    gets the progress after each chunk (see `total_work`). With a `worklist`, each chunk is also a batch for the
    work policy: its decisions are added to the output and the chunk is logged to the scoring log."""
    output, qpath = Path(output), quarantine_path(Path(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(output) as partial, written_atomically(qpath) as partial_quarantine:
        report = _score_chunks(model, Path(source), partial, partial_quarantine, file_kind(output),
                               chunk_rows=chunk_rows, on_chunk=on_chunk, worklist=worklist)  # fmt: skip
    report = replace(report, output=output, quarantine=qpath if report.rows_quarantined else None)
    if report.rows_in != report.rows_scored + report.rows_quarantined:
        raise AssertionError(f"batch scoring accounting broke: {report.to_dict()}")
    return report


def _score_chunks(
    model: ScoringModel,
    source: Path,
    output: Path,
    qpath: Path,
    kind: str,
    *,
    chunk_rows: int,
    on_chunk: Callable[[int], None],
    worklist: Worklist | None,
) -> BatchReport:
    schema = SCORED_SCHEMA if worklist is None else pa.schema([*SCORED_SCHEMA, *WORK_FIELDS])
    scored_file = _ParquetFile(output, schema) if kind == "parquet" else _CsvFile(output, schema.names)
    rng = np.random.default_rng(worklist.policy.seed if worklist else None)
    quarantine: _CsvFile | None = None
    rows_in = rows_scored = rows_quarantined = spanning = 0
    try:
        for chunk in read_chunks(source, chunk_rows, model.spec.format.delimiter):
            checked = read_frame(chunk.table.frame, model.spec)
            accepted = checked.accepted
            rows, scored = checked.rows[accepted], score_rows(model, checked.rows[accepted])
            frame = _scored_frame(scored, chunk.table.records.to_numpy()[accepted])
            if worklist is not None and len(rows):
                plan = worklist.plan(scored, rng)
                worklist.store.log_scores([scored_batch(model.spec, rows, scored, policy=plan)])
                frame = pd.concat([frame, plan], axis=1)
            scored_file.write(frame)
            refused = quarantine_frame(chunk.table, checked.reasons())
            if len(refused):
                quarantine = quarantine or _CsvFile(qpath, list(refused.columns))
                quarantine.write(refused)
            rows_in += len(chunk.table.frame) + len(chunk.table.malformed)
            rows_scored += len(accepted)
            rows_quarantined += len(refused)
            spanning += chunk.table.spanning_lines()
            on_chunk(chunk.done)
    finally:
        scored_file.close()
    return BatchReport(rows_in, rows_scored, rows_quarantined, output, None, model.name, model.version, spanning)


def _scored_frame(scored: np.ndarray, records: np.ndarray) -> pd.DataFrame:
    """The /score fields per scored row, after the 1-based record number that joins them back to the file."""
    frame = pd.DataFrame({name: scored[name] for name in scored.dtype.names})
    frame.insert(0, RECORD, records.astype(np.int64))
    return frame


class _CsvFile:
    """A CSV file written a frame at a time under one header (every field quoted: raw values may hold \\r)."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = columns
        pd.DataFrame(columns=columns).to_csv(path, index=False, quoting=csv.QUOTE_ALL)

    def write(self, frame: pd.DataFrame) -> None:
        frame[self.columns].to_csv(self.path, mode="a", header=False, index=False, quoting=csv.QUOTE_ALL)

    def close(self) -> None:
        """Nothing is held open between writes."""


class _ParquetFile:
    """A Parquet file written a frame at a time, in the fixed schema of the scored fields."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema)

    def write(self, frame: pd.DataFrame) -> None:
        self.writer.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))

    def close(self) -> None:
        self.writer.close()
