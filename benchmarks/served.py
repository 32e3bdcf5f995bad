"""What the serving benchmarks share beyond `tests.support` (the CLI runner and servers the tests use too): a
trained home, a server's memory, and a keep-alive HTTP client with less overhead than httpx (so client cost does not
hide server latency)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.support import train_home

START_TIMEOUT_S = 180  # seconds a server may take to answer its ready path on a loaded machine


def trained_home(home: Path | None, rows: int, trials: int) -> Path:
    """`home` as given, or a new temp home where `rows` messy leads were generated, ingested, trained on and
    promoted."""
    if home is not None:
        return home
    home = Path(tempfile.mkdtemp(prefix="scoreloop-bench-"))
    print(f"training a model in {home} ({rows} rows, {trials} trials) ...", file=sys.stderr)
    return train_home(home, "--rows", str(rows), "--seed", "7", trials=trials)


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
