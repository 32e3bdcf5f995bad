"""The record store failing under a real `bentoml serve` with traffic: deleted, read-only, locked, and a PostgreSQL
store that cannot be reached (with `SCORELOOP_TEST_PG`, as the team-mode tests). The service
answers 503 (with Retry-After) instead of acknowledging what it could not keep, goes unready, counts it, and
recovers by itself when the store is back; no acknowledged outcome or scored record is lost. At start, a store that
takes no writes is one line and a non-zero exit; a stalled body is a 408; with `log_ack=committed` a SIGKILL under
/score traffic loses nothing acknowledged."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil
import pytest

from scoreloop.core.store import RecordStore
from tests.support import clean_env, cli, free_port, running, serve_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faulty(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server of the trained champion on a record store of its own; yields its URL and the store's file."""
    folder = tmp_path_factory.mktemp("faults")
    store = folder / "records.db"
    env = clean_env(SCORELOOP_STORE_URL=f"sqlite:///{store}", SCORELOOP_SERVE__BODY_SECONDS="2")
    url = f"http://127.0.0.1:{(port := free_port())}"
    with running(serve_command(trained_home, port), f"{url}/readyz", folder / "serve.log", env):
        yield url, store


class Traffic:
    """/feedback and /score calls with unique ids from a thread; which ids were acknowledged, which statuses seen."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.outcomes: list[str] = []
        self.scored: list[str] = []
        self.statuses: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            ids = [f"{self.name}-{n}-{i}" for i in range(3)]
            body = {"outcomes": [{"id": i, "converted": True} for i in ids]}
            self._call("/feedback", body, ids, self.outcomes)
            self._call("/score", {"records": [{"lead_id": i} for i in ids]}, ids, self.scored)
            time.sleep(0.02)

    def _call(self, route: str, body: dict, ids: list[str], acknowledged: list[str]) -> None:
        status = httpx.post(f"{self.url}{route}", json=body, timeout=30).status_code
        self.statuses.add(status)
        if status == 200:
            acknowledged.extend(ids)

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(60)


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=10).status_code == 200


def writable_gauge(url: str) -> float:
    lines = httpx.get(f"{url}/metrics", timeout=10).text.splitlines()
    return next(float(line.split()[-1]) for line in lines if line.startswith("scoreloop_store_writable"))


@contextmanager
def deleted(store: Path) -> Iterator[None]:
    moved = store.with_name("moved-away.db")
    store.rename(moved)  # gone from its path; put back below
    yield
    moved.rename(store)


@contextmanager
def read_only(store: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", str(store)], check=True)  # root ignores file modes; not an immutable file
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=True)


@contextmanager
def locked(store: Path) -> Iterator[None]:
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    yield
    holder.execute("ROLLBACK")
    holder.close()


FAULTS = {"deleted": deleted, "read-only": read_only, "locked": locked}


def refused_then_recovered(url: str, traffic: Traffic, fault: AbstractContextManager) -> None:
    """Under `traffic`: while `fault` lasts the service is not ready, refuses writes with a 503 and Retry-After and
    says so on /metrics; after it, it is ready and acknowledging again, without a restart."""
    assert wait_for(lambda: len(traffic.outcomes) >= 30 and len(traffic.scored) >= 30)
    with fault:
        assert wait_for(lambda: not ready(url), seconds=15), "/readyz stayed ready"
        refused = httpx.post(f"{url}/feedback", json={"outcomes": [{"id": "r", "converted": True}]}, timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert httpx.post(f"{url}/score", json={"records": [{"lead_id": "r"}]}, timeout=30).status_code == 503
        assert writable_gauge(url) == 0
        during = len(traffic.outcomes)
    assert wait_for(lambda: ready(url), seconds=15), "/readyz did not come back"
    assert wait_for(lambda: len(traffic.outcomes) > during + 30), "feedback did not recover"
    assert writable_gauge(url) == 1


def nothing_acknowledged_lost(traffic: Traffic, store: RecordStore) -> None:
    assert 503 in traffic.statuses and not {s for s in traffic.statuses if s >= 500} - {503}
    assert not set(traffic.outcomes) - set(store.outcomes()["record_id"]), "acknowledged outcomes lost"
    logged = lambda: set(store.scores(features=False)["record_id"])  # noqa: E731 - the log is written off the path
    assert wait_for(lambda: not set(traffic.scored) - logged()), "acknowledged scored records lost"


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_store_is_a_503_not_a_loss_and_the_service_recovers(faulty: tuple[str, Path], fault: str) -> None:
    if fault == "read-only" and shutil.which("chattr") is None:
        pytest.skip("chattr is needed to make a file read-only for root")
    url, store = faulty
    with Traffic(url, fault).running() as traffic:
        refused_then_recovered(url, traffic, FAULTS[fault](store))
    nothing_acknowledged_lost(traffic, RecordStore(f"sqlite:///{store}"))


def test_a_stalled_body_is_a_408(faulty: tuple[str, Path]) -> None:
    url, _ = faulty
    port = int(url.rsplit(":", 1)[1])
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")  # 99 bytes never come
        assert sock.recv(200).startswith(b"HTTP/1.1 408")
    assert time.monotonic() - began < 10


def test_a_store_that_takes_no_writes_stops_serve_at_start(trained_home: Path, tmp_path: Path) -> None:
    url = "postgresql://scoreloop:hunter2-secret@127.0.0.1:1/records"
    result = cli(trained_home, "serve", "--port", str(free_port()), check=False, env={"SCORELOOP_STORE_URL": url})
    assert result.returncode == 2
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "postgresql://scoreloop:***@127.0.0.1:1/records is unreachable" in lines[0]
    assert "hunter2" not in result.stdout + result.stderr
    short = cli(trained_home, "serve", check=False, env={"SCORELOOP_SERVE__API_KEY": " "})
    assert short.returncode == 2 and "at least 16 characters" in short.stdout


def test_sigkill_loses_no_acknowledged_score_when_acknowledged_after_commit(trained_home: Path,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    store = tmp_path / "records.db"
    env = clean_env(SCORELOOP_STORE_URL=f"sqlite:///{store}", SCORELOOP_SERVE__LOG_ACK="committed")
    url = f"http://127.0.0.1:{(port := free_port())}"
    acknowledged: list[str] = []

    def client(worker: int) -> None:
        for n in range(100_000):
            ids = [f"k{worker}-{n}-{i}" for i in range(20)]
            try:
                response = httpx.post(f"{url}/score", json={"records": [{"lead_id": i} for i in ids]}, timeout=30)
            except httpx.TransportError:
                return
            if response.status_code == 200:
                acknowledged.extend(ids)

    with running(serve_command(trained_home, port), f"{url}/readyz", tmp_path / "kill.log", env) as process:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        assert wait_for(lambda: len(acknowledged) >= 2000, seconds=60)
        server = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for member in server:  # every process of the server, as a machine crash would
            member.kill()
        psutil.wait_procs(server, timeout=30)
        for thread in threads:
            thread.join(30)
    missing = set(acknowledged) - set(RecordStore(f"sqlite:///{store}").scores(features=False)["record_id"])
    assert not missing, f"{len(missing)} acknowledged scored records lost, e.g. {sorted(missing)[:5]}"


class Relay:
    """A TCP relay to `host:port` on a loopback port of its own; `cut_off()` makes the database unreachable through it
    (every connection closed, new ones refused) for as long as it lasts."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self.sockets: list[socket.socket] = []
        self.restore()

    @contextmanager
    def cut_off(self) -> Iterator[None]:
        self.cut()
        yield
        self.restore()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        for sock in [self.listener, *self.sockets]:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets = []

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            sock.close()


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("SCORELOOP_TEST_PG"), reason="SCORELOOP_TEST_PG is not set (.ci/run sets it)")
def test_an_unreachable_postgres_store_is_a_503_and_the_service_recovers(trained_home: Path, tmp_path: Path) -> None:
    base = urlparse(os.environ["SCORELOOP_TEST_PG"])
    relay = Relay(base.hostname or "127.0.0.1", base.port or 5432)
    store_url = f"postgresql://{base.username}:{base.password}@127.0.0.1:{relay.port}/records"
    env = clean_env(SCORELOOP_STORE_URL=store_url)
    url = f"http://127.0.0.1:{(port := free_port())}"
    server = running(serve_command(trained_home, port), f"{url}/readyz", tmp_path / "serve.log", env)
    with server, Traffic(url, "pg").running() as traffic:
        refused_then_recovered(url, traffic, relay.cut_off())
    nothing_acknowledged_lost(traffic, RecordStore(f"{os.environ['SCORELOOP_TEST_PG']}/records"))
