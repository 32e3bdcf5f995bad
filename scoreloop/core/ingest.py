"""Ingestion: a raw export in, typed rows plus a quarantine file out. Rows in = rows out + rows quarantined."""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scoreloop.core.coerce import coerce_frame
from scoreloop.core.spec import DatasetSpec

RECORD = "_record"
REASON = "_reason"
RAW_LINE = "_raw_line"


@dataclass(frozen=True)
class RawTable:
    """An export read as text: well-formed records, and the records whose field count is wrong."""

    frame: pd.DataFrame
    records: pd.Series  # 1-based record number (header excluded) of each frame row
    malformed: pd.DataFrame  # _record, _reason, _raw_line


@dataclass(frozen=True)
class IngestReport:
    rows_in: int
    rows_out: int
    rows_quarantined: int
    output: Path
    quarantine: Path | None
    ignored_columns: list[str]
    mapped_categories: dict[str, int]

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def quarantine_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(output.suffix) + ".quarantine.csv")


def read_raw(path: Path) -> RawTable:
    """Read CSV as strings (nothing inferred, nothing lost) or Parquet as stored."""
    path = Path(path)
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
        empty = pd.DataFrame(columns=[RECORD, REASON, RAW_LINE])
        return RawTable(frame, pd.Series(range(1, len(frame) + 1)), empty)
    if path.suffix.lower() not in {".csv", ".txt", ".gz"}:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return _read_csv(path)


def _read_csv(path: Path) -> RawTable:
    return next(read_csv_chunks(path, sys.maxsize))[0]


def read_csv_chunks(path: Path, rows: int) -> Iterator[tuple[RawTable, int]]:
    """A CSV export read as text `rows` records at a time (at least one chunk, maybe empty), each with the bytes of
    the file read so far. A record whose field count is wrong is kept for the quarantine with its raw text."""
    with path.open("rb") as raw:
        binary = gzip.GzipFile(fileobj=raw) if path.suffix.lower() == ".gz" else raw
        reader = csv.reader(io.TextIOWrapper(binary, encoding="utf-8-sig", newline=""))
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
                malformed.append({RECORD: number, REASON: reason, RAW_LINE: _as_csv_line(row)})
            if len(good) + len(malformed) >= rows:
                yield _raw_table(header, good, records, malformed), raw.tell()
                good, records, malformed, yielded = [], [], [], True
        if good or malformed or not yielded:
            yield _raw_table(header, good, records, malformed), raw.tell()


def _raw_table(header: list[str], rows: list[list[str]], records: list[int], malformed: list[dict]) -> RawTable:
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return RawTable(frame, pd.Series(records, dtype=int), pd.DataFrame(malformed, columns=[RECORD, REASON, RAW_LINE]))


def _as_csv_line(row: list[str]) -> str:
    """The record as CSV text again, minimally quoted like most exports, so a field holding a comma stays one."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue()


def ingest_file(source: Path, spec: DatasetSpec, output: Path) -> IngestReport:
    """Coerce `source` against `spec`; write typed Parquet to `output` and rejects beside it."""
    raw = read_raw(source)
    coerced = coerce_frame(raw.frame, spec, with_target=True, strict=True)
    reasons = coerced.reasons()
    rejected = raw.frame.iloc[reasons.index].astype(str)
    rejected.insert(0, REASON, reasons.to_numpy())
    rejected.insert(0, RECORD, raw.records.iloc[reasons.index].to_numpy())
    quarantined = pd.concat([raw.malformed, rejected], ignore_index=True).sort_values(RECORD)

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    coerced.rows.reset_index(drop=True).to_parquet(output, index=False)
    qpath = quarantine_path(output)
    if len(quarantined):
        quarantined.to_csv(qpath, index=False, quoting=csv.QUOTE_ALL)  # raw values may hold \r or quotes
    else:
        qpath.unlink(missing_ok=True)
    report = IngestReport(
        rows_in=len(raw.frame) + len(raw.malformed),
        rows_out=len(coerced.rows),
        rows_quarantined=len(quarantined),
        output=output,
        quarantine=qpath if len(quarantined) else None,
        ignored_columns=[c for c in raw.frame.columns if c not in set(spec.required_columns)],
        mapped_categories=coerced.mapped_categories,
    )
    if report.rows_in != report.rows_out + report.rows_quarantined:
        raise AssertionError(f"ingest accounting broke: {report.to_dict()}")
    return report
