"""A real `scoreloop serve` following `models:/NAME@champion`: a promotion under /score traffic is swapped in with zero
errors within the poll interval, a version that does not load is not swapped in and is counted, a champion with
another input spec is reported as needing a restart; /admin/reload needs the key; a non-loopback bind needs one."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from scoreloop.core.model import CARD_KEY
from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import CHAMPION, configure, copy_version, download_model
from tests.integration.test_serving import metric
from tests.support import clean_env, cli, free_port, running, serve_command

pytestmark = pytest.mark.slow

MODEL = "scoreloop-model"
POLL = 1.0  # seconds between the service's looks at the alias
LOAD = 10.0  # allowance for importing, verifying and loading a version on the shared 2-core machine
KEY = "follow-test-key-0123"
TRAFFIC = 20.0


@pytest.fixture(scope="module")
def home(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained home: its champion moves here, and a second server of one BentoML home would wipe the
    session server's Prometheus counters."""
    copy = tmp_path_factory.mktemp("follow") / "home"
    shutil.copytree(trained_home, copy, ignore=shutil.ignore_patterns("prometheus_multiproc_dir", "*.log"))
    return copy


@pytest.fixture(scope="module")
def following(home: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(SCORELOOP_SERVE__CHAMPION_POLL_SECONDS=str(POLL), SCORELOOP_SERVE__API_KEY=KEY)
    with running(serve_command(home, port), f"{url}/readyz", home / "follow.log", env):
        yield url


def registry(home: Path) -> MlflowClient:
    configure(Settings(home=home))
    return MlflowClient()


def register(home: Path, tmp_path: Path, change: Callable[[Path], None]) -> str:
    """Register a copy of version 1's files, changed by `change`, as a new version and make it the champion."""
    client = registry(home)
    folder = download_model(MODEL, "1", tmp_path / "model")
    change(folder)
    version = client.create_model_version(MODEL, source=str(folder)).version
    client.set_registered_model_alias(MODEL, CHAMPION, version)
    return str(version)


def metadata(url: str) -> dict:
    return httpx.get(f"{url}/metadata", timeout=30).json()


def wait_for_champion(url: str, version: str) -> dict:
    """/metadata once the service has seen `version` as the champion."""
    deadline = time.monotonic() + POLL + LOAD
    while (meta := metadata(url))["following"]["champion"] != version and time.monotonic() < deadline:
        time.sleep(0.2)
    return meta


def reload(url: str, key: str | None = KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/admin/reload", headers=headers, timeout=60)


def score_version(url: str) -> str:
    response = httpx.post(f"{url}/score", json={"records": [{"industry": "saas"}]}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()[0]["version"]


def follow_rows(log: pd.DataFrame) -> pd.DataFrame:
    return log[log["record_id"].fillna("").str.startswith("follow-")]


def test_a_promotion_under_load_is_swapped_in_with_zero_errors(following: str, home: Path) -> None:
    answers: list[tuple[float, float, int | str, set[str], list[str]]] = []  # start, end, status, versions, ids
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                ids = [f"follow-{worker}-{n}-{i}" for i in range(5)]
                records = [{"lead_id": i, "industry": "saas", "employees": 40 + k} for k, i in enumerate(ids)]
                start = time.monotonic()
                try:
                    response = http.post(f"{following}/score", json={"records": records})
                    status: int | str = response.status_code
                    versions = {s["version"] for s in response.json()} if status == 200 else set()
                except httpx.TransportError as exc:
                    status, versions = repr(exc), set()
                answers.append((start, time.monotonic(), status, versions, ids))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(TRAFFIC / 3)
    registry(home)
    new = copy_version(MODEL, "1", MODEL, alias=CHAMPION)  # a promotion: the alias moves to a new registry version
    moved = time.monotonic()
    time.sleep(max(0.0, began + TRAFFIC - time.monotonic()))
    stop.set()
    for thread in threads:
        thread.join(60)

    failed = [a[2] for a in answers if a[2] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert len(answers) > 100 and all(len(a[3]) == 1 for a in answers)  # each request took one model
    first_new = min((a for a in answers if a[3] == {new}), key=lambda a: a[1])
    switched = first_new[1] - moved
    print(f"{len(answers)} requests in {TRAFFIC:.0f} s, 0 errors; the first answer from version {new} {switched:.2f} s "
          f"after the alias moved (poll {POLL} s)")  # fmt: skip
    assert switched <= POLL + LOAD
    assert all(a[3] == {"1"} for a in answers if a[1] < moved)
    assert all(a[3] == {new} for a in answers if a[0] > first_new[1])  # never back: one worker, one swap
    meta = metadata(following)
    assert (meta["version"], meta["following"]["champion"], meta["following"]["restart_needed"]) == (new, new, None)
    assert metric(following, "scoreloop_model_swaps_total", version=new) == 1
    assert metric(following, "scoreloop_scored_records_total", model=MODEL, version=new) > 0

    answered = {i: next(iter(a[3])) for a in answers for i in a[4]}  # the scoring log records who scored each record
    store = RecordStore(f"sqlite:///{home / 'records.db'}")
    deadline = time.monotonic() + 10
    while len(logged := follow_rows(store.scores(features=False))) < len(answered):
        assert time.monotonic() < deadline, f"{len(logged)} of {len(answered)} scored records logged"
        time.sleep(0.2)
    assert dict(zip(logged["record_id"], logged["model_version"], strict=True)) == answered


def test_a_version_that_does_not_load_is_not_swapped_in_and_is_counted(following: str, home: Path,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    served = metadata(following)["version"]

    def truncate(folder: Path) -> None:
        (folder / "model.cb").write_bytes((folder / "model.cb").read_bytes()[:100])

    broken = register(home, tmp_path, truncate)
    meta = wait_for_champion(following, broken)
    assert meta["following"]["champion"] == broken and meta["version"] == served
    failure = meta["following"]["last_failure"]
    assert f"champion version {broken} not swapped in, version {served} serves on" in failure
    assert "cannot load it" in failure
    assert metric(following, "scoreloop_model_swap_failures_total", version=broken) == 1
    time.sleep(3 * POLL)  # the poll does not retry a refused version: counted once
    assert metric(following, "scoreloop_model_swap_failures_total", version=broken) == 1
    assert score_version(following) == served
    retried = reload(following)  # an explicit reload tries it again
    assert retried.status_code == 502 and retried.json()["outcome"] == "not swapped"
    assert metric(following, "scoreloop_model_swap_failures_total", version=broken) == 2
    assert f"champion version {broken} not swapped in" in (home / "follow.log").read_text()


def test_a_champion_with_another_input_spec_is_reported_as_needing_a_restart(following: str, home: Path,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    served = metadata(following)["version"]

    def require_industry(folder: Path) -> None:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
        mlmodel["metadata"][CARD_KEY]["spec"]["required"] = ["industry"]
        (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))

    changed = register(home, tmp_path, require_industry)
    meta = wait_for_champion(following, changed)
    assert meta["version"] == served
    reason = meta["following"]["restart_needed"]
    assert f"champion version {changed} takes another input spec than version {served}" in reason
    assert "differs in required" in reason and "restart the service" in reason
    assert metric(following, "scoreloop_restart_needed") == 1
    assert reason in (home / "follow.log").read_text()
    assert score_version(following) == served
    answer = reload(following)
    assert answer.status_code == 409 and answer.json()["outcome"] == "restart needed"

    registry(home).set_registered_model_alias(MODEL, CHAMPION, served)  # back to the served one: nothing pending
    assert wait_for_champion(following, served)["following"]["restart_needed"] is None
    assert metric(following, "scoreloop_restart_needed") == 0


def test_reload_needs_the_key_and_without_one_configured_is_refused(following: str, server: str, home: Path) -> None:
    assert reload(following, key=None).status_code == 401
    assert reload(following, key="follow-test-key-0124").status_code == 401
    answer = reload(following)
    assert answer.status_code == 200 and answer.json()["outcome"] == "unchanged"
    refused = reload(server, key="any-key-at-all-0123")  # the session server has no key
    assert refused.status_code == 403
    assert "no API key is configured (SCORELOOP_SERVE__API_KEY)" in refused.json()["error"]
    assert KEY not in (home / "follow.log").read_text()


def test_a_non_loopback_bind_without_a_key_is_refused_with_one_line(trained_home: Path) -> None:
    result = cli(trained_home, "serve", "--host", "0.0.0.0", "--port", str(free_port()), check=False, timeout=60)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "error: refusing to serve on 0.0.0.0 without an API key" in lines[0], lines
    assert "--open-feedback" in lines[0]
