"""What the serving benchmarks share: a trained home, a server started in its own process group, its memory, and a
keep-alive HTTP client with less overhead than httpx (so client cost does not hide server latency)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

NOT_FEATURES = ("owner_email", "notes", "crm_internal_id")


def cli(home: Path, *args: str) -> None:
    """Run the real `scoreloop` CLI against `home`; fail loudly with its output."""
    command = [sys.executable, "-m", "scoreloop", "--home", str(home), *args]
    result = subprocess.run(command, env=server_env(), capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def server_env(**extra: str) -> dict[str, str]:
    """This environment without MLflow/scoreloop settings (the home decides), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SCORELOOP_"))}
    return {**env, **extra}


def trained_home(home: Path | None, rows: int, trials: int) -> Path:
    """`home` as given, or a new temp home where a messy export was generated, ingested, trained on and promoted."""
    if home is not None:
        return home
    home = Path(tempfile.mkdtemp(prefix="scoreloop-bench-"))
    export, spec, leads = home / "export.csv", home / "spec.yaml", home / "leads.parquet"
    print(f"training a model in {home} ({rows} rows, {trials} trials) ...", file=sys.stderr)
    cli(home, "data", "generate", "--rows", str(rows), "--seed", "7", "--messy", "-o", str(export))
    excluded = [arg for column in NOT_FEATURES for arg in ("--exclude", column)]
    cli(home, "spec", "infer", str(export), "--target", "converted", *excluded, "-o", str(spec))
    cli(home, "ingest", str(export), "--spec", str(spec), "-o", str(leads))
    cli(home, "train", "--spec", str(spec), "--data", str(leads), "--trials", str(trials))
    cli(home, "promote")
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def started(command: list[str], port: int, ready_path: str, env: dict[str, str], log: Path) -> Iterator[int]:
    """Run `command` in its own process group until `ready_path` answers 200; yields the group id; stops it after."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not _answers(port, ready_path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(command[:5])} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _answers(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False


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
