"""Queues of fixed size: the work policy over the whole file or per day, with each worked lead's queue position."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoreloop.core.settings import PolicySettings
from scoreloop.serving.batch import Worklist

PROBABILITY = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6])
DAYS = np.array(["2025-03-01", "2025-03-01", "2025-03-02", "2025-03-02", "2025-03-02", "2025-03-01", "NaT", "NaT"],
                dtype="datetime64[ns]")  # fmt: skip


def test_a_fixed_count_for_the_whole_file() -> None:
    plan = Worklist(PolicySettings(epsilon=0), None, count=3).plan(PROBABILITY, DAYS, np.random.default_rng(0))
    assert plan["worked"].tolist() == [False, True, False, True, False, True, False, False]  # 0.9, 0.8, 0.7
    assert plan["queue"].tolist() == [pd.NA, 1, pd.NA, 3, pd.NA, 2, pd.NA, pd.NA]
    assert plan["propensity"].sum() == 3


def test_a_fixed_count_per_day_and_a_queue_for_records_without_a_date() -> None:
    worklist = Worklist(PolicySettings(epsilon=0), None, count=2, per_day=True)
    plan = worklist.plan(PROBABILITY, DAYS, np.random.default_rng(0))
    # 1 March: 0.9, 0.8 (not 0.1); 2 March: 0.7, 0.5 (not 0.3); no date: both of 0.2 and 0.6
    assert plan["worked"].tolist() == [False, True, True, True, False, True, True, True]
    assert plan["queue"].tolist() == [pd.NA, 1, 2, 1, pd.NA, 2, 2, 1]


def test_exploration_within_each_day_keeps_exact_propensities() -> None:
    worklist = Worklist(PolicySettings(epsilon=0.5), None, count=2, per_day=True)
    plan = worklist.plan(PROBABILITY, DAYS, np.random.default_rng(1))
    for day in (DAYS[0], DAYS[2]):  # 3 leads, 2 worked: the best exploited, 1 of the other 2 explored at 1/2
        one = plan[day == DAYS]
        assert one["policy"].value_counts().to_dict() == {"exploit": 1, "explore": 1, "skip": 1}
        assert sorted(one["propensity"]) == [0.5, 0.5, 1.0]
