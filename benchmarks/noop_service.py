"""The cheapest requests BentoML can serve in scoreloop's shape, as floors for `benchmarks.serving`:
- `/noop`, a FastAPI route mounted on a service, reading the whole body and answering a short one: the floor under
  which no served `/score/arrow` call can go on this machine;
- `/noop_api`, a BentoML API declared as `/score` is (adaptive batching, the same batch size and latency budget, a
  JSON body `{"records": [...]}`) that answers 1 per record: BentoML's own path for one `/score` call, the floor
  under which no single-record `/score` call can go."""

from __future__ import annotations

from typing import Any

import bentoml
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from scoreloop.core.settings import ServeSettings

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
_serve = ServeSettings()


@bentoml.service(name="noop", workers=1, traffic={"timeout": 30})
@bentoml.asgi_app(app, path="/")
class Noop:
    @app.post("/noop")
    async def noop(self, request: Request) -> Response:
        body = await request.body()
        return Response(body[:100], media_type="application/octet-stream")

    @bentoml.api(batchable=True, max_batch_size=_serve.max_batch_size, max_latency_ms=_serve.max_latency_ms)
    async def noop_api(self, records: list[Any]) -> list[int]:
        return [1] * len(records)
