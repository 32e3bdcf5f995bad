"""`python -m scoreloop` runs the CLI."""

from scoreloop.cli import run

run()
