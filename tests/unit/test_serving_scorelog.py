"""The scoring log's promises on a real SQLite store: rows arrive, a failing store is retried and counted, a full
queue refuses with a 503 instead of dropping rows, and close() drains what is queued."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from bentoml.exceptions import ServiceUnavailable

from scoreloop.core.coerce import read_columns
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import METADATA, RecordStore
from scoreloop.serving.scorelog import ScoreLog
from scoreloop.serving.scoring import SCORED_DTYPE

SPEC = DatasetSpec(id_column="lead_id", target="converted", positive_label="yes", numeric=["visits"],
                   categorical=["industry"])  # fmt: skip


def batch(size: int, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    ids = [f"{prefix}{i}" for i in range(size)]
    rows = read_columns({"lead_id": ids, "visits": list(range(size)), "industry": ["saas"] * size}, size, SPEC).rows
    scored = np.empty(size, dtype=SCORED_DTYPE)
    scored["id"], scored["probability"], scored["score"], scored["tier"] = ids, 0.5, 50, "B"
    scored["model"], scored["version"] = "m", "7"
    return rows, scored


def wait_until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_rows_reach_the_store_with_inputs_scores_and_version(tmp_path: Path) -> None:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    log = ScoreLog(store, SPEC, max_rows=1000, max_bytes=2**20)
    log.submit(*batch(3, "a"))
    log.close()
    rows = store.scores()
    assert rows["record_id"].tolist() == ["a0", "a1", "a2"]
    assert rows["visits"].tolist() == [0, 1, 2] and set(rows["industry"]) == {"saas"}
    assert set(rows["model_version"]) == {"7"} and set(rows["tier"]) == {"B"}


def test_a_failing_store_is_retried_counted_and_never_silently_dropped(tmp_path: Path) -> None:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE score_batches"))  # every write fails until the table is back
    failures: list[int] = []
    log = ScoreLog(store, SPEC, max_rows=1000, max_bytes=2**20, wait_seconds=0.3, on_failure=lambda: failures.append(1))
    log.submit(*batch(1000, "q"))  # queued: a 200 means queued
    assert wait_until(lambda: len(failures) >= 2)
    with pytest.raises(ServiceUnavailable, match=r"1000 rows .* behind"):
        log.submit(*batch(1, "x"))  # the queue is full: refused, not accepted and lost
    METADATA.create_all(store.engine)
    assert wait_until(lambda: log.pending == 0, seconds=30)
    log.close()
    assert store.count() == 1000
    with pytest.raises(ServiceUnavailable, match="stopping"):
        log.submit(*batch(1, "late"))


def test_requests_arriving_together_share_a_commit(tmp_path: Path) -> None:
    """Group commit: the writer commits at most once per interval, so a burst of requests costs a few
    transactions, each request still its own logged batch."""
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    commits: list[int] = []
    sa.event.listen(store.engine, "commit", lambda connection: commits.append(1))
    log = ScoreLog(store, SPEC, max_rows=1000, max_bytes=2**20, commit_interval=0.5)
    for i in range(20):
        log.submit(*batch(5, f"r{i}-"))
    log.close()
    assert store.count() == 100
    assert len(commits) <= 3


def test_the_queue_is_bounded_in_bytes_as_well_as_rows(tmp_path: Path) -> None:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE score_batches"))
    log = ScoreLog(store, SPEC, max_rows=100_000, max_bytes=4096, wait_seconds=0.3)
    log.submit(*batch(200, "big"))  # alone in the queue: taken whatever its size
    with pytest.raises(ServiceUnavailable, match=r"bytes\) behind"):
        log.submit(*batch(200, "more"))
    METADATA.create_all(store.engine)
    log.close()
    assert store.count() == 200


def test_a_committed_ack_returns_once_the_rows_are_in_the_store(tmp_path: Path) -> None:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    log = ScoreLog(store, SPEC, max_rows=1000, max_bytes=2**20, ack="committed", commit_interval=0.2)
    for i in range(3):
        log.submit(*batch(2, f"k{i}-"))
        assert store.count() == 2 * (i + 1)  # before close(): each submit waited for its commit
    log.close()


@pytest.mark.parametrize("ack", ["queued", "committed"])
def test_without_waiting_rows_are_queued_or_nothing_is(tmp_path: Path, ack: str) -> None:
    """`wait=False` (the event loop's call) queues when there is room, and where `submit` would wait (a full queue,
    a committed ack) returns False at once having queued nothing, so the caller can wait in a thread instead."""
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE score_batches"))  # nothing leaves the queue until the table is back
    log = ScoreLog(store, SPEC, max_rows=1000, max_bytes=2**20, ack=ack, wait_seconds=0.3)
    queued = log.submit(*batch(990, "a"), wait=False)
    assert queued is (ack == "queued") and log.pending == (990 if queued else 0)
    began = time.monotonic()
    assert log.submit(*batch(20, "b"), wait=False) is False  # 1,010 rows would not fit (or the ack would wait)
    assert time.monotonic() - began < 0.2 and log.pending == (990 if queued else 0)
    METADATA.create_all(store.engine)
    log.close()
    assert store.count() == (990 if queued else 0)
