"""Who may write: the bind rule and the key check, on a real ASGI app (Starlette's test client)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from scoreloop.core.settings import ServeSettings
from scoreloop.serving.access import RequireKey, bind_problem

KEY = "0123456789abcdef-key"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1"])
def test_loopback_needs_no_key(host: str) -> None:
    assert bind_problem(host, ServeSettings()) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_any_other_address_needs_a_key_or_the_explicit_opt_out(host: str) -> None:
    problem = bind_problem(host, ServeSettings())
    assert problem is not None and "\n" not in problem
    assert f"refusing to serve on {host} without an API key" in problem
    assert "SCORELOOP_SERVE__API_KEY" in problem and "--open-feedback" in problem
    assert bind_problem(host, ServeSettings(api_key=KEY)) is None
    assert bind_problem(host, ServeSettings(open_feedback=True)) is None


def test_a_host_name_is_refused_naming_the_option() -> None:
    assert "--host must be an IP address" in str(bind_problem("example.com", ServeSettings()))


def app(key: str | None) -> TestClient:
    routes = [Route(path, lambda request: PlainTextResponse("done"), methods=["POST"]) for path in ("/w", "/open")]
    return TestClient(RequireKey(Starlette(routes=routes), key=key, paths=("/w",)))


def test_the_guarded_path_needs_the_key_and_others_do_not() -> None:
    client = app(KEY)
    assert client.post("/w").status_code == 401
    wrong = client.post("/w", headers={"authorization": "Bearer 0123456789abcdef-kez"})
    assert wrong.status_code == 401 and KEY not in wrong.text
    assert client.post("/w/", headers={"authorization": f"Bearer {KEY}"}).text == "done"
    assert client.post("/open").text == "done"


def test_without_a_configured_key_the_guarded_path_is_refused_with_the_reason() -> None:
    refused = app(None).post("/w", headers={"authorization": "Bearer anything-at-all-here"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "no API key is configured (SCORELOOP_SERVE__API_KEY): /w is refused until one is"
