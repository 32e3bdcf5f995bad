"""Load: concurrent /score traffic on loopback for a bounded time and count, with the server's memory before and after.

    .venv/bin/python -m benchmarks.load [--home HOME] [--seconds 60] [--clients 8] [--batch 10] [--max-requests N]

Each client holds one keep-alive connection and sends the next request when the last is answered. Prints requests/s,
rows/s, p50/p99 latency, errors (any non-200 or transport failure) and the resident memory of the whole server
(main process and workers) at start, after a warm-up, and at the end: a flat line means no leak per request.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import pandas as pd

from benchmarks.served import START_TIMEOUT_S, Client, group_rss_mb, percentiles_ms, records_body, trained_home
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import load_registered
from tests.support import clean_env, free_port, running, serve_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="A home with a champion (default: train one in a temp home).")
    parser.add_argument("--seconds", type=float, default=60.0, help="How long the traffic lasts.")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent connections.")
    parser.add_argument("--batch", type=int, default=10, help="Records per request.")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="Stop after this many requests in all.")
    args = parser.parse_args()
    home = trained_home(args.home, rows=20_000, trials=3)
    spec = load_registered(Settings(home=home)).spec
    frame = pd.read_parquet(home / "leads.parquet")
    fields = [*filter(None, [spec.id_column]), *spec.features]
    records = json.loads(frame[fields].head(args.batch * 50).to_json(orient="records"))
    bodies = [records_body(records[i : i + args.batch]) for i in range(0, len(records), args.batch)]

    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    with running(serve_command(home, port), ready, home / "load-serve.log", clean_env(), START_TIMEOUT_S) as server:
        rss_start = group_rss_mb(server.pid)
        run_traffic(port, bodies, args.clients, seconds=min(5.0, args.seconds / 10), max_requests=args.max_requests)
        rss_warm = group_rss_mb(server.pid)
        result = run_traffic(port, bodies, args.clients, seconds=args.seconds, max_requests=args.max_requests)
        rss_end = group_rss_mb(server.pid)
    p50, p99 = percentiles_ms(result["latencies"]) if result["latencies"] else (float("nan"),) * 2
    wall = result["wall"]
    print("| seconds | clients | batch | requests | requests/s | rows/s | p50 ms | p99 ms | errors "
          "| RSS start MB | RSS after warm-up MB | RSS end MB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    count = len(result["latencies"])
    rate = count / wall
    figures = [
        f"{wall:.0f}",
        args.clients,
        args.batch,
        count,
        f"{rate:,.0f}",
        f"{rate * args.batch:,.0f}",
        f"{p50:.1f}",
        f"{p99:.1f}",
        result["errors"],
        f"{rss_start:.0f}",
        f"{rss_warm:.0f}",
        f"{rss_end:.0f}",
    ]
    print("| " + " | ".join(map(str, figures)) + " |")
    if result["errors"]:
        print(f"first errors: {result['samples']}")
        raise SystemExit(1)


def run_traffic(port: int, bodies: list[bytes], clients: int, *, seconds: float, max_requests: int) -> dict:
    """`clients` threads posting `bodies` round-robin until `seconds` pass or `max_requests` are sent in all."""
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
                status, answer = connection.post("/score", bodies[n % len(bodies)])
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
