"""The tracking-store probe `scoreloop train` runs first, against real sockets: nothing listening, and a server that
takes the connection but never answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoreloop.core.settings import Settings
from scoreloop.core.tracking import unreachable_reason


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener completes TCP handshakes (the kernel's backlog) and never reads or answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on return: connections are refused


def settings_for(tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    return Settings(home=tmp_path)


def test_nothing_listening_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = unreachable_reason(settings_for(tmp_path, closed_port(), monkeypatch), timeout_seconds=1)
    assert reason is not None and "Connection refused" in reason and "\n" not in reason


def test_a_server_slow_to_answer_is_not_unreachable(
    tmp_path: Path, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert unreachable_reason(settings_for(tmp_path, silent_port, monkeypatch), timeout_seconds=1) is None
