"""Schemathesis against the live service's own OpenAPI schema (/docs.json): valid and invalid requests generated for
every operation; no 5xx, ever, and every 4xx says what is wrong in words."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

pytestmark = pytest.mark.slow

OPERATIONS = ["POST /score", "POST /score/columns", "POST /explain", "POST /feedback"]  # GET /metadata takes no input
EXAMPLES = int(os.environ.get("SCORELOOP_SCHEMATHESIS_EXAMPLES", "250"))  # per operation and mode


def readable(body: object) -> bool:
    """A 4xx body names the problem: BentoML's {"error": ..., "detail": [{"loc", "msg"}]} or {"error": ...}."""
    if isinstance(body, list) and len(body) == 1:  # BentoML wraps the message of a 4xx it raises in a list
        body = body[0]
    if not isinstance(body, dict) or not str(body.get("error", "")).strip():
        return False
    return all(str(item.get("msg", "")).strip() and "loc" in item for item in body.get("detail", []))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests_never_get_a_5xx(server: str, label: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    operation = schema[label.split()[1]][label.split()[0]]
    calls = {"count": 0}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=server, timeout=30)
        calls["count"] += 1
        assert response.status_code < 500, f"{case.as_curl_command()} -> {response.status_code}: {response.text}"
        if 400 <= response.status_code < 500:
            assert readable(response.json()), f"{case.as_curl_command()} -> unreadable {response.text}"

    check()
    assert calls["count"] >= EXAMPLES // 3  # 8 runs x EXAMPLES: thousands of requests in all by default
