"""What the served API refuses, on the session's real `bentoml serve`: bodies it should not parse (wrong media type,
multipart without a boundary, too large, not JSON, invalid UTF-8 in Arrow), requests outside the contract (unknown
top-level keys, NaN), implausible outcomes; each a 4xx logged as one line without the request's values. Then
generated bodies of every kind, never a 5xx."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore, ipc_bytes
from scoreloop.serving.arrow import ARROW_STREAM

pytestmark = pytest.mark.slow

JSON_ROUTES = ["/score", "/score/columns", "/explain", "/feedback"]
LIMIT = Settings().serve.max_body_bytes


def post(server: str, path: str, content: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{server}{path}", content=content, headers={"content-type": content_type, **headers}, timeout=30)


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_multipart_without_a_boundary_and_non_json_types_are_4xx(server: str, route: str) -> None:
    no_boundary = post(server, route, b"--x\r\n", "multipart/form-data")
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["error"]
    for media in ("text/plain", "application/octet-stream"):
        refused = post(server, route, b'{"records": []}', media)
        assert refused.status_code == 415 and media in refused.json()["error"]


def test_a_body_over_the_limit_is_refused_from_its_length_or_as_it_arrives(server: str) -> None:
    host, port = urlparse(server).hostname, urlparse(server).port
    with socket.create_connection((host, port), timeout=30) as sock:  # announced, never sent: refused unread
        sock.sendall(f"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     f"content-length: {LIMIT + 1}\r\n\r\n".encode())  # fmt: skip
        assert sock.recv(200).startswith(b"HTTP/1.1 413")

    def chunks():  # no Content-Length: counted while it arrives
        yield b'{"records": [{"industry": "'
        for _ in range(LIMIT // 2**20 + 1):
            yield b"x" * 2**20
        yield b'"}]}'

    streamed = httpx.post(f"{server}/score", content=chunks(), headers={"content-type": "application/json"}, timeout=60)
    assert streamed.status_code == 413 and "SCORELOOP_SERVE__MAX_BODY_BYTES" in streamed.json()["error"]


def test_arrow_text_that_is_not_utf8_is_a_400(server: str) -> None:
    good = ipc_bytes(pa.table({"industry": ["saas", "abcde"]}))
    for bad in (good.replace(b"industry", b"indust\xff\xfe"), good.replace(b"abcde", b"ab\xffde")):
        response = post(server, "/score/arrow", bad, ARROW_STREAM)
        assert response.status_code == 400 and "UTF-8" in response.json()["detail"][0]["msg"]


def test_nan_literals_and_unknown_top_level_keys_are_400s(server: str) -> None:
    nan = post(server, "/score", b'{"records": [{"employees": NaN}]}', "application/json")
    assert nan.status_code == 400 and nan.json()["detail"][0]["type"] == "json_invalid"
    extra = httpx.post(f"{server}/score", json={"records": [], "recrods": []}, timeout=30)
    assert extra.status_code == 400 and extra.json()["detail"][0]["loc"] == ["recrods"]


def test_feedback_reads_ids_truths_and_times_as_the_rest_of_the_project(server: str, trained_home: Path) -> None:
    def feedback(*outcomes: dict) -> httpx.Response:
        return httpx.post(f"{server}/feedback", json={"outcomes": list(outcomes)}, timeout=30)

    for bad in ({"id": "   ", "converted": True}, {"id": "f-1", "converted": "off"},
                {"id": "f-1", "converted": True, "at": "0001-01-01T00:00:00"},
                {"id": "f-1", "converted": True, "at": "9999-01-01T00:00:00Z"}):  # fmt: skip
        assert feedback(bad).status_code == 400, bad
    accepted = feedback({"id": " f-2 ", "converted": "yes"}, {"id": "f-3", "converted": 0.0},
                        {"id": "f-3", "converted": "true", "at": "2026-01-02T03:04:05Z"})  # fmt: skip
    assert accepted.json() == {"stored": 3}
    outcomes = RecordStore(f"sqlite:///{trained_home / 'records.db'}").outcomes().set_index("record_id")
    assert outcomes.loc["f-2", "outcome"] == 1
    assert outcomes.loc["f-3", "outcome"] == 1  # one outcome per id: the latest wins


def test_a_refused_request_is_one_log_line_without_its_values(server: str, trained_home: Path) -> None:
    secret = "personal-value-4c1d"
    response = httpx.post(f"{server}/score", json={"records": [{"employees": [secret]}]}, timeout=30)
    assert response.status_code == 400
    log = (trained_home / "serve.log").read_text()
    assert secret not in log and "Traceback" not in log
    assert "refused POST /score: 400, 1 validation error(s) at ['records.0.employees']" in log


VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=20) | st.integers(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
JSONISH = VALUES.map(lambda value: json.dumps(value).encode())  # NaN and Infinity included, as Python writes them
FIELD = st.sampled_from(["records", "columns", "outcomes", "top", "x"])
PARTS = st.lists(st.tuples(FIELD, st.binary(max_size=200) | JSONISH), max_size=3).map(
    lambda parts: b"".join(b'--x\r\ncontent-disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value)
                           for name, value in parts) + b"--x--\r\n"
)  # fmt: skip


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (CI installs Debian's chromium)")
def test_the_docs_page_loads_nothing_from_another_host(server: str, tmp_path: Path) -> None:
    """The page's Content-Security-Policy keeps the browser on the host, and Chromium logs every load it blocks:
    headless Chromium renders the operations with nothing blocked, so the page tried nothing elsewhere (BentoML's
    page loads Google Tag Manager, and its schema's description badges from shields.io)."""
    page = httpx.get(f"{server}/", timeout=30)
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert not re.findall(r'(?:src|href)="(?!\./)', page.text)  # scripts, styles and icon from this host
    browser = subprocess.run(
        ["chromium", "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", f"{server}/"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "/score/columns" in browser.stdout, browser.stderr[-2000:]  # Swagger UI rendered the operations
    assert not [line for line in browser.stderr.splitlines() if "Content Security Policy" in line]


BODIES = st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode), JSONISH, PARTS)
MEDIA = st.sampled_from(["application/json", "multipart/form-data", "multipart/form-data; boundary=x",
                         "application/x-www-form-urlencoded", ARROW_STREAM, "text/plain", ""])  # fmt: skip


@given(route=st.sampled_from([*JSON_ROUTES, "/score/arrow"]), body=BODIES, media=MEDIA)
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_generated_raw_multipart_and_arrow_bodies_never_get_a_5xx(server: str, route: str, body: bytes,
                                                                  media: str) -> None:  # fmt: skip
    if media == ARROW_STREAM and body:
        body = ipc_bytes(pa.table({"industry": [body.decode("latin-1")]}))[: len(body) + 200]  # truncated streams too
    response = post(server, route, body, media)
    assert response.status_code < 500, f"{route} {media} {body[:200]!r} -> {response.status_code}: {response.text}"
