"""What is refused before any endpoint parses a body: a wrong media type, a body too large, a body that stalls.

BentoML answers a `multipart/form-data` body without a boundary with a 500, parses `text/plain` as JSON, and reads a
body of any size whole before a handler can look at it. `RequestGuard` sits in front of every route and reads the
body itself, so that each of these is a 4xx saying what is wrong, decided on the headers where it can be:
- a media type the endpoint does not speak: 415 (the JSON endpoints speak JSON, forms and multipart; `/score/arrow`
  speaks anything, it reads the bytes);
- multipart without a boundary, or a form its parser cannot read: 400 (parsed here first: BentoML would answer
  the parser's 400 with a 500);
- a `Content-Length` above `max_body_bytes`: 413 before a byte is read; a body without one is counted while it
  arrives and refused with a 413 as soon as it passes the limit;
- a body not received in full within `body_seconds`: 408.
Every 503 (store not taking writes, scoring log behind, batching queue full) gets a `Retry-After`.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
JSON_MEDIA = frozenset({"application/json", *FORMS})
RETRY_AFTER = b"5"  # seconds: long enough for a lock or a restart, short enough for a client that waits


class RequestGuard:
    """ASGI middleware: refuse what no endpoint should parse, then hand the app the body it read."""

    def __init__(self, app: Any, *, max_body_bytes: int, body_seconds: float, raw_paths: tuple[str, ...]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_seconds = body_seconds
        self.raw_paths = raw_paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_retry_after(send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope["path"].rstrip("/"), headers)
        if refusal is None:
            body, refusal = await self._read(receive)
        if refusal is None and headers.get("content-type", "").lower().startswith(FORMS):
            refusal = await _form_refusal(scope, body, receive)
        if refusal is not None:
            await JSONResponse({"error": refusal[1]}, refusal[0])(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _refusal(self, path: str, headers: Headers) -> tuple[int, str] | None:
        """What the headers alone refuse, as (status, reason)."""
        content_type = headers.get("content-type", "application/json")
        media = content_type.split(";")[0].strip().lower()
        if path not in self.raw_paths and media not in JSON_MEDIA:
            return 415, f"unsupported media type {media!r}: send one of {sorted(JSON_MEDIA)}"
        if media == "multipart/form-data" and "boundary=" not in content_type.lower():
            return 400, "multipart/form-data without a boundary parameter in its Content-Type"
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return 413, self._too_large(f"{int(length)} bytes")
        if length and not length.isdigit():
            return 400, f"Content-Length {length!r} is not a number of bytes"
        return None

    async def _read(self, receive: Any) -> tuple[bytes, tuple[int, str] | None]:
        chunks, size = [], 0
        with anyio.move_on_after(self.body_seconds) as timer:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return b"", (400, "the client disconnected before sending the whole body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    return b"", (413, self._too_large(f"more than {self.max_body_bytes} bytes"))
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if timer.cancelled_caught:
            return b"", (408, f"the request body did not arrive within {self.body_seconds:g} s")
        return b"".join(chunks), None

    def _too_large(self, size: str) -> str:
        return (
            f"the request body has {size}; at most {self.max_body_bytes} are read (SCORELOOP_SERVE__MAX_BODY_BYTES): "
            "split it, or score files with `scoreloop score`"
        )


async def _form_refusal(scope: dict, body: bytes, receive: Any) -> tuple[int, str] | None:
    """A 400 for a form body Starlette's parser (the one BentoML uses) cannot read."""
    try:
        form = await Request(scope, _replay(body, receive)).form()
    except HTTPException as exc:
        return 400, f"unreadable form data: {exc.detail}"
    await form.close()
    return None


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that hands over `body` once, then the server's own (which tells when the client goes)."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _with_retry_after(send: Any) -> Any:
    async def guarded(message: dict) -> None:
        if message["type"] == "http.response.start" and message["status"] == 503:
            message = {**message, "headers": [*message.get("headers", []), (b"retry-after", RETRY_AFTER)]}
        await send(message)

    return guarded
