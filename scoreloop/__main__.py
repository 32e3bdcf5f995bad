"""`python -m scoreloop` runs the CLI."""

from scoreloop.cli import app

app()
