"""`python -m scoreloop` runs the CLI."""

from scoreloop.cli.main import run

run()
