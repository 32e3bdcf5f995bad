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

from scoreloop.core.coerce import read_frame, read_times
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
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import RecordStore
from scoreloop.serving.scorelog import scored_batch
from scoreloop.serving.scoring import explain_rows, score_rows

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
SCORED_SCHEMA = pa.schema(
    [(RECORD, pa.int64()), ("id", pa.string()), ("probability", pa.float64()), ("score", pa.int64()),
     ("tier", pa.string()), ("model", pa.string()), ("version", pa.string())]
)  # fmt: skip
WORK_FIELDS = [pa.field("worked", pa.bool_()), pa.field("propensity", pa.float64()), pa.field("policy", pa.string()),
               pa.field("queue", pa.int64()), pa.field("reasons", pa.string())]  # fmt: skip


@dataclass(frozen=True)
class Worklist:
    """`--work`: the file is one queue. The work policy decides over the whole file, or over each day of the spec's
    time column, which scored leads are worked: `count` of them (default: the policy's capacity share), never per
    chunk. The decisions and propensities go into the output and, with the features, into the scoring log, so
    outcomes reported later for worked leads can be reweighted by `retrain --ipw`; the worked leads get their top
    `reasons` in words."""

    policy: PolicySettings
    store: RecordStore
    count: int | None = None
    per_day: bool = False
    reasons: int = 3

    def plan(self, probability: np.ndarray, days: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """The policy's decisions per lead (input order), made within each day (or once for the file), and each
        worked lead's place in its queue by probability (`queue`, 1 = first)."""
        groups = pd.Series(days if self.per_day else np.zeros(len(probability)))
        parts = []
        for index in groups.groupby(groups, dropna=False, sort=True).indices.values():
            policy = self.policy
            plan = work_plan(probability[index], policy.capacity, policy.epsilon, rng, policy.exploration, self.count)
            plan.index = index
            worked = pd.Series(probability[index], index=index)[plan["worked"].to_numpy()]
            plan["queue"] = worked.rank(ascending=False, method="first").astype("Int64")
            parts.append(plan)
        return pd.concat(parts).sort_index()


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
    output: Path | str  # str: a Spark dataset's URI
    quarantine: Path | str | None
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
    gets the progress after each chunk (see `total_work`). With a `worklist`, the whole file is the work policy's
    queue: the scored chunks are held until the last one is read (a worklist is a day's or a week's leads), then
    decided at once, logged to the scoring log a chunk at a time, and written in queue order."""
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
    held: list[Held] = []
    try:
        for chunk in read_chunks(source, chunk_rows, model.spec.format.delimiter):
            checked = read_frame(chunk.table.frame, model.spec)
            accepted = checked.accepted
            rows, scored = checked.rows[accepted], score_rows(model, checked.rows[accepted])
            frame = _scored_frame(scored, chunk.table.records.to_numpy()[accepted])
            if worklist is None:
                scored_file.write(frame)
            elif len(rows):
                held.append(Held(rows, scored, frame, _days(chunk.table, model.spec, accepted)))
            refused = quarantine_frame(chunk.table, checked.reasons())
            if len(refused):
                quarantine = quarantine or _CsvFile(qpath, list(refused.columns))
                quarantine.write(refused)
            rows_in += len(chunk.table.frame) + len(chunk.table.malformed)
            rows_scored += len(accepted)
            rows_quarantined += len(refused)
            spanning += chunk.table.spanning_lines()
            on_chunk(chunk.done)
        if worklist is not None and held:
            scored_file.write(_queue(model, worklist, held, rng))
    finally:
        scored_file.close()
    return BatchReport(rows_in, rows_scored, rows_quarantined, output, None, model.name, model.version, spanning)


@dataclass(frozen=True)
class Held:
    """A scored chunk waiting for the queue to be decided: typed rows, scores, output frame, each row's day."""

    rows: np.ndarray
    scored: np.ndarray
    frame: pd.DataFrame
    days: np.ndarray


def _days(table: RawTable, spec: DatasetSpec, accepted: np.ndarray) -> np.ndarray:
    """The day of the spec's time column per accepted row (NaT where it is missing, unreadable or not declared)."""
    if spec.time_column is None or spec.time_column not in table.frame:
        return np.full(int(accepted.sum()), np.datetime64("NaT"), dtype="datetime64[ns]")
    return read_times(table.frame[spec.time_column], spec.time_column)[0][accepted].astype("datetime64[D]")


def _queue(model: ScoringModel, worklist: Worklist, held: list[Held], rng: np.random.Generator) -> pd.DataFrame:
    """Decide the work over every held chunk, log each chunk with its decisions, and return the output: by day, then
    by probability, the worked leads with their top reasons in words."""
    probability = np.concatenate([h.scored["probability"] for h in held])
    days = np.concatenate([h.days for h in held]).astype("datetime64[ns]")
    plan = worklist.plan(probability, days, rng).reset_index(drop=True)
    start = 0
    for h in held:
        decided = plan.iloc[start : start + len(h.rows)].reset_index(drop=True)
        worklist.store.log_scores([scored_batch(model.spec, h.rows, h.scored, policy=decided)])
        start += len(h.rows)
    frame = pd.concat([pd.concat([h.frame for h in held], ignore_index=True), plan], axis=1)
    worked = np.flatnonzero(plan["worked"].to_numpy())
    explained = explain_rows(model, np.concatenate([h.rows for h in held])[worked], worklist.reasons)
    frame["reasons"] = None
    frame.loc[worked, "reasons"] = ["; ".join(r["text"] for r in e["reasons"]) for e in explained]
    return frame.iloc[np.lexsort((-probability, days.view(np.int64) if worklist.per_day else np.zeros(len(days))))]


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
