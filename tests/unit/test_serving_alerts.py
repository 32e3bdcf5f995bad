"""Tier alerts against a real HTTP receiver on loopback: delivery, signature, retry, and a receiver that is down."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest

from scoreloop.core.settings import AlertSettings
from scoreloop.serving.alerts import TierAlerts, crossings
from scoreloop.serving.scoring import SCORED_DTYPE
from tests.support import Receiver, free_port

SECRET = "s3cret"


def scored(*rows: tuple[str | None, str, int]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=SCORED_DTYPE)
    for i, (record_id, tier, score) in enumerate(rows):
        out[i] = (record_id, score / 100, score, tier, "m", "1")
    return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(failures=2)
    yield found
    found.server.shutdown()


def until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_crossings_are_moves_into_the_watched_tiers_from_a_known_previous_tier() -> None:
    previous = {"a": "B", "b": "A", "c": "C"}
    found = crossings(scored(("a", "A", 91), ("b", "A", 95), ("c", "B", 70), ("new", "A", 99), (None, "A", 99)),
                      previous, {"A"})  # fmt: skip
    assert [(f["id"], f["from_tier"], f["to_tier"], f["score"]) for f in found] == [("a", "B", "A", 91)]
    assert previous == {"a": "A", "b": "A", "c": "B", "new": "A"}


def test_a_crossing_is_delivered_signed_after_retries(receiver: Receiver) -> None:
    failures: list[int] = []
    delivered: list[int] = []
    config = AlertSettings(url=receiver.url, secret=SECRET, backoff_seconds=0.05)
    alerts = TierAlerts(config, on_failure=lambda: failures.append(1), on_delivered=lambda: delivered.append(1))
    began = time.perf_counter()
    alerts.observe(scored(("a", "B", 80)))
    alerts.observe(scored(("a", "A", 92), ("b", "C", 50)))
    assert time.perf_counter() - began < 0.05  # the request path only queues
    assert until(lambda: delivered)
    alerts.close()
    body, signature = receiver.received[0]
    assert signature == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sent = json.loads(body)
    assert sent["event"] == "tier_crossing" and [c["id"] for c in sent["crossings"]] == ["a"]
    assert sent["crossings"][0] | {"probability": 0} == {"id": "a", "from_tier": "B", "to_tier": "A", "score": 92,
                                                        "probability": 0, "version": "1"}  # fmt: skip
    assert receiver.attempts == 3 and len(failures) == 2 and len(delivered) == 1  # two 500s, then delivered


def test_a_dead_receiver_never_blocks_and_every_failure_is_counted() -> None:
    failures: list[int] = []
    config = AlertSettings(url=f"http://127.0.0.1:{free_port()}/hook", secret=SECRET, attempts=3, backoff_seconds=0.01)
    alerts = TierAlerts(config, on_failure=lambda: failures.append(1))
    began = time.perf_counter()
    for i in range(20):
        alerts.observe(scored((f"r{i}", "C", 50)))
        alerts.observe(scored((f"r{i}", "A", 95)))
    assert time.perf_counter() - began < 0.5
    assert until(lambda: len(failures) == 60)  # 20 alerts x 3 attempts, then dropped
    alerts.close()


def test_alerts_refuse_half_a_configuration() -> None:
    with pytest.raises(ValueError, match="SCORELOOP_ALERTS__SECRET"):
        TierAlerts(AlertSettings(url="http://127.0.0.1:1/x"))
    with pytest.raises(ValueError):
        AlertSettings(url="file:///etc/passwd", secret=SECRET)
