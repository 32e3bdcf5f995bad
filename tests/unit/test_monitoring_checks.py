"""Tolerances from settings turn figures into checks; the gate raises naming each failed figure."""

from __future__ import annotations

import pytest

from scoreloop.core.settings import MonitorSettings
from scoreloop.monitoring.checks import MonitoringGateError, enforce, judge, status

GOOD = {
    "share_drifted": 0.1,
    "drifted": ["employees"],
    "psi": 0.05,
    "missing_increase": {"employees": 0.01, "industry": 0.0},
    "new_category_share": {"industry": 0.0},
    "labelled": 500,
    "roc_auc": 0.8,
    "calibration_error": 0.03,
}


def by_name(figures: dict, tolerances: MonitorSettings | None = None) -> dict:
    return {c.name: c for c in judge(figures, tolerances or MonitorSettings())}


def test_figures_within_tolerance_pass() -> None:
    checks = list(by_name(GOOD).values())
    assert len(checks) == 6 and all(c.passed for c in checks)
    assert status(checks) == "pass"
    enforce(checks)  # does not raise


@pytest.mark.parametrize(
    ("figure", "value", "check"),
    [
        ("share_drifted", 0.5, "max feature drift share"),
        ("psi", 0.3, "max score PSI"),
        ("roc_auc", 0.55, "min ROC AUC on labelled records"),
        ("calibration_error", 0.2, "max calibration error on labelled records"),
        ("new_category_share", {"industry": 0.2}, "max new category share"),
        ("missing_increase", {"employees": 0.5}, "max missing share increase"),
    ],
)
def test_each_breach_fails_its_check_and_the_gate_names_it(figure: str, value, check: str) -> None:
    checks = by_name({**GOOD, figure: value})
    assert checks[check].passed is False
    assert [c.name for c in checks.values() if c.passed is False] == [check]
    assert status(list(checks.values())) == "fail"
    with pytest.raises(MonitoringGateError, match=check) as raised:
        enforce(list(checks.values()))
    assert f"{checks[check].tolerance:g}" in str(raised.value)


def test_tolerances_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from scoreloop.core.settings import Settings

    monkeypatch.setenv("SCORELOOP_MONITOR__MAX_PSI", "0.01")
    assert by_name(GOOD, Settings().monitor)["max score PSI"].passed is False


def test_the_worst_column_is_named() -> None:
    checks = by_name({**GOOD, "missing_increase": {"employees": 0.3, "industry": 0.5}})
    assert "worst column: industry" in checks["max missing share increase"].describe()


def test_too_few_labels_or_one_class_are_not_judged() -> None:
    few = by_name({**GOOD, "labelled": 20})
    assert few["min ROC AUC on labelled records"].passed is None
    assert "20 labelled records, fewer than 200" in few["min ROC AUC on labelled records"].describe()
    one_class = by_name({**GOOD, "roc_auc": float("nan")})
    assert one_class["min ROC AUC on labelled records"].passed is None
    assert status(list(few.values())) == "pass"


def test_psi_is_not_judged_without_scores() -> None:
    checks = by_name({k: v for k, v in GOOD.items() if k != "psi"})
    assert checks["max score PSI"].passed is None and "no scores" in checks["max score PSI"].describe()
