"""The record store's scoring log on a real SQLite file: what goes in comes back (types, missing values, policy
decisions, per-batch model and time), windows select by time, samples are seeded and even, and batches logged by
different model versions (different features) read back together. The store keeps to its file: it says when that
file takes no writes (deleted, locked), never recreates it, and adopts one put back at its path."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoreloop.core.store import Outcome, RecordStore, ScoredBatch, StoreUnavailable

JAN, FEB, MAR = datetime(2024, 1, 1), datetime(2024, 2, 1), datetime(2024, 3, 1)


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(f"sqlite:///{tmp_path / 'records.db'}")


def batch(ids: list[str], at: datetime, *, version: str = "1", policy: pd.DataFrame | None = None) -> ScoredBatch:
    size = len(ids)
    features = pd.DataFrame({"visits": np.arange(size, dtype=float), "industry": ["saas"] * size})
    scores = {"probability": np.linspace(0, 1, size), "score": np.arange(size), "tier": ["A"] * size}
    return ScoredBatch(features, scores, model_name="m", model_version=version, record_ids=ids, scored_at=at,
                       policy=policy)  # fmt: skip


def test_a_batch_reads_back_with_its_types_missing_values_model_and_time(store: RecordStore) -> None:
    features = pd.DataFrame({
        "visits": [3.0, np.nan],
        "industry": ["saas", None],
        "created_at": pd.to_datetime(["2024-01-02 10:00", "2024-01-03 11:30"]),
    })  # fmt: skip
    scores = {"probability": [0.25, 0.5], "score": [20, 55], "tier": ["C", "B"]}
    policy = pd.DataFrame({"propensity": [1.0, 0.1], "worked": [True, False], "policy": ["exploit", "skip"]})
    logged = store.log_scores([ScoredBatch(features, scores, "m", "7", ["a", None], JAN, policy)])
    log = store.scores()
    assert logged == 2 and len(log) == 2
    assert log["record_id"].tolist() == ["a", None]
    assert log["visits"].iloc[0] == 3.0 and np.isnan(log["visits"].iloc[1])
    assert log["industry"].tolist() == ["saas", None]
    assert log["created_at"].tolist() == features["created_at"].tolist()
    assert log["probability"].tolist() == [0.25, 0.5] and log["score"].tolist() == [20, 55]
    assert log["tier"].tolist() == ["C", "B"] and log["policy"].tolist() == ["exploit", "skip"]
    assert log["propensity"].tolist() == [1.0, 0.1] and log["worked"].tolist() == [True, False]
    assert set(log["model_name"]) == {"m"} and set(log["model_version"]) == {"7"}
    assert (log["scored_at"] == pd.Timestamp(JAN)).all()


def test_without_a_policy_the_policy_columns_are_missing(store: RecordStore) -> None:
    store.log_scores([batch(["a", "b"], JAN)])
    log = store.scores(features=False)
    assert log["propensity"].isna().all() and log["worked"].isna().all() and log["policy"].isna().all()
    assert "visits" not in log and "industry" not in log


def test_windows_count_and_span_select_batches_by_their_time(store: RecordStore) -> None:
    store.log_scores([batch(["j1", "j2"], JAN), batch(["f1"], FEB), batch(["m1", "m2", "m3"], MAR)])
    assert store.scores(FEB, MAR)["record_id"].tolist() == ["f1"]
    assert store.scores(FEB)["record_id"].tolist() == ["f1", "m1", "m2", "m3"]
    assert store.scores(end=FEB)["record_id"].tolist() == ["j1", "j2"]
    assert (store.count(), store.count(JAN, MAR), store.count(MAR)) == (6, 3, 3)
    assert store.span() == (JAN, MAR)


def test_an_empty_log_reads_as_an_empty_frame_with_the_log_columns(store: RecordStore) -> None:
    log = store.scores()
    assert log.empty and {"record_id", "scored_at", "probability", "model_version", "propensity"} <= set(log)
    assert store.count() == 0 and store.span() == (None, None)


def test_samples_are_seeded_even_and_about_the_size_asked(store: RecordStore) -> None:
    store.log_scores(batch([f"{b}-{i}" for i in range(500)], JAN) for b in range(20))
    first = store.scores(sample=2000, seed=1)
    assert 1700 <= len(first) <= 2300
    assert first["record_id"].tolist() == store.scores(sample=2000, seed=1)["record_id"].tolist()
    assert first["record_id"].tolist() != store.scores(sample=2000, seed=2)["record_id"].tolist()
    per_batch = first["record_id"].str.split("-").str[0].value_counts()
    assert len(per_batch) == 20 and per_batch.min() >= 60  # spread over every batch, not a few whole batches
    assert len(store.scores(sample=20_000)) == 10_000  # asking for more than there is keeps everything


def test_batches_with_different_features_read_back_together(store: RecordStore) -> None:
    old = ScoredBatch(pd.DataFrame({"visits": [1.0], "industry": [None]}), {"probability": [0.1], "score": [5],
                      "tier": ["D"]}, "m", "1", ["old"], JAN)  # fmt: skip
    new = ScoredBatch(pd.DataFrame({"industry": ["saas"], "country": ["FR"]}), {"probability": [0.9], "score": [95],
                      "tier": ["A"]}, "m", "2", ["new"], FEB)  # fmt: skip
    store.log_scores([old, new])
    log = store.scores().set_index("record_id")
    assert log.loc["old", "visits"] == 1.0 and np.isnan(log.loc["new", "visits"])
    assert log.loc["old", "industry"] is None and log.loc["new", "industry"] == "saas"
    assert log.loc["old", "country"] is None and log.loc["new", "country"] == "FR"
    assert log["model_version"].tolist() == ["1", "2"]


def test_labelled_joins_the_latest_outcome_per_record(store: RecordStore) -> None:
    store.log_scores([batch(["a", "b", "c"], JAN)])
    store.add_outcomes([Outcome("a", 0), Outcome("a", 1, FEB), Outcome("b", 0), Outcome("unknown", 1)])
    labelled = store.labelled().set_index("record_id")
    assert len(labelled) == 3 and labelled.loc["a", "outcome"] == 1 and labelled.loc["b", "outcome"] == 0
    assert np.isnan(labelled.loc["c", "outcome"]) and labelled.loc["a", "outcome_at"] == pd.Timestamp(FEB)


def test_a_deleted_file_takes_no_writes_is_never_recreated_and_a_file_put_back_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = RecordStore(f"sqlite:///{path}")
    store.add_outcomes([Outcome("kept", 1)])
    moved = path.rename(tmp_path / "elsewhere.db")
    assert store.unavailable() == f"{path} was deleted"
    with pytest.raises(StoreUnavailable, match="deleted or replaced"):
        store.add_outcomes([Outcome("refused", 1)])  # went to the file no longer at the path: not reported kept
    with pytest.raises(StoreUnavailable, match="unable to open"):
        store.add_outcomes([Outcome("refused", 1)])
    assert not path.exists()
    shutil.copy(moved, path)  # a backup put back: another file at the path
    assert store.unavailable() is None
    store.add_outcomes([Outcome("after", 0)])
    assert {"kept", "after"} <= set(store.outcomes()["record_id"])


def test_a_file_locked_by_another_process_takes_no_writes_until_released(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = RecordStore(f"sqlite:///{path}", busy_seconds=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    assert "database is locked" in str(store.unavailable())
    with pytest.raises(StoreUnavailable, match="database is locked"):
        store.add_outcomes([Outcome("waiting", 1)])
    holder.execute("ROLLBACK")
    assert store.unavailable() is None
    assert store.add_outcomes([Outcome("released", 1)]) == 1


def test_outcomes_for_ids_never_scored_are_counted_once_each(store: RecordStore) -> None:
    store.log_scores([batch(["a", "b"], JAN)])
    store.add_outcomes([Outcome("a", 1), Outcome("z", 0), Outcome("z", 1), Outcome("y", 0)])
    assert store.unmatched_outcomes() == 2


def test_history_reads_every_scoring_of_the_records_asked_for(tmp_path: Path) -> None:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    scores = {"probability": [0.1, 0.2], "score": [10, 20], "tier": ["D", "C"]}
    for day, ids in ((1, ["a", "b"]), (2, ["b", "c"]), (3, ["a", None])):
        at = datetime(2025, 1, day)
        store.log_scores([ScoredBatch({"x": [float(day)] * 2}, scores, "m", str(day), record_ids=ids, scored_at=at)])
    store.add_outcomes([Outcome("a", 1)])
    found = store.history(["a"])
    assert found[["record_id", "model_version", "x", "outcome"]].values.tolist() == [
        ["a", "1", 1.0, 1],
        ["a", "3", 3.0, 1],
    ]
    assert store.history(["b", "c"])["record_id"].tolist() == ["b", "b", "c"]
    assert store.history(["z"]).empty and {"scored_at", "model_version", "score"} <= set(store.history(["z"]))
