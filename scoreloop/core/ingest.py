"""Ingestion: a raw export in, typed rows plus a quarantine file out. Rows in = rows out + rows quarantined.

Values are read by the one engine (`scoreloop.core.coerce`) that serving uses too. The typed Parquet file records
the spec it was read with, so training loads it as written instead of reading it a second time.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoreloop.core.coerce import field_counts, read_frame
from scoreloop.core.spec import DatasetSpec

RECORD = "_record"
REASON = "_reason"
RAW_LINE = "_raw_line"
INGESTED_KEY = b"scoreloop.ingested"  # Parquet metadata: the spec the rows were read with, and the rows quarantined
DELIMITERS = (",", ";", "\t", "|")
SNIFF_LINES = 50


@dataclass(frozen=True)
class RawTable:
    """An export read as text: well-formed records, and the records whose field count is wrong."""

    frame: pd.DataFrame
    records: pd.Series  # 1-based record number (header excluded) of each frame row
    malformed: pd.DataFrame  # _record, _reason, _raw_line


@dataclass(frozen=True)
class Ingested:
    """Typed rows (index 0..n-1), the quarantined records, and the category counts worth reporting."""

    rows: pd.DataFrame
    quarantined: pd.DataFrame
    mapped_categories: dict[str, int]
    unseen_categories: dict[str, int]


@dataclass(frozen=True)
class IngestReport:
    rows_in: int
    rows_out: int
    rows_quarantined: int
    output: Path
    quarantine: Path | None
    ignored_columns: list[str]
    mapped_categories: dict[str, int]
    unseen_categories: dict[str, int]

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def quarantine_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(output.suffix) + ".quarantine.csv")


def read_raw(path: Path, delimiter: str = ",") -> RawTable:
    """Read CSV as strings (nothing inferred, nothing lost) or Parquet as stored."""
    path = Path(path)
    if _is_parquet(path):
        return stored_table(pd.read_parquet(path))
    if path.suffix.lower() not in {".csv", ".txt", ".gz"}:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return next(read_csv_chunks(path, sys.maxsize, delimiter))[0]


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def stored_table(frame: pd.DataFrame, first_record: int = 1) -> RawTable:
    """Records as a typed file stores them (Parquet): every one well-formed, numbered from `first_record`."""
    records = pd.Series(range(first_record, first_record + len(frame)), dtype=int)
    return RawTable(frame, records, pd.DataFrame(columns=[RECORD, REASON, RAW_LINE]))


def _text(binary: IO[bytes], path: Path) -> io.TextIOWrapper:
    if path.suffix.lower() == ".gz":
        binary = gzip.GzipFile(fileobj=binary)
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


def sniff_delimiter(path: Path) -> str:
    """The field delimiter of a CSV export (',' for Parquet): see `detect_delimiter`."""
    if _is_parquet(Path(path)):
        return ","
    with Path(path).open("rb") as raw:
        lines = [line for _, line in zip(range(SNIFF_LINES + 1), _text(raw, Path(path)), strict=False)]
    return detect_delimiter(lines[:-1] if len(lines) > SNIFF_LINES else lines)


def detect_delimiter(lines: list[str]) -> str:
    """The candidate that splits the most records into as many fields as the header, and then the header into the
    most fields; ',' when none does better. A decimal comma splits records unevenly, so it does not fool this."""

    def fit(delimiter: str) -> tuple[int, int]:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
        return (sum(width == widths[0] for width in widths), widths[0]) if widths else (0, 0)

    return max(DELIMITERS, key=fit)


def read_csv_chunks(path: Path, rows: int, delimiter: str = ",") -> Iterator[tuple[RawTable, int]]:
    """A CSV export read as text `rows` records at a time (at least one chunk, maybe empty), each with the bytes of
    the file read so far. A record whose field count is wrong is kept for the quarantine with its raw text."""
    with path.open("rb") as raw:
        reader = csv.reader(_text(raw, path), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty: expected a header row")
        header = [h.strip() for h in header]
        good: list[list[str]] = []
        records: list[int] = []
        malformed: list[dict] = []
        yielded = False
        for number, row in enumerate(reader, start=1):
            if len(row) == len(header):
                good.append(row)
                records.append(number)
            elif row:
                reason = f"expected {len(header)} fields, found {len(row)} (line {reader.line_num})"
                malformed.append({RECORD: number, REASON: reason, RAW_LINE: _as_csv_line(row, delimiter)})
            if len(good) + len(malformed) >= rows:
                yield _raw_table(header, good, records, malformed), raw.tell()
                good, records, malformed, yielded = [], [], [], True
        if good or malformed or not yielded:
            yield _raw_table(header, good, records, malformed), raw.tell()


def _raw_table(header: list[str], rows: list[list[str]], records: list[int], malformed: list[dict]) -> RawTable:
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return RawTable(frame, pd.Series(records, dtype=int), pd.DataFrame(malformed, columns=[RECORD, REASON, RAW_LINE]))


def _as_csv_line(row: list[str], delimiter: str) -> str:
    """The record as CSV text again, minimally quoted like most exports, so a field holding a comma stays one."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="").writerow(row)
    return buffer.getvalue()


def ingest_table(raw: RawTable, spec: DatasetSpec) -> Ingested:
    """Read `raw` as training data against `spec`: typed rows, and every refused record with its reason."""
    checked = read_frame(raw.frame, spec, with_target=True)
    _, unseen = field_counts(checked.rows[checked.accepted], spec)
    quarantined = quarantine_frame(raw, checked.reasons())
    return Ingested(checked.frame().reset_index(drop=True), quarantined, checked.mapped, unseen)


def quarantine_frame(raw: RawTable, reasons: dict[int, str]) -> pd.DataFrame:
    """Refused records (`reasons` by position in `raw.frame`) with their number, reason and original values as
    text, and malformed lines with their raw text, in record order; the columns are the same for every chunk."""
    positions = list(reasons)
    refused = raw.frame.iloc[positions].astype(str)
    refused.insert(0, REASON, list(reasons.values()))
    refused.insert(0, RECORD, raw.records.to_numpy()[positions])
    columns = [RECORD, REASON, *raw.frame.columns, RAW_LINE]
    quarantined = pd.concat([refused, raw.malformed], ignore_index=True).reindex(columns=columns)
    return quarantined.sort_values(RECORD, ignore_index=True)


def ingest_file(source: Path, spec: DatasetSpec, output: Path) -> IngestReport:
    """Read `source` against `spec`; write typed Parquet to `output` and rejects beside it."""
    raw = read_raw(source, spec.format.delimiter)
    ingested = ingest_table(raw, spec)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_ingested(ingested, spec, output)
    qpath = quarantine_path(output)
    if len(ingested.quarantined):
        ingested.quarantined.to_csv(qpath, index=False, quoting=csv.QUOTE_ALL)  # raw values may hold \r or quotes
    else:
        qpath.unlink(missing_ok=True)
    report = IngestReport(
        rows_in=len(raw.frame) + len(raw.malformed),
        rows_out=len(ingested.rows),
        rows_quarantined=len(ingested.quarantined),
        output=output,
        quarantine=qpath if len(ingested.quarantined) else None,
        ignored_columns=[c for c in raw.frame.columns if c not in set(spec.required_columns)],
        mapped_categories=ingested.mapped_categories,
        unseen_categories=ingested.unseen_categories,
    )
    if report.rows_in != report.rows_out + report.rows_quarantined:
        raise AssertionError(f"ingest accounting broke: {report.to_dict()}")
    return report


def _write_ingested(ingested: Ingested, spec: DatasetSpec, output: Path) -> None:
    table = pa.Table.from_pandas(ingested.rows, preserve_index=False)
    note = json.dumps({"spec": spec.model_dump(mode="json"), "rows_quarantined": len(ingested.quarantined)})
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), INGESTED_KEY: note}), output)


def read_rows(path: Path, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """Training rows of `path` and the number of records refused: an ingested Parquet file as written (its values
    were read at ingest; reading typed rows again could misread them, e.g. a target stored as 0/1 against a label
    like '>50K'), anything else read now."""
    path = Path(path)
    note = (pq.read_schema(path).metadata or {}).get(INGESTED_KEY) if _is_parquet(path) else None
    if note is None:
        ingested = ingest_table(read_raw(path, spec.format.delimiter), spec)
        return ingested.rows, len(ingested.quarantined)
    ingested_with = json.loads(note)
    if DatasetSpec.model_validate(ingested_with["spec"]) != spec:
        raise ValueError(f"{path} was ingested with another spec: ingest the export again with this one")
    return pd.read_parquet(path), int(ingested_with["rows_quarantined"])
