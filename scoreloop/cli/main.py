"""The `scoreloop` console script: the shared app with every command module registered on it."""

from __future__ import annotations

from pydantic import ValidationError

from scoreloop.cli import data, monitor, scores, serve, train  # noqa: F401  (each registers its commands on `app`)
from scoreloop.cli.app import app, print_error


def run() -> None:
    """Console entry point: an expected failure (bad input, missing model, refused credentials, unreachable
    store) prints one clear line and exits 2 instead of a traceback."""
    try:
        app()
    except ValidationError as exc:  # settings: one line for all of their problems
        print_error("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)))
        raise SystemExit(2) from None
    except (ValueError, LookupError, PermissionError, ConnectionError) as exc:
        print_error(str(exc))
        raise SystemExit(2) from None
