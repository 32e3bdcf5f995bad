"""The cheapest request BentoML can serve in scoreloop's shape: a FastAPI route mounted on a service, reading the
whole body and answering a short one. `benchmarks.serving` times it with the 1,000-record Arrow body, as the floor
under which no served `/score/arrow` call can go on this machine."""

from __future__ import annotations

import bentoml
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(name="noop", workers=1, traffic={"timeout": 30})
@bentoml.asgi_app(app, path="/")
class Noop:
    @app.post("/noop")
    async def noop(self, request: Request) -> Response:
        body = await request.body()
        return Response(body[:100], media_type="application/octet-stream")
