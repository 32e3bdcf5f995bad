"""Serving speed, one command, one model: raw in-process CatBoost, the served /score at batch 1/100/1000 (and
/score/columns and /score/arrow at 1000; /score again with `SCORELOOP_SERVE__LOG_ACK=committed`, answering only after
the scoring log's commit), a no-op BentoML route given the same Arrow body (the floor), and `mlflow models serve
--env-manager local` on the same registered version; then where a /score and a /score/arrow call spend their time.

    .venv/bin/python -m benchmarks.serving [--home HOME] [--requests 2000]

Without --home it trains a small model in a temp home first (about a minute). Latencies are measured one request at a
time on one keep-alive connection (p50/p99); rows/s is rows scored divided by the wall time of those requests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.served import START_TIMEOUT_S, Client, percentiles_ms, records_body, trained_home
from scoreloop.core.coerce import field_counts
from scoreloop.core.model import model_frame
from scoreloop.core.settings import Settings
from scoreloop.core.store import ipc_bytes
from scoreloop.core.tracking import load_registered
from scoreloop.serving.arrow import ARROW_STREAM, arrow_bytes, read_arrow
from scoreloop.serving.schema import check_records
from scoreloop.serving.scorelog import scored_batch
from scoreloop.serving.scoring import model_pool, records_json, score_rows
from tests.support import clean_env, free_port, running, serve_command

BATCHES = (1, 100, 1000)
FLOOR = "no-op BentoML route (floor)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="A home with a champion (default: train one in a temp home).")
    parser.add_argument("--requests", type=int, default=2000, help="Requests at batch 1 (fewer at larger batches).")
    args = parser.parse_args()
    home = trained_home(args.home, rows=20_000, trials=3)
    settings = Settings(home=home)
    model = load_registered(settings)
    frame = pd.read_parquet(home / "leads.parquet").head(max(BATCHES))
    fields = [*filter(None, [model.spec.id_column]), *model.spec.features]
    records = json.loads(frame[fields].to_json(orient="records"))  # NaN -> null, as a client sends it
    counts = {size: max(20, int(args.requests / size**0.5)) for size in BATCHES}

    rows = [measure_raw(model, frame, size, max(counts[size], 1000)) for size in BATCHES]  # cheap: more calls
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
    noop_port = free_port()
    noop = [sys.executable, "-m", "bentoml", "serve", "benchmarks.noop_service:Noop", "--port", str(noop_port),
            "--working-dir", str(Path(__file__).resolve().parent.parent)]  # fmt: skip
    ready, noop_env = f"http://127.0.0.1:{noop_port}/readyz", clean_env(BENTOML_HOME=str(home / "bentoml"))
    with running(noop, ready, home / "bench-noop.log", noop_env, START_TIMEOUT_S):
        rows.append(measure_http(FLOOR, noop_port, "/noop", arrow, 1000, counts[1000], ARROW_STREAM))
    mlflow_port = free_port()
    mlflow_serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{settings.model_name}@champion",
                    "--env-manager", "local", "-p", str(mlflow_port), "-w", "1"]  # fmt: skip
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # --env-manager local runs uvicorn from PATH
    env = clean_env(MLFLOW_TRACKING_URI=settings.tracking_uri, PATH=path)
    ready = f"http://127.0.0.1:{mlflow_port}/health"
    with running(mlflow_serve, ready, home / "bench-mlflow.log", env, START_TIMEOUT_S):
        for size in BATCHES:
            body = mlflow_body(model_frame(frame.head(size), model.spec))
            rows.append(measure_http("mlflow models serve", mlflow_port, "/invocations", body, size, counts[size]))
    print_table(rows)
    print_breakdown(model, records, arrow, rows)


def measure_raw(model, frame: pd.DataFrame, size: int, count: int) -> dict:
    """`predict_proba` on a ready model frame: the ceiling any served path is measured against."""
    ready = model_frame(frame.head(size), model.spec)
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


def mlflow_body(frame: pd.DataFrame) -> bytes:
    split = json.loads(frame.to_json(orient="split", index=False))
    return json.dumps({"dataframe_split": split}).encode()


def print_table(rows: list[dict]) -> None:
    """One markdown table; ratios against raw in-process and against mlflow models serve at the same batch."""
    by = {(row["path"], row["batch"]): row["rows_s"] for row in rows}
    print("| path | batch | requests | p50 ms | p99 ms | rows/s | vs raw | bentoml vs mlflow |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        raw = by[("raw predict_proba", row["batch"])]
        versus = ""
        if row["path"].startswith("bentoml"):
            versus = f"{row['rows_s'] / by[('mlflow models serve', row['batch'])]:.1f}x"
        print(f"| {row['path']} | {row['batch']} | {row['requests']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
              f"| {row['rows_s']:,.0f} | {row['rows_s'] / raw:.0%} | {versus} |")  # fmt: skip


def print_breakdown(model, records: list[dict], arrow: bytes, rows: list[dict]) -> None:
    """Where a 1,000-record call spends its time inside the service, step by step (median of 50 runs), for /score
    (JSON) and /score/arrow; then the floor plus /score/arrow's steps against the raw predict_proba."""
    body = records_body(records)
    checked = check_records(records, model.spec, len(records))
    pool = model_pool(checked, model.spec)
    scored = score_rows(model, checked)
    json_steps: dict[str, Callable[[], object]] = {
        "JSON decoding": lambda: json.loads(body),
        "validation + coercion (check_records)": lambda: check_records(records, model.spec, len(records)),
        "CatBoost pool building": lambda: model_pool(checked, model.spec),
        "predict_proba": lambda: model.classifier.predict_proba(pool),
        "score + tier (score_rows, incl. the two above)": lambda: score_rows(model, checked),
        "response encoding": lambda: records_json(scored),
    }
    arrow_steps: dict[str, Callable[[], object]] = {
        "decoding + validation + coercion (read_arrow)": lambda: read_arrow(arrow, model.spec, len(records)),
        "pool + predict_proba + score + tier (score_rows)": lambda: score_rows(model, checked),
        "missing/unseen counts for /metrics (field_counts)": lambda: field_counts(checked, model.spec),
        "scoring-log row (ScoredBatch.as_row)": lambda: scored_batch(model.spec, checked, scored).as_row(),
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
    work = sum(medians["/score/arrow"].values())
    by = {(row["path"], row["batch"]): row for row in rows}
    floor, raw = by[(FLOOR, 1000)]["p50_ms"], by[("raw predict_proba", 1000)]["p50_ms"]  # a stall moves no median
    best = work + floor
    print(f"\n/score/arrow's in-process steps {work:.2f} ms + the no-op route's p50 {floor:.2f} ms = {best:.2f} ms per "
          f"1,000 records at best: {raw / best:.0%} of raw predict_proba (p50 {raw:.2f} ms)")  # fmt: skip


def median_ms(step: Callable[[], object]) -> float:
    times = []
    for _ in range(50):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return float(np.median(times)) * 1000


if __name__ == "__main__":
    main()
