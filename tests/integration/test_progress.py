"""Long commands draw their progress on a terminal and write none into logs: the real CLI on a pseudo-terminal and
on pipes, training and monitoring a small generated export."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import cli, cli_on_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours, cursor moves and line erases of a live display
SMALL = {"SCORELOOP_TRAIN__MAX_ITERATIONS": "60", "SCORELOOP_TRAIN__BASELINES": "false"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a generated export and its spec."""
    home = tmp_path_factory.mktemp("progress")
    cli(home, "data", "generate", "--rows", "2500", "--seed", "5", "-o", str(home / "export.csv"))
    cli(
        home,
        "spec",
        "infer",
        str(home / "export.csv"),
        "--target",
        "converted",
        "-o",
        str(home / "spec.yaml"),
    )
    return home


def test_train_and_monitor_show_progress_on_a_terminal(home: Path) -> None:
    data = ("--spec", str(home / "spec.yaml"), "--data", str(home / "export.csv"))
    trained = ANSI.sub("", cli_on_terminal(home, "train", *data, "--trials", "2", env=SMALL))
    assert "training 2 trials" in trained and "trial 1 of 2" in trained and "trial 2 of 2, best valid AUC 0." in trained
    assert "runs: http://127.0.0.1:5000/#/experiments/" in trained
    monitored = ANSI.sub("", cli_on_terminal(home, "monitor", *_monitor_files(home)))
    assert "monitoring" in monitored and "drift report (Evidently)" in monitored


def test_train_and_monitor_write_no_progress_into_logs(home: Path) -> None:
    data = ("--spec", str(home / "spec.yaml"), "--data", str(home / "export.csv"))
    trained = cli(home, "train", *data, "--trials", "1", env=SMALL)
    monitored = cli(home, "monitor", *_monitor_files(home))
    for run in (trained, monitored):
        logged = run.stdout + run.stderr
        assert "trial 1 of 1" not in logged and "drift report (Evidently)" not in logged and "\x1b[?25l" not in logged
    assert "best_params" in trained.stdout and "monitoring" in monitored.stdout  # the results themselves are there


def _monitor_files(home: Path) -> tuple[str, ...]:
    """`monitor` on the export against itself: its steps run, whatever it finds."""
    export = str(home / "export.csv")
    return ("--reference", export, "--current", export, "--spec", str(home / "spec.yaml"))
