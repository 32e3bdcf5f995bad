"""Movers on a hand-made scoring log: latest score against the previous one, the window, the tier filter."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from scoreloop.serving.movers import find_movers, moved_reasons

DAY1, DAY2, DAY3 = datetime(2025, 3, 1), datetime(2025, 3, 2), datetime(2025, 3, 3)
LOG = pd.DataFrame(
    [  # in logging order
        ("up", DAY1, 50, "C", "1"), ("flat", DAY1, 40, "C", "1"), ("old", DAY1, 10, "D", "1"),
        ("old", DAY2, 90, "A", "1"), ("up", DAY2, 52, "C", "1"), ("flat", DAY3, 45, "C", "1"),
        ("up", DAY3, 91, "A", "2"), ("new", DAY3, 99, "A", "2"), ("down", DAY1, 70, "B", "1"),
        ("down", DAY3, 69, "C", "2"), (None, DAY3, 10, "D", "2"),
    ],
    columns=["record_id", "scored_at", "score", "tier", "model_version"],
)  # fmt: skip


def test_movers_compare_each_latest_score_in_the_window_with_the_one_before() -> None:
    movers = find_movers(LOG, DAY3, min_change=20)
    # up: 52 -> 91 (its previous is the day-2 score, not the first); down: a tier change of one point;
    # flat moved 5 points in its tier; old moved before the window; new has no previous score
    assert movers[["record_id", "previous_score", "score", "change"]].values.tolist() == [
        ["up", 52, 91, 39],
        ["down", 70, 69, -1],
    ]
    assert movers.loc[0, ["previous_tier", "tier", "previous_version", "version"]].tolist() == ["C", "A", "1", "2"]
    assert find_movers(LOG, DAY3, min_change=2)["record_id"].tolist() == ["up", "flat", "down"]
    assert find_movers(LOG, DAY2, min_change=20)["record_id"].tolist() == ["old", "up", "down"]  # old: day 2


def test_into_keeps_only_records_that_entered_the_tier() -> None:
    assert find_movers(LOG, DAY1, min_change=20, into="A")["record_id"].tolist() == ["old", "up"]
    assert find_movers(LOG, DAY1, min_change=20, into="C")["record_id"].tolist() == ["down"]


def test_reasons_rank_by_log_odds_change_and_speak_in_points() -> None:
    features = ["events", "industry", "touches"]
    before = pd.DataFrame({"points": [-2.0, 3.0, 0.0], "log_odds": [-0.2, 0.3, 0.0]}, index=features)
    after = pd.DataFrame({"points": [20.0, 8.0, -1.0], "log_odds": [1.5, 0.3, -0.1]}, index=features)
    values = ({"events": 0.0, "industry": "saas", "touches": None}, {"events": 40.0, "industry": "saas", "touches": 3})
    assert moved_reasons(before, after, values, top=2) == [
        "events 0 -> 40: +22.0 points",
        "touches missing -> 3: -1.0 points",
    ]
