"""Ingestion: a raw export in, typed rows plus a quarantine file out. Rows in = rows out + rows quarantined.

Values are read by the one engine (`scoreloop.core.coerce`) that serving uses too. The typed Parquet file records
the spec it was read with, so training loads it as written instead of reading it a second time.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoreloop.core.coerce import field_counts, read_frame
from scoreloop.core.spec import DatasetSpec

RECORD = "_record"
LINE = "_line"  # the physical line(s) of the file a record was read from: "7", or "7-13" for a record spanning lines
REASON = "_reason"
RAW_LINE = "_raw_line"
MALFORMED_COLUMNS = [RECORD, LINE, REASON, RAW_LINE]
INGESTED_KEY = b"scoreloop.ingested"  # Parquet metadata: the spec the rows were read with, and the rows quarantined
DELIMITERS = (",", ";", "\t", "|")
SNIFF_LINES = 50


@dataclass(frozen=True)
class RawTable:
    """An export read as text: well-formed records, and the records that cannot be read as one (a wrong field
    count, bytes that are not UTF-8, a field over the CSV field limit)."""

    frame: pd.DataFrame
    records: pd.Series  # 1-based record number (header excluded) of each frame row
    lines: pd.Series  # the physical lines of each frame row ("" when the file has no lines: Parquet)
    malformed: pd.DataFrame  # _record, _line, _reason, _raw_line

    def spanning_lines(self) -> int:
        """Records read from more than one physical line: a quoted line break, or a stray quote that merged lines."""
        return int(self.lines.str.contains("-").sum() + self.malformed[LINE].str.contains("-").sum())


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
    records_spanning_lines: int

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
    return RawTable(frame, records, pd.Series([""] * len(frame), dtype=object), pd.DataFrame(columns=MALFORMED_COLUMNS))


def _text(binary: IO[bytes], path: Path) -> io.TextIOWrapper:
    if path.suffix.lower() == ".gz":
        binary = gzip.GzipFile(fileobj=binary)
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")  # bad bytes: per line


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


def wrong_width(expected: int, found: int) -> str:
    """Why a CSV record with the wrong number of fields is quarantined, as every reader of an export says it."""
    return f"expected {expected} fields, found {found}"


def read_csv_chunks(path: Path, rows: int, delimiter: str = ",") -> Iterator[tuple[RawTable, int]]:
    """A CSV export read as text `rows` records at a time (at least one chunk, maybe empty), each with the bytes of
    the file read so far. A record that cannot be read as one (wrong field count, bytes that are not UTF-8, a field
    over the CSV field limit) is kept for the quarantine with its reason, its lines and its raw text."""
    with path.open("rb") as raw:
        reader = csv.reader(_text(raw, path), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty: expected a header row")
        header = [h.strip() for h in header]
        chunk = _Chunk()
        yielded = False
        for number, (row, problem, lines) in enumerate(_records(reader), start=1):
            if not row and problem is None:
                continue  # a blank line (numbered all the same, as records always were)
            if problem is None and len(row) != len(header):
                problem = f"{wrong_width(len(header), len(row))} (line {reader.line_num})"
            if problem is None:
                chunk.good.append(row)
                chunk.records.append(number)
                chunk.lines.append(lines)
            else:
                chunk.malformed.append({RECORD: number, LINE: lines, REASON: problem, RAW_LINE: _raw(row, delimiter)})
            if len(chunk.good) + len(chunk.malformed) >= rows:
                yield chunk.table(header), raw.tell()
                chunk, yielded = _Chunk(), True
        if chunk.good or chunk.malformed or not yielded:
            yield chunk.table(header), raw.tell()


def _records(reader: Any) -> Iterator[tuple[list[str], str | None, str]]:
    """Each record of a CSV reader with what is wrong with it (None: nothing yet) and its physical lines."""
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a field over csv.field_size_limit(): the reader goes on at the next line
            yield [], f"unreadable CSV: {exc} (line {reader.line_num})", _lines(first, reader.line_num)
            continue
        lines = _lines(first, reader.line_num)
        try:
            "".join(row).encode("utf-8")
        except UnicodeEncodeError:
            yield row, f"not valid UTF-8 (line {lines})", lines
            continue
        yield row, None, lines


def _lines(first: int, last: int) -> str:
    return str(last) if first >= last else f"{first}-{last}"


@dataclass
class _Chunk:
    good: list[list[str]] = field(default_factory=list)
    records: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    malformed: list[dict] = field(default_factory=list)

    def table(self, header: list[str]) -> RawTable:
        frame = pd.DataFrame(self.good, columns=header, dtype=object)
        return RawTable(frame, pd.Series(self.records, dtype=int), pd.Series(self.lines, dtype=object),
                        pd.DataFrame(self.malformed, columns=MALFORMED_COLUMNS))  # fmt: skip


def _raw(row: list[str], delimiter: str) -> str:
    """The record as CSV text again, bytes that are not UTF-8 shown as U+FFFD."""
    return _as_csv_line(row, delimiter).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _as_csv_line(row: list[str], delimiter: str) -> str:
    """The record as CSV text again, minimally quoted like most exports, so a field holding a comma stays one."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="").writerow(row)
    return buffer.getvalue()


@contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to, renamed to `path` when the block ends without an error and
    removed when it fails: an interrupted run never leaves a file that looks complete. When nothing was written under
    the temporary name, `path` is removed: a file left by an earlier run must not pass for this one's."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if partial.exists():
        os.replace(partial, path)
    else:
        path.unlink(missing_ok=True)


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
    refused.insert(0, LINE, raw.lines.to_numpy()[positions])
    refused.insert(0, RECORD, raw.records.to_numpy()[positions])
    columns = [RECORD, LINE, REASON, *raw.frame.columns, RAW_LINE]
    quarantined = pd.concat([refused, raw.malformed], ignore_index=True).reindex(columns=columns)
    return quarantined.sort_values(RECORD, ignore_index=True)


def ingest_file(source: Path, spec: DatasetSpec, output: Path) -> IngestReport:
    """Read `source` against `spec`; write typed Parquet to `output` and rejects beside it."""
    raw = read_raw(source, spec.format.delimiter)
    ingested = ingest_table(raw, spec)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    qpath = quarantine_path(output)
    with written_atomically(output) as partial, written_atomically(qpath) as partial_quarantine:
        write_rows(ingested.rows, spec, partial, len(ingested.quarantined))
        if len(ingested.quarantined):  # raw values may hold \r or quotes
            ingested.quarantined.to_csv(partial_quarantine, index=False, quoting=csv.QUOTE_ALL)
    report = IngestReport(
        rows_in=len(raw.frame) + len(raw.malformed),
        rows_out=len(ingested.rows),
        rows_quarantined=len(ingested.quarantined),
        output=output,
        quarantine=qpath if len(ingested.quarantined) else None,
        ignored_columns=[c for c in raw.frame.columns if c not in set(spec.required_columns)],
        mapped_categories=ingested.mapped_categories,
        unseen_categories=ingested.unseen_categories,
        records_spanning_lines=raw.spanning_lines(),
    )
    if report.rows_in != report.rows_out + report.rows_quarantined:
        raise AssertionError(f"ingest accounting broke: {report.to_dict()}")
    return report


def write_rows(rows: pd.DataFrame, spec: DatasetSpec, output: Path, quarantined: int = 0) -> None:
    """Typed rows as an ingested Parquet file (with the spec and the count of `quarantined` records), which
    `read_rows` reads back exactly as written."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    note = json.dumps({"spec": spec.model_dump(mode="json"), "rows_quarantined": quarantined})
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
