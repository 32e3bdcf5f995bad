"""Batch scoring engines on one model: in-process chunked `scoreloop score` against `--engine spark` on local[2].

    .venv/bin/python -m benchmarks.spark [--home HOME] [--rows 1000000 5000000] [--chunk-rows 50000]

Without --home it trains a small model in a temp home first (about a minute). The data: the synthetic lead world,
generated a million leads at a time and written to Parquet in a temp dir, typed as a warehouse stores them (numbers
as numbers, categories as text). Both engines score the same file to Parquet, side by side in one run: in-process
`serving.batch.score_file` (what `scoreloop score` runs) and `serving.spark.score_with_spark` on one local[2] session
(what `--engine spark` runs), whose start-up (once per command) is shown on its own line. rows/s is rows in over the
wall time; the outputs are compared row by row (largest probability difference).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.served import trained_home
from scoreloop.core.coerce import input_fields
from scoreloop.core.settings import Settings
from scoreloop.core.synthetic import WorldConfig, generate_leads
from scoreloop.core.tracking import load_registered
from scoreloop.serving.batch import score_file
from scoreloop.serving.spark import score_with_spark, session

PART = 1_000_000


def write_leads(path: Path, rows: int, fields: list[str]) -> None:
    """`rows` synthetic leads in Parquet, a million (one seed) at a time, ids unique across parts."""
    writer = None
    for seed, start in enumerate(range(0, rows, PART)):
        leads = generate_leads(WorldConfig(rows=min(PART, rows - start), seed=seed))
        leads["lead_id"] = [f"L{start + i:09d}" for i in range(len(leads))]
        table = pa.Table.from_pandas(leads[[f for f in fields if f in leads]], preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=100_000)
    if writer:
        writer.close()


def spark_output(path: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(path.glob("part-*"))], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="A home with a champion (default: train one in a temp home).")
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="In-process chunk and Spark Arrow batch size.")
    args = parser.parse_args()
    model = load_registered(Settings(home=trained_home(args.home, rows=20_000, trials=3)))
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        clock = time.perf_counter()
        with session("local[2]", args.chunk_rows) as spark:
            lines.append(("Spark local[2] session start", "", time.perf_counter() - clock, None, ""))
            for rows in args.rows:
                source = Path(tmp) / f"leads-{rows}.parquet"
                write_leads(source, rows, input_fields(model.spec))
                clock = time.perf_counter()
                local = score_file(model, source, Path(tmp) / f"local-{rows}.parquet", chunk_rows=args.chunk_rows)
                lines.append(("in-process, chunked", rows, time.perf_counter() - clock, local, ""))
                clock = time.perf_counter()
                remote = score_with_spark(spark, model, str(source), str(Path(tmp) / f"spark-{rows}.parquet"))
                seconds = time.perf_counter() - clock
                expected = pd.read_parquet(Path(tmp) / f"local-{rows}.parquet", columns=["_record", "probability"])
                got = spark_output(Path(tmp) / f"spark-{rows}.parquet").sort_values("_record", ignore_index=True)
                same = got["_record"].equals(expected["_record"])
                diff = np.abs(got["probability"] - expected["probability"]).max() if same else float("nan")
                lines.append(("Spark local[2], mapInPandas", rows, seconds, remote, f"{diff:.1e}"))
                source.unlink()
    print("| engine | rows | wall s | rows/s | scored | quarantined | max abs Δ probability vs in-process |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows, seconds, report, diff in lines:
        count = f"{rows:,}" if rows else ""
        rate = f"{rows / seconds:,.0f}" if rows else ""
        scored = f"{report.rows_scored:,} | {report.rows_quarantined:,}" if report else " | "
        print(f"| {name} | {count} | {seconds:.1f} | {rate} | {scored} | {diff} |")
    for rows in args.rows:
        local_s, spark_s = (s for _, r, s, _, _ in lines if r == rows)
        faster = "Spark" if spark_s < local_s else "in-process"
        print(f"{rows:,} rows: {faster} wins ({local_s / spark_s:.2f}x in-process time over Spark's job)")


if __name__ == "__main__":
    main()
