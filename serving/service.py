"""The BentoML service: loads the imported champion once, scores, explains, and takes outcomes back.

BentoML discovers services by import path, so this module loads its model when imported, after checking its files
against the digest recorded at import: a missing, altered or unreadable model stops `bentoml serve` with the reason
before any worker starts. The request schema is generated from the spec stored with that model, and the limits come
from `Settings().serve`.
`SCORELOOP_BENTO_MODEL` names the model tag (set by `scoreloop serve`); a built bento serves the model it was
built with.

- `POST /score` (`{"records": [...]}`) and `POST /score/columns` (`{"columns": {...}}`): bodies decoded by msgspec
  straight into typed columns (`serving.jsonbody`; pydantic names the problems of a refused one); adaptive batching
  merges concurrent requests; each request is validated on its own first, so one bad record fails only its request.
- `POST /score/arrow`: the same for batch clients, with an Arrow IPC stream in and out (no JSON on either side).
- `POST /explain`: the top reasons per record from CatBoost's SHAP values, in points of the calibrated probability
  (not logged: it is not a decision).
- `POST /feedback`: outcomes, committed to the record store before the 200; optionally behind an API key.
- `/readyz` is ready while the record store takes writes (`serving.storewatch`); bodies are bounded and typed before
  any endpoint reads them (`serving.guard`); client errors are logged as one line (`serving.clientlog`).
- `GET /metadata`: model, version, run, windows, metrics, calibration, tier cut-offs, input schema.
- `GET /records/{id}/history`: every scoring of one record, its outcome and the reasons (`serving.history`).
- With `SCORELOOP_ALERTS__URL` and `__SECRET` set, tier crossings are posted to a webhook (`serving.alerts`).
"""

from __future__ import annotations

import hmac
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
from scoreloop.core.settings import Settings
from scoreloop.core.store import Outcome as StoredOutcome
from scoreloop.core.store import RecordStore, StoreUnavailable
from scoreloop.serving import clientlog
from scoreloop.serving.alerts import TierAlerts
from scoreloop.serving.arrow import ARROW_STREAM, arrow_bytes, read_arrow
from scoreloop.serving.bento import MODEL_TAG_ENV, load_verified
from scoreloop.serving.docs import SCHEMA_ROUTE, docs_page, docs_schema
from scoreloop.serving.guard import RequestGuard
from scoreloop.serving.history import record_history
from scoreloop.serving.jsonbody import columns_reader, records_reader
from scoreloop.serving.schema import (
    CalibrationInfo,
    Explained,
    HistoryEntry,
    Metadata,
    Outcome,
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

settings = Settings()
limits = settings.serve
_bento_model = bentoml.models.BentoModel(os.environ.get(MODEL_TAG_ENV, "scoreloop-model:latest"))
_model = load_verified(_bento_model)  # in the serving process first: a bad model stops `bentoml serve` with a reason
_spec = _model.spec
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
        self.model = _model
        self.validation_metrics: dict[str, float] = self.bento_model.info.metadata.get("validation_metrics", {})
        self.store = RecordStore(settings.record_store_url, busy_seconds=limits.store_wait_seconds)
        self.metrics = _metrics()
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
        self.log.close()
        self.watch.close()
        if self.alerts is not None:
            self.alerts.close()

    @bentoml.api(batchable=True, max_batch_size=limits.max_batch_size, max_latency_ms=limits.max_latency_ms)
    def score(self, records: Records) -> ScoredList:  # type: ignore[valid-type]
        """Probability, 0-100 score and tier per record (a list of record objects, or one object)."""
        return self._score(records)

    @bentoml.api(
        route="/score/columns",
        batchable=True,
        max_batch_size=limits.max_batch_size,
        max_latency_ms=limits.max_latency_ms,
    )
    def score_columns(self, columns: Columns) -> ScoredTable:  # type: ignore[valid-type]
        """As /score, with records sent (and returned) as columns: one list of values per field."""
        return self._score(columns)

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

    def _score(self, rows: np.ndarray) -> np.ndarray:
        self._refuse_if_store_down("/score", "scoring what could not be logged")
        scored = score_rows(self.model, rows)
        self.log.submit(rows, scored)
        if self.alerts is not None:
            self.alerts.observe(scored)
        self._count(rows)
        return scored

    def _count(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        self.metrics["records"].labels(self.model.name, self.model.version).inc(len(rows))
        missing, unseen = field_counts(rows, _spec)  # required features are never missing in accepted rows
        for name, count in missing.items():
            self.metrics["missing"].labels(name).inc(count)
        for name, count in unseen.items():
            self.metrics["unseen"].labels(name).inc(count)

    @bentoml.api
    def explain(self, records: Records, top: Top = limits.explain_top) -> list[Explained]:  # type: ignore[valid-type]
        """Score records and give the `top` features behind each probability, in words and signed points."""
        return explain_rows(self.model, records, top)

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
        card = self.model.card
        return Metadata(
            model=self.model.name,
            version=self.model.version,
            run_id=card.run_id,
            windows=card.windows,
            metrics={"validation": self.validation_metrics, "holdout": card.metrics},
            tier_cutoffs=card.tier_cutoffs,
            score_scale="percentile of the calibrated probability among the holdout records (0-100)",
            calibration=CalibrationInfo(method=card.calibration.method, rows=card.calibration.rows),
            max_records=limits.max_records,
            required=_spec.required,
            input_schema=record_model(_spec).model_json_schema(),
        )

    @metadata_app.get("/records/{record_id}/history", response_model=list[HistoryEntry])
    def history(self, record_id: str) -> Any:
        """Every scoring of one record, oldest first, its outcome if known, and the top reasons at each score."""
        if problem := id_problem(record_id):
            return JSONResponse({"error": "invalid record id", "detail": [{"loc": ["id"], "msg": problem}]}, 400)
        return record_history(self.store, record_id, self._served, limits.explain_top)

    def _served(self, name: str, version: str) -> Any:
        """The served model for its own scorings; None for other versions (this server cannot load them)."""
        return self.model if (name, version) == (self.model.name, self.model.version) else None


class RequireKey:
    """ASGI middleware: requests to `paths` need `Authorization: Bearer <key>`; a 401 before the body is read."""

    def __init__(self, app: Any, key: str, paths: tuple[str, ...]) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()
        self.paths = paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") in self.paths:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse({"error": "missing or wrong API key (Authorization: Bearer <key>)"}, 401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_fast_readers = {
    "score": records_reader(_spec, limits.max_records),
    "score_columns": columns_reader(_spec, limits.max_records),
}
for _name, _api in Scorer.apis.items():
    _api.input_spec = strict_input(_api.input_spec, _fast_readers.get(_name))
clientlog.install()
if limits.api_key is not None:  # the outer middleware: a 401 before the body is read
    Scorer.add_asgi_middleware(RequireKey, key=limits.api_key.get_secret_value(), paths=(FEEDBACK_ROUTE,))
Scorer.add_asgi_middleware(
    RequestGuard, max_body_bytes=limits.max_body_bytes, body_seconds=limits.body_seconds, raw_paths=(ARROW_ROUTE,)
)
