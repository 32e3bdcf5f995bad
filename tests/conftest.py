"""Hypothesis explores freely on a developer's machine; CI (CI=1) replays a fixed, derandomised set so a run is
reproducible and a landing never depends on luck. Failures found locally become @example cases."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
