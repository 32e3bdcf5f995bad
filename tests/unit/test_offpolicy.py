"""Off-policy estimates on worlds whose true probabilities are known: IPW sees through the policy's choice, the
doubly robust interval covers the true worklist value, exploration narrows the gate's interval, and the gate
refuses what it should. Statistical claims hold over many seeds, not one."""

from __future__ import annotations

import numpy as np
import pytest

from scoreloop.core.metrics import bootstrap_interval, expected_auc, roc_auc
from scoreloop.core.offpolicy import Logged, compare, expected_figures, point_figures, small_sample_interval
from scoreloop.core.policy import work_plan
from scoreloop.core.settings import GateSettings
from scoreloop.training.promote import judge

CAPACITY = 0.2


def world(seed: int, n: int = 2000, epsilon: float = 0.2):
    """True probabilities, a champion and a better challenger (less noise on the same signal), and the logged
    decisions of the champion's policy: only worked records have an outcome."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    truth = 1 / (1 + np.exp(-(1.5 * z - 2)))
    champion = 1 / (1 + np.exp(-(1.5 * z - 2 + rng.normal(scale=1.2, size=n))))
    challenger = 1 / (1 + np.exp(-(1.5 * z - 2 + rng.normal(scale=0.5, size=n))))
    y = (rng.random(n) < truth).astype(float)
    plan = work_plan(champion, CAPACITY, epsilon, rng)
    return truth, champion, challenger, y, Logged.of(np.where(plan["worked"], y, np.nan), plan["propensity"])


def test_ipw_sees_the_population_where_labelled_records_alone_are_biased() -> None:
    ipw, naive, truth_auc = [], [], []
    for seed in range(30):
        truth, champion, _, _, logged = world(seed)
        ipw.append(point_figures(logged, champion, "roc_auc", CAPACITY)["roc_auc"])
        naive.append(roc_auc(logged.y[logged.labelled], champion[logged.labelled]))
        truth_auc.append(expected_auc(champion, truth))
    assert abs(np.mean(ipw) - np.mean(truth_auc)) < 0.02
    assert np.mean(truth_auc) - np.mean(naive) > 0.05  # the champion judged on its own choices looks worse


def test_positive_rate_ipw_and_snipw_estimate_the_population_rate() -> None:
    estimates = []
    for seed in range(30):
        truth, champion, _, _, logged = world(seed)
        figures = point_figures(logged, champion, "roc_auc", CAPACITY)
        estimates.append((figures["positive_rate_ipw"], figures["positive_rate_snipw"], truth.mean()))
    ipw, snipw, rate = np.mean(estimates, axis=0)
    assert abs(ipw - rate) < 0.01 and abs(snipw - rate) < 0.01
    labelled_rate = np.nanmean(world(0)[4].y)
    assert labelled_rate > rate + 0.1  # worked records convert far more than the population


def test_the_doubly_robust_interval_covers_the_true_worklist_value() -> None:
    covered = []
    for seed in range(40):
        truth, champion, challenger, _, logged = world(seed)
        found = compare(logged, challenger, champion, "roc_auc", CAPACITY, level=0.90, rounds=200, seed=seed)
        top = np.argsort(-challenger, kind="stable")[: round(len(truth) * CAPACITY)]
        low, high = found.new_value_interval
        covered.append(low <= 100 * truth[top].mean() <= high)
    assert np.mean(covered) >= 0.8  # nominal 90%


def test_small_sample_intervals_cover_at_their_level_where_the_percentile_bootstrap_does_not() -> None:
    """Six records (a span's labelled records are often worth 2-25): the percentile bootstrap of their mean covers
    about 80% at a nominal 90%, widened to Student's t it covers about 90%, in each of three independent blocks."""
    for block in range(3):
        rng = np.random.default_rng(block)
        plain, widened = [], []
        for draw in range(300):
            x = rng.normal(size=6)
            interval = bootstrap_interval(lambda rows, x=x: x[rows].mean(), 6, 0.90, 200, draw)
            low, high = small_sample_interval(x.mean(), interval, 6, 0.90)
            plain.append(interval[0] <= 0 <= interval[1])
            widened.append(low <= 0 <= high)
        assert np.mean(plain) < 0.84 and 0.86 <= np.mean(widened) <= 0.94
    assert small_sample_interval(0.0, (-1.0, 2.0), 10_000, 0.90) == pytest.approx((-1.0, 2.0), rel=1e-3)
    assert np.isnan(small_sample_interval(np.nan, (np.nan, np.nan), 5, 0.90)).all()


def test_the_gain_interval_narrows_as_exploration_grows() -> None:
    def width(epsilon: float) -> float:
        widths = []
        for seed in range(8):
            _, champion, challenger, _, logged = world(seed, epsilon=epsilon)
            found = compare(logged, challenger, champion, "roc_auc", CAPACITY, rounds=150, seed=seed)
            widths.append(found.gain[2] - found.gain[1])
        return float(np.mean(widths))

    assert width(0.5) < 0.7 * width(0.05)


def test_the_gate_refuses_a_constant_challenger_and_one_worse_below_the_top() -> None:
    gains = []
    for seed in range(5):
        _, champion, _, _, logged = world(seed, epsilon=0.3)
        constant = np.full(len(champion), champion.mean())
        assert not judge(compare(logged, constant, champion, "roc_auc", CAPACITY, rounds=200), GateSettings())[0]
        scrambled = champion.copy()  # the same top, the rest in random order: worse where only exploration sees
        rest = np.argsort(-champion)[round(len(champion) * CAPACITY) :]
        scrambled[rest] = np.random.default_rng(seed).permutation(scrambled[rest])
        found = compare(logged, scrambled, champion, "roc_auc", CAPACITY, rounds=200)
        assert not judge(found, GateSettings())[0]
        gains.append(found.gain[0])
    assert np.mean(gains) < -0.02


def test_the_gate_promotes_a_clearly_better_challenger_given_the_evidence() -> None:
    promoted = []
    for seed in range(5):
        truth, champion, challenger, _, logged = world(seed, n=8000, epsilon=0.5)
        assert expected_auc(challenger, truth) > expected_auc(champion, truth) + 0.03
        found = compare(logged, challenger, champion, "roc_auc", CAPACITY, rounds=200)
        promoted.append(judge(found, GateSettings(ece_tolerance=1))[0])
    assert np.mean(promoted) >= 0.8


def test_the_ece_gap_interval_sees_a_miscalibrated_challenger_and_not_a_calibrated_one() -> None:
    """The same ranking with probabilities pushed up (odds x6) is clearly worse calibrated, seed after seed; the
    better challenger with less noise in its log-odds is not refused on ECE."""
    for seed in range(5):
        _, champion, challenger, _, logged = world(seed, n=4000, epsilon=0.3)
        odds = champion / (1 - champion) * 6
        pushed = compare(logged, odds / (1 + odds), champion, "roc_auc", CAPACITY, rounds=200)
        assert pushed.gain[0] == pytest.approx(0.0, abs=1e-12) and pushed.ece_gap[1] > 0.05
        assert not judge(pushed, GateSettings(margin=-1))[0]
        calibrated = compare(logged, challenger, champion, "roc_auc", CAPACITY, rounds=200)
        assert calibrated.ece_gap[1] <= GateSettings().ece_tolerance


def test_exploit_only_leaves_records_no_estimate_sees() -> None:
    _, champion, challenger, _, logged = world(0, epsilon=0.0)
    assert logged.support == pytest.approx(0.2)
    found = compare(logged, challenger, champion, "roc_auc", CAPACITY, rounds=50)
    assert "80% of the logged records could never have been worked" in found.notes[0]
    assert not judge(found, GateSettings(margin=-1))[0]


def test_logged_decisions_are_validated_and_unlogged_labels_count_once() -> None:
    with pytest.raises(ValueError, match="propensity 0"):
        Logged.of([1.0, 0.0], [0.0, 0.5])
    plain = Logged.of([1, 0, 1])  # a training holdout: every record labelled, no policy
    assert list(plain.weights) == [1.0, 1.0, 1.0] and plain.effective_size == 3 and plain.explored == (0, 0)
    worked = Logged.of([1, 0, np.nan, 1, 0, np.nan], [1.0, 1.0, 0.1, 0.1, 0.1, 0.1])  # two worked at the top
    assert worked.explored == (1, 1)  # what the estimates see below the top
    unlogged = Logged.of([np.nan, 1.0])  # outcomes for some records, no policy logged: who chose them is unknown
    assert unlogged.support == 0.5


def test_calibrated_probabilities_expect_their_own_auc() -> None:
    rng = np.random.default_rng(0)
    probability = rng.beta(1, 4, 20_000)
    realised = [roc_auc((rng.random(probability.size) < probability).astype(float), probability) for _ in range(5)]
    expected = expected_figures(probability)
    assert expected["expected_roc_auc"] == pytest.approx(np.mean(realised), abs=0.005)
    assert expected["expected_positive_rate"] == pytest.approx(0.2, abs=0.01)
