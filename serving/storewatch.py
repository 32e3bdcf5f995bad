"""Whether the record store takes writes, known by the service at all times rather than learnt from lost rows.

A thread asks the store (`RecordStore.unavailable`: the same file still at its path, writable, not locked; a server
store answering) every `interval` seconds, and a failed write says so at once. While the store does not take
writes, `/score` and `/feedback` answer 503 with a `Retry-After` (nothing is acknowledged that could not be kept),
`/readyz` is not ready (a load balancer sends traffic elsewhere) and `scoreloop_store_writable` is 0 on `/metrics`.
When the store is back the next check notices, and the service recovers without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from scoreloop.core.store import RecordStore

logger = logging.getLogger("scoreloop.serving")


class StoreWatch:
    """The record store's state: `reason` is None while it takes writes, else why not."""

    def __init__(
        self, store: RecordStore, *, interval: float = 1.0, on_change: Callable[[bool], None] = lambda up: None
    ) -> None:
        self.store = store
        self.interval = interval
        self.on_change = on_change
        self.reason = store.unavailable()
        self._stop = threading.Event()
        on_change(self.reason is None)
        if self.reason is not None:
            logger.warning("record store: not taking writes (%s); /score and /feedback answer 503", self.reason)
        self._thread = threading.Thread(target=self._run, name="record-store-watch", daemon=True)
        self._thread.start()

    def failed(self, reason: str) -> None:
        """A write just failed: down until the next check finds the store back."""
        self._update(reason)

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        """Check every `interval`; a check that fails while the store was taking writes is confirmed by the next
        one before the service stops taking requests: a lock held for a moment (another writer's commit on a busy
        disk) is not an outage, while a failed write (`failed`) is believed at once."""
        doubted = False
        while not self._stop.wait(self.interval):
            reason = self.store.unavailable()
            if reason is not None and self.reason is None and not doubted:
                doubted = True
                continue
            doubted = False
            self._update(reason)

    def _update(self, reason: str | None) -> None:
        if reason == self.reason:
            return
        was_up, self.reason = self.reason is None, reason
        if reason is None:
            logger.warning("record store: taking writes again")
        else:
            logger.warning("record store: not taking writes (%s); /score and /feedback answer 503", reason)
        if was_up != (reason is None):
            self.on_change(reason is None)
