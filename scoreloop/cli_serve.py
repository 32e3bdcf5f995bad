"""`scoreloop` serve and bento: thin wrappers over `serving.bento`."""

from __future__ import annotations

from typing import Annotated

import typer

from scoreloop.cli import app, console, fail, settings_of


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 3000,
    host: str = "127.0.0.1",
) -> None:
    """Serve the champion with BentoML (POST /score)."""
    from serving.bento import serve as run_server

    console.print(f"serving the champion on http://{host}:{port}")
    try:
        raise typer.Exit(run_server(settings_of(ctx), host, port))
    except LookupError as exc:
        raise fail(str(exc)) from exc


@app.command()
def bento(ctx: typer.Context) -> None:
    """Build a bento holding the champion (`bentoml serve scoreloop:latest` serves it)."""
    from serving.bento import build

    try:
        raise typer.Exit(build(settings_of(ctx)))
    except LookupError as exc:
        raise fail(str(exc)) from exc
