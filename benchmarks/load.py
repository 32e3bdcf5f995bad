"""Load: concurrent scoring traffic on loopback for a bounded time and count, against scoreloop's `/score` and against
`mlflow models serve` of the same registered version (its python_function model), side by side, with each server's
memory before and after.

    .venv/bin/python -m benchmarks.load [--home HOME --data FILE | --table resumes] [--seconds 60] [--clients 8]
        [--batches 1,10] [--max-requests N]

Each client holds one keep-alive connection and sends the next request when the last is answered; both servers get
the same raw records (`{"records": [...]}` for /score, `{"dataframe_records": [...]}` for MLflow), one worker each.
Prints requests/s, rows/s, p50/p99 latency, errors (any non-200 or transport failure) and the resident memory of
the whole server (main process and workers) at start, after a warm-up, and at the end: a flat line means no leak per
request. The home and records are chosen as in `benchmarks.serving`.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from benchmarks.served import (
    START_TIMEOUT_S,
    Client,
    add_home_arguments,
    client_records,
    group_rss_mb,
    home_and_data,
    mlflow_body,
    mlflow_serving,
    percentiles_ms,
    records_body,
)
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import load_registered
from tests.support import clean_env, free_port, running, serve_command

BENTOML, MLFLOW = "bentoml /score", "mlflow models serve"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_home_arguments(parser)
    parser.add_argument("--seconds", type=float, default=60.0, help="How long the traffic lasts, per server and batch.")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent connections.")
    parser.add_argument("--batches", default="1,10", help="Records per request, comma-separated.")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="Stop after this many requests in all.")
    args = parser.parse_args()
    home, data = home_and_data(parser, args)
    settings = Settings(home=home)
    batches = [int(size) for size in args.batches.split(",")]
    records = client_records(data, load_registered(settings).spec, max(batches) * 50)
    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    results = []
    with running(serve_command(home, port), ready, home / "load-serve.log", clean_env(), START_TIMEOUT_S) as server:
        results += [load(BENTOML, port, "/score", records_body, records, batch, server.pid, args) for batch in batches]
    with mlflow_serving(settings, home) as (port, server):
        results += [
            load(MLFLOW, port, "/invocations", mlflow_body, records, batch, server.pid, args) for batch in batches
        ]
    print_table(results, args.clients)
    if failed := [result for result in results if result["errors"]]:
        for result in failed:
            print(f"{result['server']} at batch {result['batch']}, first errors: {result['samples']}")
        raise SystemExit(1)


def load(
    server: str,
    port: int,
    route: str,
    encode: Callable[[list[dict]], bytes],
    records: list[dict],
    batch: int,
    group: int,
    args: argparse.Namespace,
) -> dict:
    """A warm-up, then `args.seconds` of traffic at `batch` records per request, with the server's memory."""
    bodies = [encode(records[i : i + batch]) for i in range(0, len(records), batch)]
    rss_start = group_rss_mb(group)
    warm = min(5.0, args.seconds / 10)
    run_traffic(port, route, bodies, args.clients, seconds=warm, max_requests=args.max_requests)
    rss_warm = group_rss_mb(group)
    result = run_traffic(port, route, bodies, args.clients, seconds=args.seconds, max_requests=args.max_requests)
    return {**result, "server": server, "batch": batch, "rss": (rss_start, rss_warm, group_rss_mb(group))}


def print_table(results: list[dict], clients: int) -> None:
    """One markdown table, a row per server and batch; /score's requests/s over MLflow's at the same batch."""
    rates = {(r["server"], r["batch"]): len(r["latencies"]) / r["wall"] for r in results}
    print("| server | seconds | clients | batch | requests | requests/s | rows/s | p50 ms | p99 ms | errors "
          "| RSS start MB | RSS after warm-up MB | RSS end MB | vs mlflow |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        rate = rates[(result["server"], result["batch"])]
        p50, p99 = percentiles_ms(result["latencies"]) if result["latencies"] else (float("nan"),) * 2
        versus = rate / rates[(MLFLOW, result["batch"])] if rates.get((MLFLOW, result["batch"])) else float("nan")
        figures = [result["server"], f"{result['wall']:.0f}", clients, result["batch"], len(result["latencies"]),
                   f"{rate:,.0f}", f"{rate * result['batch']:,.0f}", f"{p50:.1f}", f"{p99:.1f}", result["errors"],
                   *(f"{mb:.0f}" for mb in result["rss"]), f"{versus:.1f}x"]  # fmt: skip
        print("| " + " | ".join(map(str, figures)) + " |")


def run_traffic(port: int, route: str, bodies: list[bytes], clients: int, *, seconds: float, max_requests: int) -> dict:
    """`clients` threads posting `bodies` to `route` round-robin until `seconds` pass or `max_requests` are sent in
    all."""
    latencies: list[float] = []
    samples: list[str] = []
    errors = 0
    sent = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        nonlocal errors, sent
        connection = Client(port)
        n = offset
        while time.monotonic() < deadline:
            with lock:
                if sent >= max_requests:
                    break
                sent += 1
            began = time.perf_counter()
            try:
                status, answer = connection.post(route, bodies[n % len(bodies)])
            except OSError as exc:
                status, answer = 0, repr(exc).encode()
                connection = Client(port)
            elapsed = time.perf_counter() - began
            with lock:
                if status == 200:
                    latencies.append(elapsed)
                else:
                    errors += 1
                    if len(samples) < 3:
                        samples.append(f"{status}: {answer[:200]!r}")
            n += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "errors": errors, "samples": samples, "wall": time.perf_counter() - start}


if __name__ == "__main__":
    main()
