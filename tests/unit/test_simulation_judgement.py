"""The simulation's judgement of the gate: right and wrong decisions against the next month's truth, and the split
of its error into estimation (on its own span) and distance (span to next month), and its interval's coverage."""

from __future__ import annotations

import pytest

from scoreloop.loop.simulate import CycleRecord, gate_judgement


def decision(champion: float, challenger: float, promoted: bool, estimate: float, span_gain: float) -> CycleRecord:
    return CycleRecord(
        "explore", 0, 1, "1", champion, challenger, promoted, True, conversions=0, worked=0, explored=0,
        gate_estimate=estimate, gate_low=estimate - 0.01, gate_high=estimate + 0.01, value_estimate=1.0,
        value_low=0.0, value_high=2.0, value_truth=1.0, span_gain=span_gain, monitor_status="pass", retrain="trained",
        reason="",
    )  # fmt: skip


def test_the_judgement_splits_the_gates_error_into_estimation_and_distance() -> None:
    records = [
        # truly better by 0.03; the span agreed (+0.02), the estimate missed it (-0.01): refused, wrong
        decision(0.80, 0.83, False, estimate=-0.01, span_gain=0.02),
        # truly worse by 0.02; the span said better (+0.01) and so did the estimate: promoted, wrong
        decision(0.80, 0.78, True, estimate=0.01, span_gain=0.01),
        # truly better by 0.005 (not clear); promoted, right
        decision(0.80, 0.805, True, estimate=0.02, span_gain=0.00),
        # truly worse by 0.05; span and estimate agree: refused, right
        decision(0.80, 0.75, False, estimate=-0.04, span_gain=-0.03),
    ]
    judged = gate_judgement(records)
    assert judged["decisions"] == 4 and judged["clear_differences"] == 3
    assert judged["right_where_clear"] == pytest.approx(1 / 3)
    assert judged["worse_promoted_share"] == pytest.approx(1 / 4)
    assert judged["estimation_error"] == pytest.approx((0.03 + 0.0 + 0.02 + 0.01) / 4)
    assert judged["distance_error"] == pytest.approx((0.01 + 0.03 + 0.005 + 0.02) / 4)
    assert judged["span_sign_right_where_clear"] == pytest.approx(2 / 3)  # the second one's span had the wrong sign
    assert judged["gain_coverage"] == pytest.approx(2 / 4)  # intervals are the estimate +- 0.01
    assert judged["span_gain_below_low"] == pytest.approx(1 / 4)  # the third: promoted on a gain its span lacked
