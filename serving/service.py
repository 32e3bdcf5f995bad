"""The BentoML service: loads the imported champion once, scores, explains, and takes outcomes back.

BentoML discovers services by import path, so this module loads its model when imported, after checking its files
against the digest recorded at import: a missing, altered or unreadable model stops `bentoml serve` with the reason
before any worker starts. The request schema is generated from the spec stored with that model, and the limits come
from `Settings().serve`. Each worker then follows `models:/NAME@champion` (`serving.follow`): a new version with the
same spec is swapped in without a restart; every request uses the one model it took when it started.
`SCORELOOP_BENTO_MODEL` names the model tag (set by `scoreloop serve`); a built bento serves the model it was
built with.

- `POST /score` (`{"records": [...]}`) and `POST /score/columns` (`{"columns": {...}}`): bodies decoded by msgspec
  straight into typed columns (`serving.jsonbody`; pydantic names the problems of a refused one); adaptive batching
  merges concurrent requests; each request is validated on its own first, so one bad record fails only its request.
- `POST /score/arrow`: the same for batch clients, with an Arrow IPC stream in and out (no JSON on either side).
- `POST /explain`: the top reasons per record from CatBoost's SHAP values, in points of the calibrated probability
  (not logged: it is not a decision).
- `POST /feedback`: outcomes, committed to the record store before the 200; behind the API key when one is set
  (`serving.access`: one is needed on any address but loopback).
- `POST /admin/reload`: check the champion now and swap to it if it is new; always needs the API key.
- `/readyz` is ready while the record store takes writes (`serving.storewatch`); bodies are bounded and typed before
  any endpoint reads them (`serving.guard`); client errors are logged as one line (`serving.clientlog`).
- `GET /metadata`: model, version, run, windows, metrics, calibration, tier cut-offs, input schema.
- `GET /records/{id}/history`: every scoring of one record, its outcome and the reasons (`serving.history`).
- With `SCORELOOP_ALERTS__URL` and `__SECRET` set, tier crossings are posted to a webhook (`serving.alerts`).
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException, ServiceUnavailable
from bentoml.validators import ContentType
from fastapi import FastAPI
from pydantic import BeforeValidator, Field, ValidationError, WithJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from scoreloop.core.coerce import field_counts, id_problem
from scoreloop.core.model import ScoringModel
from scoreloop.core.settings import Settings
from scoreloop.core.store import Outcome as StoredOutcome
from scoreloop.core.store import RecordStore, StoreUnavailable
from scoreloop.serving import clientlog
from scoreloop.serving.access import RequireKey
from scoreloop.serving.alerts import TierAlerts
from scoreloop.serving.arrow import ARROW_STREAM, arrow_bytes, read_arrow
from scoreloop.serving.bento import MODEL_TAG_ENV
from scoreloop.serving.docs import SCHEMA_ROUTE, docs_page, docs_schema
from scoreloop.serving.follow import Champion, load_served
from scoreloop.serving.guard import RequestGuard
from scoreloop.serving.history import record_history
from scoreloop.serving.jsonbody import columns_reader, records_reader
from scoreloop.serving.schema import (
    CalibrationInfo,
    Explained,
    Following,
    HistoryEntry,
    Metadata,
    Outcome,
    Reloaded,
    Scored,
    ScoredColumns,
    Stored,
    columns_type,
    record_model,
    records_type,
    strict_input,
)
from scoreloop.serving.scorelog import ScoreLog
from scoreloop.serving.scoring import as_columns, explain_rows, records_json, score_rows
from scoreloop.serving.storewatch import StoreWatch

FEEDBACK_ROUTE = "/feedback"
ARROW_ROUTE = "/score/arrow"
RELOAD_ROUTE = "/admin/reload"

settings = Settings()
limits = settings.serve
_bento_model = bentoml.models.BentoModel(os.environ.get(MODEL_TAG_ENV, "scoreloop-model:latest"))
_loaded = load_served(_bento_model)  # in the serving process first: a bad model stops `bentoml serve` with a reason
_spec = _loaded.model.spec  # what the request schema is built from: a champion with another spec needs a restart
Records = records_type(_spec, limits.max_records)
Columns = columns_type(_spec, limits.max_records)
ScoredList = Annotated[  # serialised by msgspec (`records_json`) rather than by pydantic, several times faster
    bytes,
    BeforeValidator(records_json),
    ContentType("application/json"),
    WithJsonSchema({"type": "array", "items": Scored.model_json_schema()}),
]
ScoredTable = Annotated[ScoredColumns, BeforeValidator(as_columns)]
Top = Annotated[int, Field(ge=1, le=len(_spec.features), description="Reasons per record.")]
metadata_app = FastAPI(
    title="scoreloop metadata",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@cache
def _metrics() -> dict[str, Any]:
    """Prometheus counters, created on first use inside a worker (after BentoML set up multiprocess metrics)."""
    from prometheus_client import Counter, Gauge

    return {
        "records": Counter("scoreloop_scored_records", "Records scored by /score", ["model", "version"]),
        "unseen": Counter(
            "scoreloop_unseen_categories", "Scored values outside a feature's known categories", ["field"]
        ),
        "missing": Counter("scoreloop_missing_fields", "Scored records missing an optional feature", ["field"]),
        "log_failures": Counter("scoreloop_scoring_log_failures", "Failed attempts to write the scoring log"),
        "store_writable": Gauge(
            "scoreloop_store_writable", "1 while the record store takes writes, else 0", multiprocess_mode="min"
        ),
        "store_refusals": Counter(
            "scoreloop_store_refusals", "Requests answered 503 because the record store took no writes", ["route"]
        ),
        "alert_failures": Counter("scoreloop_alert_failures", "Failed tier-alert deliveries (attempts and drops)"),
        "alerts_delivered": Counter("scoreloop_alerts_delivered", "Tier alerts the webhook accepted"),
        "swaps": Counter("scoreloop_model_swaps", "Champion versions swapped in without a restart", ["version"]),
        "swap_failures": Counter(
            "scoreloop_model_swap_failures",
            "Champion versions not swapped in (import, load, digest or smoke score failed; version '': alias lookup)",
            ["version"],
        ),
        "restart_needed": Gauge(
            "scoreloop_restart_needed",
            "1 while the champion takes another input spec than the served model: restart to serve it",
            multiprocess_mode="max",
        ),
    }


@bentoml.service(
    name="scoreloop",
    workers=limits.workers,
    traffic={"timeout": 30},
)
@bentoml.asgi_app(metadata_app, path="/")
class Scorer:
    bento_model = _bento_model

    def __init__(self) -> None:
        self.metrics = _metrics()
        self.champion = Champion(
            settings,
            _loaded,
            on_swap=lambda version: self.metrics["swaps"].labels(version).inc(),
            on_failure=lambda version: self.metrics["swap_failures"].labels(version or "").inc(),
            on_restart=lambda needed: self.metrics["restart_needed"].set(int(needed)),
        )
        self.champion.start()  # each worker follows the alias for itself
        self.store = RecordStore(settings.record_store_url, busy_seconds=limits.store_wait_seconds)
        self.watch = StoreWatch(self.store, on_change=self.metrics["store_writable"].set)
        self.log = ScoreLog(
            self.store,
            _spec,
            max_rows=limits.log_queue_rows,
            max_bytes=limits.log_queue_bytes,
            ack=limits.log_ack,
            on_failure=self.metrics["log_failures"].inc,
        )
        self.alerts = None
        if settings.alerts.enabled:
            failed, delivered = self.metrics["alert_failures"].inc, self.metrics["alerts_delivered"].inc
            self.alerts = TierAlerts(settings.alerts, self.store, on_failure=failed, on_delivered=delivered)

    def __is_ready__(self) -> bool:
        """Ready while the record store takes writes: /readyz tells a load balancer when to send traffic elsewhere."""
        return self.watch.reason is None

    @bentoml.on_shutdown
    def close(self) -> None:
        self.champion.close()
        self.log.close()
        self.watch.close()
        if self.alerts is not None:
            self.alerts.close()

    @bentoml.api(batchable=True, max_batch_size=limits.max_batch_size, max_latency_ms=limits.max_latency_ms)
    async def score(self, records: Records) -> ScoredList:  # type: ignore[valid-type]
        """Probability, 0-100 score and tier per record (a list of record objects, or one object)."""
        return await self._score_soon(records)

    @bentoml.api(
        route="/score/columns",
        batchable=True,
        max_batch_size=limits.max_batch_size,
        max_latency_ms=limits.max_latency_ms,
    )
    async def score_columns(self, columns: Columns) -> ScoredTable:  # type: ignore[valid-type]
        """As /score, with records sent (and returned) as columns: one list of values per field."""
        return await self._score_soon(columns)

    @metadata_app.post(ARROW_ROUTE, response_class=Response)
    async def score_arrow(self, request: Request) -> Response:
        """As /score, for batch clients: the records as an Arrow IPC stream (a column per field), the answer too.

        Served by FastAPI rather than a BentoML API (which has no raw-body input): errors are answered here in
        BentoML's shape, `{"error": ..., "detail": [{"loc": [field, index], "msg": ...}]}`.
        """
        body = await request.body()
        try:
            scored = await run_in_threadpool(lambda: self._score(read_arrow(body, _spec, limits.max_records)))
        except ValidationError as exc:
            detail = exc.errors(include_url=False, include_context=False, include_input=False)
            return JSONResponse(
                {"error": f"{exc.error_count()} validation error for {exc.title}", "detail": detail}, 400
            )
        except BentoMLException as exc:  # 413 too many records, 503 the scoring log cannot keep up
            return JSONResponse({"error": str(exc)}, exc.error_code.value)
        return Response(arrow_bytes(scored), media_type=ARROW_STREAM)

    async def _score_soon(self, rows: np.ndarray) -> np.ndarray:
        """A small call (`inline_records`) is scored right here on the event loop: its work (~0.7 ms for one record)
        costs less than the hand-off to a worker thread and back; a larger one, or a scoring log that would make it
        wait, goes to a thread."""
        if len(rows) > limits.inline_records:
            return await run_in_threadpool(self._score, rows)
        model, scored = self._scored(rows)
        if not self.log.submit(rows, scored, wait=False):
            await run_in_threadpool(self.log.submit, rows, scored)
        return self._published(model, rows, scored)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        model, scored = self._scored(rows)
        self.log.submit(rows, scored)
        return self._published(model, rows, scored)

    def _scored(self, rows: np.ndarray) -> tuple[ScoringModel, np.ndarray]:
        self._refuse_if_store_down("/score", "scoring what could not be logged")
        model = self.champion.served.model  # taken once: a swap during this request does not change its version
        return model, score_rows(model, rows)

    def _published(self, model: ScoringModel, rows: np.ndarray, scored: np.ndarray) -> np.ndarray:
        """After the log took the rows: tier alerts and the /metrics counts."""
        if self.alerts is not None:
            self.alerts.observe(scored)
        self._count(model, rows)
        return scored

    def _count(self, model: ScoringModel, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        self.metrics["records"].labels(model.name, model.version).inc(len(rows))
        missing, unseen = field_counts(rows, _spec)  # required features are never missing in accepted rows
        for name, count in missing.items():
            self.metrics["missing"].labels(name).inc(count)
        for name, count in unseen.items():
            self.metrics["unseen"].labels(name).inc(count)

    @bentoml.api
    def explain(self, records: Records, top: Top = limits.explain_top) -> list[Explained]:  # type: ignore[valid-type]
        """Score records and give the `top` features behind each probability, in words and signed points."""
        return explain_rows(self.champion.served.model, records, top)

    @bentoml.api(route=FEEDBACK_ROUTE)
    def feedback(self, outcomes: Annotated[list[Outcome], Field(max_length=limits.max_records)]) -> Stored:
        """Record what happened to scored ids; committed to the record store before the response."""
        self._refuse_if_store_down(FEEDBACK_ROUTE, "storing outcomes")
        try:
            stored = self.store.add_outcomes(StoredOutcome(o.id, int(o.converted), o.at) for o in outcomes)
        except StoreUnavailable as exc:
            self.watch.failed(str(exc))
            self.metrics["store_refusals"].labels(FEEDBACK_ROUTE).inc()
            raise ServiceUnavailable(f"not stored: {exc}") from None
        return Stored(stored=stored)

    def _refuse_if_store_down(self, route: str, what: str) -> None:
        if (reason := self.watch.reason) is not None:
            self.metrics["store_refusals"].labels(route).inc()
            raise ServiceUnavailable(f"not {what}: the record store does not take writes ({reason})")

    @metadata_app.get("/", response_class=HTMLResponse)
    def docs(self) -> HTMLResponse:
        """The API docs (Swagger UI over /docs.json), loading nothing from another host."""
        return docs_page()

    @metadata_app.get(SCHEMA_ROUTE)
    def openapi_schema(self) -> dict[str, Any]:
        """The schema the docs page shows: /docs.json with scoreloop's description."""
        return docs_schema(Scorer.openapi_spec.asdict())

    @metadata_app.get("/metadata")
    def metadata(self) -> Metadata:
        """What is served: model, version, run, windows, metrics, calibration, tier cut-offs, and the input schema."""
        served, champion = self.champion.served, self.champion
        card = served.model.card
        return Metadata(
            model=served.model.name,
            version=served.model.version,
            run_id=card.run_id,
            windows=card.windows,
            metrics={"validation": served.validation_metrics, "holdout": card.metrics},
            tier_cutoffs=card.tier_cutoffs,
            score_scale="percentile of the calibrated probability among the holdout records (0-100)",
            calibration=CalibrationInfo(method=card.calibration.method, rows=card.calibration.rows),
            max_records=limits.max_records,
            required=_spec.required,
            input_schema=record_model(_spec).model_json_schema(),
            following=Following(
                alias=champion.alias,
                poll_seconds=settings.serve.champion_poll_seconds,
                champion=champion.champion,
                checked_at=champion.checked_at,
                restart_needed=champion.restart_needed,
                last_failure=champion.last_failure,
            ),
        )

    @metadata_app.post(RELOAD_ROUTE, response_model=Reloaded)
    async def reload(self) -> JSONResponse:
        """Check the champion alias now and swap to a new version that loads, verifies and takes the same input
        (a version refused before is tried again): 200 unchanged or swapped, 409 restart needed, 502 not swapped
        (the old version serves on). Needs the API key; refused when none is configured."""
        check = await run_in_threadpool(lambda: self.champion.check(retry=True))
        status = {"restart needed": 409, "not swapped": 502, "lookup failed": 502}.get(check.outcome, 200)
        body = Reloaded(outcome=check.outcome, served=check.served, champion=check.champion, detail=check.detail)
        return JSONResponse(body.model_dump(), status)

    @metadata_app.get("/records/{record_id}/history", response_model=list[HistoryEntry])
    def history(self, record_id: str) -> Any:
        """Every scoring of one record, oldest first, its outcome if known, and the top reasons at each score."""
        if problem := id_problem(record_id):
            return JSONResponse({"error": "invalid record id", "detail": [{"loc": ["id"], "msg": problem}]}, 400)
        return record_history(self.store, record_id, self._served, limits.explain_top)

    def _served(self, name: str, version: str) -> Any:
        """The served model for its own scorings; None for other versions (this server cannot load them)."""
        model = self.champion.served.model
        return model if (name, version) == (model.name, model.version) else None


_fast_readers = {
    "score": records_reader(_spec, limits.max_records),
    "score_columns": columns_reader(_spec, limits.max_records),
}
for _name, _api in Scorer.apis.items():
    _api.input_spec = strict_input(_api.input_spec, _fast_readers.get(_name))
clientlog.install()
logging.getLogger("scoreloop.serving").setLevel(logging.INFO)  # a swap is news to whoever reads the log
_key = None if limits.api_key is None else limits.api_key.get_secret_value()
# The outer middleware: a 401 before the body is read; /feedback is closed by a key, /admin/reload always (403 when
# no key is configured).
_closed = (FEEDBACK_ROUTE, RELOAD_ROUTE) if _key is not None else (RELOAD_ROUTE,)
Scorer.add_asgi_middleware(RequireKey, key=_key, paths=_closed)
Scorer.add_asgi_middleware(
    RequestGuard, max_body_bytes=limits.max_body_bytes, body_seconds=limits.body_seconds, raw_paths=(ARROW_ROUTE,)
)
