"""What the serving benchmarks share beyond `tests.support` (the CLI runner and servers the tests use too): a
trained home (on the synthetic leads or on a real table), the records to send, a server's memory, and a keep-alive
HTTP client with less overhead than httpx (so client cost does not hide server latency)."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.tables import LOADERS
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from tests.support import clean_env, cli, free_port, running, train_home

START_TIMEOUT_S = 180  # seconds a server may take to answer its ready path on a loaded machine


def trained_home(home: Path | None, rows: int, trials: int) -> Path:
    """`home` as given, or a new temp home where `rows` messy leads were generated, ingested, trained on and
    promoted."""
    if home is not None:
        return home
    home = Path(tempfile.mkdtemp(prefix="scoreloop-bench-"))
    print(f"training a model in {home} ({rows} rows, {trials} trials) ...", file=sys.stderr)
    return train_home(home, "--rows", str(rows), "--seed", "7", trials=trials)


def table_home(name: str, trials: int) -> tuple[Path, Path]:
    """A new temp home trained on real table `name` (benchmarks/tables.py) as a user would: its raw rows written to
    CSV, the spec inferred, ingested, trained with `trials` trials and promoted; returns the home and the CSV."""
    table = LOADERS[name]()
    home = Path(tempfile.mkdtemp(prefix=f"scoreloop-bench-{name}-"))
    print(f"training a model on {table.source} in {home} ({trials} trials) ...", file=sys.stderr)
    export, spec, ingested = home / f"{name}.csv", home / "spec.yaml", home / "rows.parquet"
    table.frame.to_csv(export, index=False)
    cli(home, "spec", "infer", str(export), "--target", table.target, "--positive", table.positive_label,
        "-o", str(spec))  # fmt: skip
    cli(home, "ingest", str(export), "--spec", str(spec), "-o", str(ingested))
    cli(home, "train", "--spec", str(spec), "--data", str(ingested), "--trials", str(trials))
    cli(home, "promote")
    return home, export


def add_home_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the served model and the records sent to it (see `home_and_data`)."""
    parser.add_argument("--home", type=Path, help="A home with a champion (default: train one in a temp home).")
    parser.add_argument("--data", type=Path, help="Raw records to send, CSV or Parquet (default: HOME/leads.parquet).")
    parser.add_argument("--table", choices=sorted(LOADERS), help="Train a home on this real table and send its rows.")
    parser.add_argument("--trials", type=int, default=3, help="Trials when a home is trained here.")


def home_and_data(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, Path]:
    """The home to serve and the raw records to send: `--table` trains a home on that real table and sends its
    rows; otherwise `--home` (or a synthetic home trained here) and `--data` (or the home's `leads.parquet`)."""
    if args.table and (args.home or args.data):
        parser.error("--table trains its own home: give either --table or --home/--data")
    if args.table:
        return table_home(args.table, args.trials)
    home = trained_home(args.home, rows=20_000, trials=args.trials)
    return home, args.data or home / "leads.parquet"


def client_records(data: Path, spec: DatasetSpec, size: int) -> list[dict]:
    """The first `size` rows of a CSV or Parquet file as a client sends them: the spec's id and features (those the
    file has), missing values as null."""
    frame = pd.read_parquet(data) if data.suffix == ".parquet" else pd.read_csv(data, nrows=size)
    fields = [name for name in [*filter(None, [spec.id_column]), *spec.features] if name in frame]
    return json.loads(frame[fields].head(size).to_json(orient="records"))


@contextmanager
def mlflow_serving(settings: Settings, home: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """`mlflow models serve --env-manager local -w 1` of the champion on a free loopback port: (port, process)."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{settings.model_name}@champion",
               "--env-manager", "local", "-p", str(port), "-w", "1"]  # fmt: skip
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # --env-manager local runs uvicorn from PATH
    env = clean_env(MLFLOW_TRACKING_URI=settings.tracking_uri, PATH=path)
    with running(command, f"http://127.0.0.1:{port}/health", home / "bench-mlflow.log", env, START_TIMEOUT_S) as server:
        yield port, server


def mlflow_body(records: list[dict]) -> bytes:
    """The records as MLflow's scoring server takes them: raw values, one object per record, as /score gets them."""
    return json.dumps({"dataframe_records": records}).encode()


def group_rss_mb(group: int) -> float:
    """Resident memory of every process in a process group (the server and its workers), in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


class Client:
    """One keep-alive connection posting JSON bodies; returns (status, body)."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.connection.connect()
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        self.connection.request("POST", path, body, {"content-type": content_type})
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def records_body(records: list[dict]) -> bytes:
    return json.dumps({"records": records}).encode()


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 of latencies given in seconds, in milliseconds."""
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return float(p50), float(p99)
