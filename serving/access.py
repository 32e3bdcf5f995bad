"""Who may write: `/feedback` steers the next model and `/admin/reload` changes the served one, so both can be closed.

`/feedback` needs the API key when one is set, and one must be set to serve on any address but loopback unless the
user opts out (`--open-feedback`); `/admin/reload` always needs it. Keys are compared in constant time and never
logged or echoed.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from starlette.responses import JSONResponse

from scoreloop.core.settings import ServeSettings

WRONG_KEY = "missing or wrong API key (Authorization: Bearer <key>)"
NO_KEY = "no API key is configured (SCORELOOP_SERVE__API_KEY): {path} is refused until one is"


def bind_problem(host: str, serve: ServeSettings) -> str | None:
    """Why the service must not bind `host` with these settings (one line), or None when it may."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        return f"--host must be an IP address (BentoML binds addresses, not names), e.g. 127.0.0.1; got {host!r}"
    if loopback or serve.api_key is not None or serve.open_feedback:
        return None
    return (
        f"refusing to serve on {host} without an API key: anyone who reaches it could write /feedback and steer the "
        "next model; set SCORELOOP_SERVE__API_KEY (`openssl rand -hex 24`), or pass --open-feedback "
        "(SCORELOOP_SERVE__OPEN_FEEDBACK=true) to serve it open"
    )


class RequireKey:
    """ASGI middleware: requests to `paths` need `Authorization: Bearer <key>`, answered 401 before the body is
    read; with no key (`key=None`) they are refused outright (403, with the reason)."""

    def __init__(self, app: Any, key: str | None, paths: tuple[str, ...]) -> None:
        self.app = app
        self.expected = None if key is None else f"Bearer {key}".encode()
        self.paths = paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope["path"].rstrip("/") if scope["type"] == "http" else None
        if path in self.paths:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if self.expected is None:
                await JSONResponse({"error": NO_KEY.format(path=path)}, 403)(scope, receive, send)
                return
            if not hmac.compare_digest(given, self.expected):
                await JSONResponse({"error": WRONG_KEY}, 401)(scope, receive, send)
                return
        await self.app(scope, receive, send)
