"""What the service promises when things go wrong: feedback survives a restart and a SIGKILL, a bad model is refused
at start, the API key guards /feedback only, the built bento serves the champion, and requests are never unpickled."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from scoreloop.core.store import RecordStore
from scoreloop.serving.bento import PROJECT_ROOT
from tests.support import clean_env, cli, free_port, running, serve_command

pytestmark = pytest.mark.slow

KEY = "test-feedback-key"
TAG = "scoreloop-model:mlflow-v1"


def stored_outcomes(home: Path) -> set[str]:
    return set(RecordStore(f"sqlite:///{home / 'records.db'}").outcomes()["record_id"])


def feedback(url: str, ids: list[str], key: str | None = KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    outcomes = [{"id": i, "converted": n % 2 == 0} for n, i in enumerate(ids)]
    return httpx.post(f"{url}/feedback", json={"outcomes": outcomes}, headers=headers, timeout=30)


def test_the_api_key_guards_feedback_and_outcomes_survive_a_restart(trained_home: Path, tmp_path: Path) -> None:
    port = free_port()
    url, env = f"http://127.0.0.1:{port}", clean_env(SCORELOOP_SERVE__API_KEY=KEY)
    with running(serve_command(trained_home, port), f"{url}/readyz", tmp_path / "first.log", env) as process:
        refused = feedback(url, ["restart-0"], key=None)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
        assert feedback(url, ["restart-0"], key="wrong").status_code == 401
        assert feedback(url, ["restart-1", "restart-2"]).json() == {"stored": 2}
        assert httpx.post(f"{url}/score", json={"records": [{"industry": "saas"}]}, timeout=30).status_code == 200
        os.kill(process.pid, signal.SIGTERM)  # to `scoreloop serve` alone, as systemd or a container runtime does
        assert process.wait(60) == 0
        with pytest.raises(ProcessLookupError):  # it waited for BentoML's graceful stop: no server left behind
            os.killpg(process.pid, 0)
    assert KEY not in (tmp_path / "first.log").read_text()
    port = free_port()  # the same home on a new port: nothing of the first server can answer
    url = f"http://127.0.0.1:{port}"
    with running(serve_command(trained_home, port), f"{url}/readyz", tmp_path / "second.log", env):
        assert {"restart-1", "restart-2"} <= stored_outcomes(trained_home)
        assert "restart-0" not in stored_outcomes(trained_home)
        assert feedback(url, ["restart-3"]).json() == {"stored": 1}
    assert {"restart-1", "restart-2", "restart-3"} <= stored_outcomes(trained_home)


def test_sigkill_loses_no_acknowledged_feedback(trained_home: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        for batch in range(10_000):
            ids = [f"kill-{worker}-{batch}-{i}" for i in range(5)]
            try:
                response = feedback(url, ids, key=None)
            except httpx.TransportError:
                return
            if response.status_code == 200:
                acknowledged.extend(ids)
            if stop.is_set():
                return

    with running(serve_command(trained_home, port), f"{url}/readyz", tmp_path / "kill.log", clean_env()) as process:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Mid-traffic, requests in flight in every client. BentoML's worker runs in a process group of its own and
        # would keep serving on the inherited socket: kill every process of the server, as a machine crash would.
        server = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for member in server:
            member.kill()
        process.wait()
        psutil.wait_procs(server, timeout=30)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(acknowledged) >= 200
    missing = set(acknowledged) - stored_outcomes(trained_home)
    assert not missing, f"{len(missing)} acknowledged outcomes lost, e.g. {sorted(missing)[:5]}"


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_model_stops_the_server_with_the_reason(server: str, trained_home: Path, tmp_path: Path,
                                                          damage: str) -> None:  # fmt: skip
    bentoml_home = tmp_path / "bentoml"
    shutil.copytree(trained_home / "bentoml" / "models", bentoml_home / "models")  # imported by the `server` fixture
    model_file = bentoml_home / "models" / "scoreloop-model" / "mlflow-v1" / "mlflow_model" / "model.cb"
    if damage == "corrupt":
        data = bytearray(model_file.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte: CatBoost may still load it, the digest does not match
        model_file.write_bytes(bytes(data))
    else:
        model_file.unlink()
    env = clean_env(BENTOML_HOME=str(bentoml_home), SCORELOOP_HOME=str(trained_home), SCORELOOP_BENTO_MODEL=TAG)
    command = [sys.executable, "-m", "bentoml", "serve", "scoreloop.serving.service:Scorer", "--port", str(free_port())]
    result = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"refusing to serve {TAG}: its files in" in result.stderr + result.stdout
    assert "missing or changed" in result.stderr + result.stdout


def test_the_built_bento_serves_the_champion(server: str, trained_home: Path, tmp_path: Path) -> None:
    cli(trained_home, "bento")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(BENTOML_HOME=str(trained_home / "bentoml"), SCORELOOP_HOME=str(trained_home))
    command = [sys.executable, "-m", "bentoml", "serve", "scoreloop:latest", "--port", str(port)]
    record = {"records": [{"lead_id": "bento", "industry": "saas", "employees": 40}]}
    with running(command, f"{url}/readyz", tmp_path / "bento.log", env, cwd=tmp_path):  # code from the bento only
        from_bento = httpx.post(f"{url}/score", json=record, timeout=30).json()
    assert from_bento == httpx.post(f"{server}/score", json=record, timeout=30).json()
    assert from_bento[0]["version"] == "1"


def test_requests_are_never_unpickled(server: str) -> None:
    response = httpx.post(
        f"{server}/score", content=b"\x80\x04K\x01.", headers={"content-type": "application/vnd.bentoml+pickle"}
    )
    assert response.status_code == 415
    path_like = httpx.post(f"{server}/score", json={"records": [{"lead_id": "../../etc/passwd"}]}, timeout=30)
    assert path_like.status_code == 200 and path_like.json()[0]["id"] == "../../etc/passwd"
