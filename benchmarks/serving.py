"""Serving speed, one command, one model: raw in-process CatBoost, the served /score at batch 1/100/1000 (and
/score/columns and /score/arrow at 1000; /score again with `SCORELOOP_SERVE__LOG_ACK=committed`, answering only after
the scoring log's commit), a no-op BentoML route given the same Arrow body (the floor), and `mlflow models serve
--env-manager local` on the same registered version; then where a /score and a /score/arrow call spend their time.

    .venv/bin/python -m benchmarks.serving [--home HOME --data FILE | --table resumes] [--requests 2000] [--single]

Runs on any trained home: `--home` with a champion, `--data` a CSV or Parquet file of raw records to send (the spec's
id and features that the file has; default: the home's `leads.parquet`, as the demo and `train_home` write it).
`--table NAME` trains a home on a real table of benchmarks/tables.py first and sends its raw rows; with neither, a
small synthetic model is trained in a temp home (about a minute). Latencies are measured one request at a time on one
keep-alive connection (p50/p99); rows/s is rows scored divided by the wall time of those requests.
`--single` measures only one record per request (`measure_single`) and prints that call's two bounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic_core import from_json

from benchmarks.served import (
    START_TIMEOUT_S,
    Client,
    add_home_arguments,
    client_records,
    home_and_data,
    mlflow_body,
    mlflow_serving,
    percentiles_ms,
    records_body,
)
from scoreloop.core.coerce import field_counts
from scoreloop.core.model import model_frame
from scoreloop.core.settings import Settings
from scoreloop.core.store import ipc_bytes
from scoreloop.core.tracking import load_registered
from scoreloop.serving.arrow import ARROW_STREAM, arrow_bytes, read_arrow
from scoreloop.serving.jsonbody import records_reader
from scoreloop.serving.schema import check_records
from scoreloop.serving.scorelog import scored_batch
from scoreloop.serving.scoring import records_json, score_rows
from tests.support import clean_env, free_port, running, serve_command

BATCHES = (1, 100, 1000)
FLOOR = "no-op BentoML route (floor)"
API_FLOOR = "no-op batchable BentoML API (floor)"
MLFLOW = "mlflow models serve"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_home_arguments(parser)
    parser.add_argument("--requests", type=int, default=2000, help="Requests at batch 1 (fewer at larger batches).")
    parser.add_argument("--single", action="store_true", help="Only the single-record figures and their bound.")
    args = parser.parse_args()
    home, data = home_and_data(parser, args)
    settings = Settings(home=home)
    model = load_registered(settings)
    records = client_records(data, model.spec, max(BATCHES))
    if len(records) < max(BATCHES):
        parser.error(f"{data} has {len(records)} rows; the benchmark sends {max(BATCHES)} at a time")
    print(f"model {model.name} v{model.version}: {len(model.spec.numeric)} numeric, {len(model.spec.categorical)} "
          f"categorical, {len(model.spec.text)} text features; records from {data}", file=sys.stderr)  # fmt: skip
    counts = {size: max(20, int(args.requests / size**0.5)) for size in BATCHES}
    if args.single:
        measure_single(home, model, records, args.requests)
        return

    rows = [measure_raw(model, records, size, max(counts[size], 1000)) for size in BATCHES]  # cheap: more calls
    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    with running(serve_command(home, port), ready, home / "bench-serve.log", clean_env(), START_TIMEOUT_S):
        for size in BATCHES:
            body = records_body(records[:size])
            rows.append(measure_http("bentoml /score", port, "/score", body, size, counts[size]))
        columns = json.dumps({"columns": {name: [r[name] for r in records] for name in records[0]}}).encode()
        rows.append(measure_http("bentoml /score/columns", port, "/score/columns", columns, 1000, counts[1000]))
        arrow = ipc_bytes(pa.Table.from_pandas(pd.DataFrame(records), preserve_index=False))  # as a pandas client
        rows.append(measure_http("bentoml /score/arrow", port, "/score/arrow", arrow, 1000, counts[1000], ARROW_STREAM))
    port = free_port()  # the scoring log's commit on every request's path (SCORELOOP_SERVE__LOG_ACK=committed)
    committed = clean_env(SCORELOOP_SERVE__LOG_ACK="committed")
    with running(serve_command(home, port), f"http://127.0.0.1:{port}/readyz", home / "bench-ack.log", committed):
        for size in BATCHES:
            body = records_body(records[:size])
            rows.append(measure_http("bentoml /score, ack after commit", port, "/score", body, size, counts[size]))
    with noop_serving(home) as noop_port:
        rows.append(measure_http(FLOOR, noop_port, "/noop", arrow, 1000, counts[1000], ARROW_STREAM))
    with mlflow_serving(settings, home) as (mlflow_port, _):
        for size in BATCHES:
            body = mlflow_body(records[:size])
            rows.append(measure_http(MLFLOW, mlflow_port, "/invocations", body, size, counts[size]))
    print_table(rows)
    print_breakdown(model, records, arrow, rows)


def measure_single(home: Path, model, records: list[dict], count: int) -> None:
    """One record per request: raw, /score as served (scored on the event loop), /score with every call handed to a
    worker thread (`SCORELOOP_SERVE__INLINE_RECORDS=0`, as before), the no-op route given that record, the no-op
    batchable API given the same JSON body as /score; then two bounds: each floor's p50 plus scoreloop's in-process
    steps for that record (the API's is BentoML's own path for a `/score` call, which the route skips)."""
    rows, body = [measure_raw(model, records, 1, max(count, 1000))], records_body(records[:1])
    for name, extra in (("bentoml /score", {}), ("bentoml /score, on a worker thread", {"INLINE_RECORDS": "0"})):
        port, env = free_port(), clean_env(**{f"SCORELOOP_SERVE__{key}": value for key, value in extra.items()})
        with running(serve_command(home, port), f"http://127.0.0.1:{port}/readyz", home / "bench-serve.log", env):
            rows.append(measure_http(name, port, "/score", body, 1, count))
    arrow = ipc_bytes(pa.Table.from_pandas(pd.DataFrame(records[:1]), preserve_index=False))
    with noop_serving(home) as port:
        rows.append(measure_http(FLOOR, port, "/noop", arrow, 1, count, ARROW_STREAM))
        rows.append(measure_http(API_FLOOR, port, "/noop_api", body, 1, count))
    print_table(rows)
    steps = in_process_steps(model, records[:1])
    print("\nin-process steps of one /score call with 1 record (median of 50):\n| step | ms |\n|---|---:|")
    for name, ms in steps.items():
        print(f"| {name} | {ms:.2f} |")
    work, served = sum(steps.values()), rows[1]["p50_ms"]
    for name, floor in ((FLOOR, rows[-2]["p50_ms"]), (API_FLOOR, rows[-1]["p50_ms"])):
        print(f"single record: in-process steps {work:.2f} ms + the {name}'s p50 {floor:.2f} ms = {work + floor:.2f} "
              f"ms at best (served p50 {served:.2f} ms)")  # fmt: skip


@contextmanager
def noop_serving(home: Path) -> Iterator[int]:
    """`benchmarks/noop_service.py` served by BentoML on a free loopback port."""
    port = free_port()
    noop = [sys.executable, "-m", "bentoml", "serve", "benchmarks.noop_service:Noop", "--port", str(port),
            "--working-dir", str(Path(__file__).resolve().parent.parent)]  # fmt: skip
    ready, env = f"http://127.0.0.1:{port}/readyz", clean_env(BENTOML_HOME=str(home / "bentoml"))
    with running(noop, ready, home / "bench-noop.log", env, START_TIMEOUT_S):
        yield port


def measure_raw(model, records: list[dict], size: int, count: int) -> dict:
    """`predict_proba` on a ready model frame of the records: the ceiling any served path is measured against."""
    ready = model_frame(pd.DataFrame(check_records(records[:size], model.spec, size)), model.spec)
    return timed("raw predict_proba", size, count, lambda: model.classifier.predict_proba(ready))


def measure_http(
    path_name: str, port: int, route: str, body: bytes, size: int, count: int, content_type: str = "application/json"
) -> dict:
    client = Client(port)

    def call() -> None:
        status, answer = client.post(route, body, content_type)
        if status != 200:
            raise SystemExit(f"{path_name} {route} answered {status}: {answer[:300]!r}")

    try:
        return timed(path_name, size, count, call)
    finally:
        client.close()


def timed(name: str, size: int, count: int, call: Callable[[], object]) -> dict:
    for _ in range(min(20, count)):  # warm-up: connections, caches, lazy imports
        call()
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    wall = time.perf_counter() - start
    p50, p99 = percentiles_ms(latencies)
    return {"path": name, "batch": size, "requests": count, "p50_ms": p50, "p99_ms": p99, "rows_s": size * count / wall}


def print_table(rows: list[dict]) -> None:
    """One markdown table; ratios against raw in-process and against mlflow models serve at the same batch."""
    by = {(row["path"], row["batch"]): row["rows_s"] for row in rows}
    print("| path | batch | requests | p50 ms | p99 ms | rows/s | vs raw | bentoml vs mlflow |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        raw = by[("raw predict_proba", row["batch"])]
        versus = ""
        if row["path"].startswith("bentoml") and (MLFLOW, row["batch"]) in by:
            versus = f"{row['rows_s'] / by[(MLFLOW, row['batch'])]:.1f}x"
        print(f"| {row['path']} | {row['batch']} | {row['requests']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
              f"| {row['rows_s']:,.0f} | {row['rows_s'] / raw:.0%} | {versus} |")  # fmt: skip


def print_breakdown(model, records: list[dict], arrow: bytes, rows: list[dict]) -> None:
    """Where a 1,000-record call spends its time inside the service, step by step (median of 50 runs), for /score
    (JSON, with the pydantic path that names a refused body's problems beside it) and /score/arrow; then the floor
    plus each door's steps against the raw predict_proba."""
    body = records_body(records)
    read_json, scored, shared = json_steps_for(model, records)
    json_steps: dict[str, Callable[[], object]] = {
        "decoding + validation + coercion (records_reader: msgspec, read_columns)": lambda: read_json(body),
        **shared,
        "response encoding (records_json: msgspec)": lambda: records_json(scored),
    }
    arrow_steps: dict[str, Callable[[], object]] = {
        "decoding + validation + coercion (read_arrow)": lambda: read_arrow(arrow, model.spec, len(records)),
        **shared,
        "response encoding (arrow_bytes)": lambda: arrow_bytes(scored),
    }
    medians = {}
    for route, steps in (("/score", json_steps), ("/score/arrow", arrow_steps)):
        medians[route] = {name: median_ms(step) for name, step in steps.items()}
        print(f"\nin-process steps of one {route} call with {len(records)} records (median of 50):")
        print("| step | ms |")
        print("|---|---:|")
        for name, ms in medians[route].items():
            print(f"| {name} | {ms:.2f} |")
    pydantic = median_ms(lambda: check_records(from_json(body)["records"], model.spec, len(records)))
    print(f"\nthe pydantic path a refused /score body is re-read by (from_json + check_records): {pydantic:.2f} ms")
    by = {(row["path"], row["batch"]): row for row in rows}
    floor, raw = by[(FLOOR, 1000)]["p50_ms"], by[("raw predict_proba", 1000)]["p50_ms"]  # a stall moves no median
    for route in medians:
        best = sum(medians[route].values()) + floor
        print(f"{route}'s in-process steps {best - floor:.2f} ms + the no-op route's p50 {floor:.2f} ms = {best:.2f} "
              f"ms per 1,000 records at best: {raw / best:.0%} of raw predict_proba (p50 {raw:.2f} ms)")  # fmt: skip


def json_steps_for(model, records: list[dict]) -> tuple[Callable, np.ndarray, dict[str, Callable]]:
    """The JSON reader, the records' scored fields, and the steps every door shares, ready to time."""
    read_json = records_reader(model.spec, len(records))
    checked = read_json(records_body(records))["records"]
    scored = score_rows(model, checked)
    shared: dict[str, Callable[[], object]] = {
        "pool + predict_proba + score + tier (score_rows)": lambda: score_rows(model, checked),
        "missing/unseen counts for /metrics (field_counts)": lambda: field_counts(checked, model.spec),
        "scoring-log row (ScoredBatch.as_row)": lambda: scored_batch(model.spec, checked, scored).as_row(),
    }
    return read_json, scored, shared


def in_process_steps(model, records: list[dict]) -> dict[str, float]:
    """Median ms of each in-process step of one /score call with these records."""
    body = records_body(records)
    read_json, scored, shared = json_steps_for(model, records)
    steps = {"decoding + validation + coercion (records_reader)": lambda: read_json(body), **shared,
             "response encoding (records_json)": lambda: records_json(scored)}  # fmt: skip
    return {name: median_ms(step) for name, step in steps.items()}


def median_ms(step: Callable[[], object]) -> float:
    times = []
    for _ in range(50):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return float(np.median(times)) * 1000


if __name__ == "__main__":
    main()
