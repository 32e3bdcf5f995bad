"""How long operations (training, simulation, retraining, monitoring, batch scoring) say how far they are: a plain
callback, so that only the CLI knows how to draw it and every stage stays silent unless a caller listens."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, float, str], None]
"""Called with (units done, units in all, a note on the current unit), e.g. (3, 10, "trial 3 of 10, ...")."""


def silent(done: float, total: float, note: str) -> None:
    """The default: nobody listens."""


def within(progress: Progress, done: float, total: float, label: str, span: float = 1) -> Progress:
    """A sub-operation's progress as the `span` units after `done` of the outer operation's `total`, filled in by
    the sub-operation's own share, its note after `label` (e.g. the training trials of a retrain step)."""

    def report(sub_done: float, sub_total: float, note: str) -> None:
        share = sub_done / sub_total if sub_total else 0.0
        progress(done + span * share, total, f"{label}: {note}")

    return report
