"""Alerts: a webhook receives the records whose tier crossed into a watched tier (Marketo's band-change alerts).

`/score` hands each request's scored rows to `TierAlerts.observe`, which compares every record's tier with the tier
it had at its previous score in this server process and queues the crossings into `tiers`; nothing else happens on
the request path. One sender thread posts each request's crossings as one JSON body, signed with HMAC-SHA256 of the
body under the shared secret (`X-Scoreloop-Signature: sha256=<hex>`), and retries a failed delivery with
exponential back-off up to `attempts` times. Delivery never blocks or fails scoring: the queue is bounded, and an
alert that finds it full, or that exhausts its attempts, is dropped and counted; every failed attempt is counted too
(`scoreloop_alert_failures` on `/metrics`).

Previous tiers are seeded from the scoring log when the server starts, in the sender thread so that neither start-up
nor scoring waits for it (a record scored before the seeding ends and never seen in this process crosses nothing
that time; tiers seen live win over the log's). With several server workers each keeps its own, so a record scored
by two workers in turn may be alerted once more or once less.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from scoreloop.core.settings import AlertSettings
from scoreloop.core.store import RecordStore

logger = logging.getLogger("scoreloop.serving")
SIGNATURE_HEADER = "X-Scoreloop-Signature"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def crossings(scored: np.ndarray, previous: dict[str, str], tiers: set[str]) -> list[dict[str, Any]]:
    """The records of `scored` whose tier moved into one of `tiers` since their previous score in `previous`
    (updated in place with every record's tier). A record seen for the first time has crossed nothing."""
    found = []
    for record_id, tier, score, probability, version in zip(
        scored["id"], scored["tier"], scored["score"], scored["probability"], scored["version"], strict=True
    ):
        if record_id is None:
            continue
        before = previous.get(record_id)
        previous[record_id] = tier
        if before is not None and before != tier and tier in tiers:
            found.append({"id": record_id, "from_tier": before, "to_tier": tier, "score": int(score),
                          "probability": float(probability), "version": version})  # fmt: skip
    return found


class TierAlerts:
    """Tier crossings into the watched tiers, posted to the webhook off the request path."""

    def __init__(
        self,
        config: AlertSettings,
        store: RecordStore | None = None,
        *,
        on_failure: Callable[[], None] = lambda: None,
        on_delivered: Callable[[], None] = lambda: None,
    ) -> None:
        if config.url is None or config.secret is None:
            raise ValueError("alerts need both SCORELOOP_ALERTS__URL and SCORELOOP_ALERTS__SECRET")
        self.config = config
        self.tiers = set(config.tiers)
        self.on_failure, self.on_delivered = on_failure, on_delivered
        self.previous: dict[str, str] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=config.queue)
        self._thread = threading.Thread(target=self._run, args=(store,), name="tier-alerts", daemon=True)
        self._thread.start()

    def observe(self, scored: np.ndarray) -> None:
        """Queue this request's crossings (if any) as one alert; never blocks, never raises."""
        with self._lock:
            found = crossings(scored, self.previous, self.tiers)
        if not found:
            return
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        body = json.dumps({"event": "tier_crossing", "sent_at": sent_at, "crossings": found}).encode()
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            logger.error("alerts: the queue is full; %d crossings dropped", len(found))
            self.on_failure()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (within `timeout`), then stop the sender."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self, store: RecordStore | None) -> None:
        try:
            if store is not None:
                log = store.scores(features=False)[["record_id", "tier"]].dropna()
                with self._lock:
                    seeded = dict(zip(log["record_id"], log["tier"], strict=True))  # the last tier per record wins
                    self.previous = {**seeded, **self.previous}
        except Exception:
            logger.exception("alerts: could not read previous tiers from the scoring log")
        while (body := self._queue.get()) is not None:
            self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        delay = self.config.backoff_seconds
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(body, self._secret)}
        for attempt in range(1, self.config.attempts + 1):
            request = urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_seconds) as response:
                    if 200 <= response.status < 300:
                        self.on_delivered()
                        return
            except OSError as exc:  # refused, timed out, or an HTTP error status
                logger.warning("alerts: delivery attempt %d of %d failed: %s", attempt, self.config.attempts, exc)
            self.on_failure()
            if attempt < self.config.attempts:
                time.sleep(delay)
                delay *= 2
        logger.error("alerts: gave up after %d attempts; the alert is dropped", self.config.attempts)

    @property
    def _secret(self) -> str:
        return self.config.secret.get_secret_value()  # type: ignore[union-attr]
