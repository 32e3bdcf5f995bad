"""The progress callback's arithmetic, and the CLI's bar: drawn on a terminal, silent anywhere else."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from scoreloop.cli import app as cli_app
from scoreloop.core.progress import within


def test_a_sub_operation_fills_its_units_of_the_outer_one() -> None:
    heard: list[tuple[float, float, str]] = []
    arm = within(lambda *call: heard.append(call), 1, 9, "seed 0, explore", span=2)
    cycle = within(arm, 1, 2, "cycle 2 of 2, retrain")
    arm(0, 2, "cycle 1 of 2")
    cycle(2, 4, "training: trial 1 of 1")
    cycle(0, 0, "nothing to count")
    assert heard == [
        (1, 9, "seed 0, explore: cycle 1 of 2"),
        (2.5, 9, "seed 0, explore: cycle 2 of 2, retrain: training: trial 1 of 1"),
        (2, 9, "seed 0, explore: cycle 2 of 2, retrain: nothing to count"),
    ]


@pytest.mark.parametrize("terminal", [True, False])
def test_the_bar_is_drawn_only_on_a_terminal(terminal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli_app, "console", Console(file=out, force_terminal=terminal, width=120))
    with cli_app.progress_bar("training 3 trials") as progress:
        progress(1, 3, "trial 1 of 3, best valid AUC 0.8123")
    drawn = "training 3 trials" in out.getvalue() and "trial 1 of 3, best valid AUC 0.8123" in out.getvalue()
    assert drawn == terminal
    assert terminal or out.getvalue() == ""
