"""The served model, and how a running service follows `models:/NAME@champion` without a restart.

Each worker process holds its model in one `Champion`; a request reads `Champion.served` once and uses that for the
whole request, so a swap (one attribute assignment) lets requests in flight finish on the old version while new ones
get the new one. A thread checks the alias every `serve.champion_poll_seconds`, and `POST /admin/reload` checks at
once. A new version is imported into the BentoML store (`bento.import_version`: one process at a time, with a digest),
loaded after its digest check (`bento.load_verified`) and scored once on an empty record before it is swapped in;
a version failing any step is not swapped in: the old one keeps serving, the failure is logged and counted, and the
poll does not try that version again (a reload does). A champion with another input spec is not swapped in either:
the request schema, the scoring log and the field counts were built from the served spec when the server started,
so the service keeps serving and reports that a restart is needed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from scoreloop.core.coerce import read_columns
from scoreloop.core.model import ScoringModel
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import CHAMPION, configure, one_line, version_by_alias
from scoreloop.serving.bento import import_version, load_verified
from scoreloop.serving.scoring import score_rows

logger = logging.getLogger("scoreloop.serving")

Outcome = Literal["unchanged", "swapped", "not swapped", "restart needed", "lookup failed"]


@dataclass(frozen=True)
class Served:
    """A loaded model and the validation metrics recorded when it was imported: what one request uses."""

    model: ScoringModel
    validation_metrics: dict[str, float]


def load_served(stored: object) -> Served:
    """A BentoML model reference (`bentoml.models.BentoModel`) loaded after its digest check, with its metrics."""
    model = load_verified(stored)
    return Served(model, stored.resolve().info.metadata.get("validation_metrics", {}))  # type: ignore[attr-defined]


def smoke_score(model: ScoringModel) -> None:
    """Score one record with every feature missing: a model that cannot answer that must not serve."""
    try:
        probability = float(score_rows(model, read_columns({}, 1, model.spec).rows)["probability"][0])
    except Exception as exc:
        raise ValueError(f"it cannot score an empty record ({one_line(exc)})") from exc
    if not 0 <= probability <= 1:  # NaN included
        raise ValueError(f"it scored an empty record {probability!r}, not a probability")


def spec_change(served: ScoringModel, candidate: ScoringModel) -> list[str]:
    """The fields of the dataset spec in which `candidate` differs from `served` (empty: the same input)."""
    old, new = served.spec.model_dump(), candidate.spec.model_dump()
    return [name for name in old if old[name] != new[name]]


@dataclass(frozen=True)
class Check:
    """What one look at the champion found and did."""

    outcome: Outcome
    served: str
    champion: str | None
    detail: str


class Champion:
    """The model this worker serves, kept in step with the registry's champion (see the module's docstring).

    `on_swap(version)` is called after a swap, `on_failure(version)` after a version was not swapped in (None: the
    alias could not be read), `on_restart(needed)` after every check with whether a restart is needed.
    """

    def __init__(
        self,
        settings: Settings,
        served: Served,
        *,
        on_swap: Callable[[str], None] = lambda version: None,
        on_failure: Callable[[str | None], None] = lambda version: None,
        on_restart: Callable[[bool], None] = lambda needed: None,
    ) -> None:
        self.settings = settings
        self.served = served
        self.on_swap, self.on_failure, self.on_restart = on_swap, on_failure, on_restart
        self.alias = f"models:/{settings.model_name}@{CHAMPION}"
        self.champion: str | None = served.model.version
        self.checked_at: datetime | None = None
        self.restart_needed: str | None = None
        self._restart_for: str | None = None  # the champion version that restart_needed is about
        self.last_failure: str | None = None
        self._settled: dict[str, Check] = {}  # versions refused or needing a restart: the poll does not retry them
        self._lock = threading.Lock()  # one check at a time: the poll and /admin/reload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="champion-poll", daemon=True)

    def start(self) -> None:
        self.on_restart(False)
        if self.settings.serve.champion_poll_seconds > 0:
            self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.serve.champion_poll_seconds):
            try:
                self.check()
            except Exception:  # a poll must never die: log it and look again next time
                logger.exception("champion check failed")

    def check(self, *, retry: bool = False) -> Check:
        """Look up the champion and swap to it if it is new and passes; `retry` tries a version refused before.
        What /metadata shows (`champion`, `checked_at`) changes once the check has concluded."""
        with self._lock:
            started = datetime.now(UTC)
            check = self._check(retry)
            self.champion = check.champion or self.champion
            self.checked_at = started
            return check

    def _check(self, retry: bool) -> Check:
        try:
            configure(self.settings)
            found = version_by_alias(self.settings.model_name, CHAMPION)
        except Exception as exc:
            return self._failed(None, "lookup failed", f"cannot look up {self.alias}: {one_line(exc)}")
        if found is None:
            return self._failed(None, "lookup failed", f"{self.alias} does not exist (no version has the alias)")
        version = str(found.version)
        served = self.served.model
        if self._restart_for != version:  # the alias moved on from the version that needed a restart
            self._restart(None)
        if version == served.version:
            return Check("unchanged", served.version, version, f"version {version} is the champion and served")
        if version in self._settled and not retry:
            self.on_restart(self.restart_needed is not None)
            return self._settled[version]
        refused = f"champion version {version} not swapped in, version {served.version} serves on: "
        try:
            tag = import_version(self.settings, found)
        except Exception as exc:  # the registry or its artifact store failing: the next poll tries again
            return self._failed(version, "not swapped", f"{refused}cannot import it ({one_line(exc)})")
        try:
            candidate = load_served(_stored(tag))
            smoke_score(candidate.model)
        except Exception as exc:
            self._settled[version] = self._failed(version, "not swapped", refused + one_line(exc))
            return self._settled[version]
        if changed := spec_change(served, candidate.model):
            detail = (
                f"champion version {version} takes another input spec than version {served.version} (it differs "
                f"in {', '.join(changed)}): restart the service to serve it; version {served.version} serves on"
            )
            logger.warning(detail)
            self._restart(detail, version)
            self._settled[version] = Check("restart needed", served.version, version, detail)
            return self._settled[version]
        self.served = candidate  # the swap: requests that took the old reference finish with it
        self.last_failure = None
        self.on_swap(version)
        logger.info("now serving champion version %s (was version %s)", version, served.version)
        return Check("swapped", version, version, f"version {served.version} -> {version}")

    def _failed(self, version: str | None, outcome: Outcome, detail: str) -> Check:
        if detail != self.last_failure:  # an unreachable registry is logged once, not at every poll
            logger.error(detail)
        self.last_failure = detail
        self.on_failure(version)
        self.on_restart(self.restart_needed is not None)
        return Check(outcome, self.served.model.version, version, detail)

    def _restart(self, reason: str | None, version: str | None = None) -> None:
        self.restart_needed, self._restart_for = reason, version
        self.on_restart(reason is not None)


def _stored(tag: str) -> object:
    import bentoml

    return bentoml.models.BentoModel(tag)
