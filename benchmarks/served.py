"""What the serving benchmarks share beyond `tests.support` (the CLI runner and servers the tests use too): a
trained home (on the synthetic leads or on a real table), the records to send, a server's memory, and a keep-alive
HTTP client with less overhead than httpx (so client cost does not hide server latency)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.tables import LOADERS
from scoreloop.core.spec import DatasetSpec
from tests.support import cli, train_home

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


def client_records(data: Path, spec: DatasetSpec, size: int) -> list[dict]:
    """The first `size` rows of a CSV or Parquet file as a client sends them: the spec's id and features (those the
    file has), missing values as null."""
    frame = pd.read_parquet(data) if data.suffix == ".parquet" else pd.read_csv(data, nrows=size)
    fields = [name for name in [*filter(None, [spec.id_column]), *spec.features] if name in frame]
    return json.loads(frame[fields].head(size).to_json(orient="records"))


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
