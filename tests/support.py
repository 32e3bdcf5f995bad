"""Driving the real `scoreloop` CLI and servers in subprocesses: what the integration tests and the benchmarks share.

Plain functions, no pytest, so a benchmark imports them without the test runner; the fixtures built on them live in
`tests/integration/conftest.py`.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from scoreloop.core.synthetic import EXTRA_COLUMNS


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MLflow/scoreloop settings (the home decides), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SCORELOOP_"))}
    return {**env, **extra}


def cli(
    home: Path, *args: str, check: bool = True, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real `scoreloop` CLI in a subprocess against `home` (`env` adds variables to a clean environment)."""
    result = subprocess.run(
        [sys.executable, "-m", "scoreloop", "--home", str(home), *args],
        env=clean_env(COLUMNS="200", **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"scoreloop {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def cli_on_terminal(home: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    """Run the real `scoreloop` CLI with its stdout and stderr on a pseudo-terminal, as from a user's shell (`env` as
    for `cli`); returns everything it wrote there (live redraws included), and fails on a non-zero exit."""
    main, child = pty.openpty()
    command = [sys.executable, "-m", "scoreloop", "--home", str(home), *args]
    env = clean_env(COLUMNS="200", TERM="xterm-256color", **(env or {}))
    process = subprocess.Popen(command, stdin=child, stdout=child, stderr=child, env=env, start_new_session=True)
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 1)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
    finally:
        os.close(main)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = b"".join(chunks).decode(errors="replace")
    if process.wait() != 0:
        raise AssertionError(f"scoreloop {' '.join(args)} failed on a terminal:\n{output[-3000:]}")
    return output


def train_home(home: Path, *generate: str, trials: int) -> Path:
    """Generate a messy export in `home` (`generate`: more `data generate` options), infer a spec without the CRM
    bookkeeping columns, ingest it to `leads.parquet`, train with `trials` trials and promote (the gate's baseline
    check relaxed); returns `home`."""
    export, spec, ingested = home / "export.csv", home / "spec.yaml", home / "leads.parquet"
    cli(home, "data", "generate", *generate, "--messy", "-o", str(export))
    excluded = [arg for column in EXTRA_COLUMNS for arg in ("--exclude", column)]
    cli(home, "spec", "infer", str(export), "--target", "converted", *excluded, "-o", str(spec))
    cli(home, "ingest", str(export), "--spec", str(spec), "-o", str(ingested))
    cli(home, "train", "--spec", str(spec), "--data", str(ingested), "--trials", str(trials))
    cli(home, "promote")
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_command(home: Path, port: int) -> list[str]:
    """`scoreloop serve` of `home`'s champion on a loopback `port`."""
    return [sys.executable, "-m", "scoreloop", "--home", str(home), "serve", "--port", str(port)]


def mlflow_server_command(backend_store_uri: str, folder: Path, port: int, *options: str) -> list[str]:
    """`mlflow server` on a loopback port with one worker, serving artifacts from `folder / "artifacts"`."""
    return [sys.executable, "-m", "mlflow", "server", *options, "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip


@contextmanager
def running(
    command: list[str],
    ready_url: str,
    log_path: Path,
    env: dict[str, str],
    timeout: float = 120,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Start `command` in its own process group, wait until `ready_url` answers 200, stop the group after; yields
    the process (its pid is the group's id)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"{command[:4]} exited {process.returncode}: {log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{command[:4]} not ready: {log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


class Receiver:
    """A webhook on loopback that answers `failures` 500s first, then 200s, and keeps what it received."""

    def __init__(self, failures: int = 0, header: str = "X-Scoreloop-Signature") -> None:
        self.received: list[tuple[bytes, str]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                ok = receiver.attempts > failures
                if ok:
                    receiver.received.append((body, self.headers[header]))
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
