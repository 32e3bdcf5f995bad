"""Batch scoring on Spark (`scoreloop score --engine spark`): the registered python_function over Arrow batches.

The driver reads DATA (CSV as text in the spec's delimiter, malformed lines kept; Parquet as stored), numbers the
records, and ships the registered version's model directory to the executors. Each Python worker loads it once as
MLflow's python_function (scoreloop's loader, `serving.pyfunc`) and scores the Arrow batches `mapInPandas` hands it,
so every value is read by the one engine and scored by `/score`'s path, as in-process `scoreloop score` does. Scored
rows go to OUTPUT, refused ones to OUTPUT's `.quarantine.csv` with their record number, reason and original values;
both are Spark datasets (a directory of part files: Parquet or CSV by OUTPUT's suffix). Rows in (counted on the
input first) must equal rows scored plus rows quarantined (counted on the scored rows both files are written from),
or the run fails.

Spark reads CSV line by line so that a file splits across executors: a record spanning lines (a quoted line break)
is quarantined as malformed rather than read as one; in-process scoring reads it whole.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scoreloop.core.coerce import input_fields
from scoreloop.core.ingest import LINE, RAW_LINE, REASON, RECORD, wrong_width
from scoreloop.core.model import ScoringModel
from scoreloop.core.tracking import download_model
from scoreloop.serving.batch import SCORED_SCHEMA, BatchReport, file_kind
from scoreloop.serving.pyfunc import REASON as PYFUNC_REASON

CORRUPT = "_corrupt"  # Spark's column for a CSV line that does not split into the header's fields
ROW_ID = "_row_id"  # Spark's monotonically increasing id: partition index << 33 | position in the partition
PARTITION_BITS = 33
RAW_PREFIX = "_raw:"  # the original values beside the scored fields, until the quarantine is written
SCORED_FIELDS = tuple(name for name in SCORED_SCHEMA.names if name not in ("model", "version"))  # added as constants


@contextmanager
def session(master: str | None, batch_rows: int) -> Iterator[Any]:
    """A Spark session for the block (`master`: local[2], spark://host:7077, yarn...; None: spark-submit's, or
    local[*]), with Arrow batches of `batch_rows` records. A local master runs its Python workers on this
    interpreter (unless PYSPARK_PYTHON says otherwise), where scoreloop is installed; a cluster's executors need
    scoreloop installed too."""
    from pyspark.sql import SparkSession

    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit: Spark's own default
        master = "local[*]"
    builder = SparkSession.builder.appName("scoreloop-score")
    if master:
        builder = builder.master(master)
    if master and master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # PySpark reads only this, when Python starts Spark
    spark = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows)).getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()


def read_input(spark, source: str, delimiter: str):
    """DATA as a Spark DataFrame: Parquet as stored; CSV as text (empty fields null, as the engine reads them),
    every line that does not split into the header's fields kept whole in CORRUPT."""
    if file_kind(Path(source)) == "parquet":
        return spark.read.parquet(source)
    from pyspark.sql.types import StringType, StructField, StructType

    options = {"header": True, "sep": delimiter, "quote": '"', "escape": '"', "mode": "PERMISSIVE"}
    header = [name.strip().lstrip("\ufeff") for name in spark.read.options(**options).csv(source).columns]
    schema = StructType([StructField(name, StringType()) for name in [*header, CORRUPT]])
    return spark.read.options(**options, columnNameOfCorruptRecord=CORRUPT).schema(schema).csv(source)


def score_with_spark(spark, model: ScoringModel, source: str, output: str) -> BatchReport:
    """Score `source` into `output` and its quarantine (local paths, or URIs every executor reaches: hdfs://,
    s3a://) through the registered version `model` names: the executors load the registry's files, never this
    process's objects."""
    from pyspark.sql import functions as F
    from pyspark.storagelevel import StorageLevel

    source, output = _location(source), _location(output)
    kind, qpath = file_kind(Path(output)), output.removesuffix(Path(output).suffix) + ".quarantine.csv"
    delimiter = model.spec.format.delimiter
    frame = read_input(spark, source, delimiter).withColumn(ROW_ID, F.monotonically_increasing_id())
    counts = frame.groupBy(F.shiftright(ROW_ID, PARTITION_BITS).alias("p")).count().collect()
    starts, rows_in = _record_starts({row["p"]: row["count"] for row in counts})  # one pass over the input
    raw_columns = [c for c in frame.columns if c not in (ROW_ID, CORRUPT)]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = download_model(model.name, model.version, Path(tmp))
        spark.sparkContext.addFile(str(model_dir), recursive=True)
        schema = _scored_schema(raw_columns)
        scorer = _batch_scorer(model_dir.name, starts, input_fields(model.spec), raw_columns, delimiter)
        scored = frame.mapInPandas(scorer, schema).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            refused = F.col(REASON).isNotNull()
            constants = [F.lit(model.name).alias("model"), F.lit(model.version).alias("version")]
            _write(scored.where(~refused).select(*SCORED_FIELDS, *constants), output, kind)
            originals = [F.col(f"`{RAW_PREFIX}{name}`").alias(name) for name in raw_columns]
            quarantine = scored.where(refused).select(RECORD, LINE, REASON, *originals, RAW_LINE)
            _write(quarantine, qpath, "csv")
            tally = {row[0]: row[1] for row in scored.groupBy(refused).count().collect()}
        finally:
            scored.unpersist()
    rows_scored, rows_quarantined = tally.get(False, 0), tally.get(True, 0)
    quarantined_to = qpath if rows_quarantined else None
    report = BatchReport(rows_in, rows_scored, rows_quarantined, output, quarantined_to, model.name, model.version, 0)
    if rows_in != rows_scored + rows_quarantined:
        raise AssertionError(f"Spark scoring accounting broke: {report.to_dict()}")
    return report


def _location(path: str | Path) -> str:
    """A URI as given; a local path made absolute (Spark resolves relative paths against its own default FS)."""
    return str(path) if "://" in str(path) else str(Path(path).resolve())


def _write(frame, path: str, kind: str) -> None:
    """A Spark dataset at `path` (replacing what is there): Parquet, or CSV with a header and every field quoted
    as in-process scoring writes it."""
    writer = frame.write.mode("overwrite")
    if kind == "parquet":
        writer.parquet(path)
    else:
        writer.options(header=True, quoteAll=True, escape='"').csv(path)


def _record_starts(counts: dict[int, int]) -> tuple[dict[int, int], int]:
    """Per partition, the 1-based record number of its first row (partitions follow the file's order), and the
    total."""
    starts, total = {}, 0
    for partition in sorted(counts):
        starts[partition] = total + 1
        total += counts[partition]
    return starts, total


def _scored_schema(raw_columns: list[str]):
    """What `mapInPandas` yields: the scored fields but model and version (constants, added after), the quarantine's
    fields, and the original values under RAW_PREFIX (a file may well have its own `score` column)."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    types = {RECORD: LongType(), "probability": DoubleType(), "score": LongType()}
    names = [*SCORED_FIELDS, LINE, REASON, RAW_LINE, *[RAW_PREFIX + name for name in raw_columns]]
    return StructType([StructField(name, types.get(name, StringType())) for name in names])


def _batch_scorer(model_dir: str, starts: dict[int, int], fields: list[str], raw_columns: list[str], delimiter: str):
    """The function `mapInPandas` runs on the executors (Spark pickles this closure: plain data and names only)."""

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import SparkFiles

        pyfunc = _load_pyfunc(SparkFiles.get(model_dir))
        for batch in batches:
            yield _score_batch(pyfunc, batch, starts, fields, raw_columns, delimiter)

    return score_batches


@cache
def _load_pyfunc(path: str):
    """Once per Python worker: the registered model as MLflow's python_function, from its shipped directory."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(path)


def _score_batch(
    pyfunc, batch: pd.DataFrame, starts: dict[int, int], fields: list[str], raw_columns: list[str], delimiter: str
) -> pd.DataFrame:
    """One Arrow batch through the pyfunc, with record numbers; a malformed line is refused whole. The original
    values are kept (as text) on refused rows only, for the quarantine."""
    batch = batch.reset_index(drop=True)
    row_id = batch[ROW_ID].to_numpy()
    first = pd.Series(row_id >> PARTITION_BITS).map(starts).to_numpy(dtype=np.int64)
    out = pyfunc.predict(batch[[name for name in fields if name in batch]]).rename(columns={PYFUNC_REASON: REASON})
    out.insert(0, RECORD, first + (row_id & ((1 << PARTITION_BITS) - 1)))
    out[LINE], out[RAW_LINE] = "", None
    malformed = batch[CORRUPT].notna() if CORRUPT in batch else pd.Series(False, index=batch.index)
    if malformed.any():
        out.loc[malformed, REASON] = [
            _field_count(line, len(raw_columns), delimiter) for line in batch[CORRUPT][malformed]
        ]
        out.loc[malformed, RAW_LINE] = batch[CORRUPT][malformed]
    kept = out[REASON].notna() & ~malformed
    originals = pd.DataFrame(None, index=out.index, columns=[RAW_PREFIX + name for name in raw_columns], dtype=object)
    if kept.any():
        originals.loc[kept] = batch.loc[kept, raw_columns].astype(object).fillna("").astype(str).to_numpy()
    return pd.concat([out[[*SCORED_FIELDS, LINE, REASON, RAW_LINE]], originals], axis=1)


def _field_count(line: str, expected: int, delimiter: str) -> str:
    """The in-process reader's reason for a line of the wrong width."""
    return wrong_width(expected, len(next(csv.reader([line], delimiter=delimiter), [])))
