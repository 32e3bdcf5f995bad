"""Monitoring checks: the settings' tolerances turn a report's figures into pass/fail, and the gate raises on a fail.

Each check keeps its figure and its tolerance, so a failure says exactly what broke and by how much; a scheduler
gets a non-zero exit from the CLI. A check whose figure is unavailable (no scores in file mode, too few labels)
is reported as not judged rather than passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scoreloop.core.settings import MonitorSettings


@dataclass(frozen=True)
class Check:
    """One figure against its tolerance; `passed` is None when the figure could not be judged."""

    name: str
    value: float | None
    tolerance: float
    passed: bool | None
    detail: str = ""

    def describe(self) -> str:
        if self.passed is None:
            return f"{self.name}: not judged ({self.detail})"
        relation = "within" if self.passed else ("below" if self.name.startswith("min ") else "exceeds")
        figure = f"{self.value:.4f}" if self.value is not None else "n/a"
        suffix = f" ({self.detail})" if self.detail else ""
        return f"{self.name} {figure} {relation} the tolerance {self.tolerance:g}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.describe()}


class MonitoringGateError(RuntimeError):
    """Raised when a report breaches a tolerance; the message names every failed figure and its tolerance."""

    def __init__(self, failed: list[Check]) -> None:
        self.failed = failed
        super().__init__("; ".join(check.describe() for check in failed))


def _at_most(name: str, value: float | None, tolerance: float, detail: str = "", why_not: str = "") -> Check:
    if value is None:
        return Check(name, None, tolerance, None, why_not)
    return Check(name, float(value), tolerance, bool(value <= tolerance), detail)


def _worst(shares: dict[str, float]) -> tuple[float | None, str]:
    if not shares:
        return None, ""
    column = max(shares, key=lambda c: shares[c])
    return shares[column], f"worst column: {column}"


def judge(figures: dict[str, Any], tolerances: MonitorSettings) -> list[Check]:
    """Checks for the figures a report has: drift share, score PSI, missing-share rise, unseen categories, refused
    records (files mode), and
    (with at least `min_labelled` labelled records) ROC AUC and calibration error on labelled records."""
    drifted = figures.get("drifted") or []
    missing_rise, missing_detail = _worst(figures.get("missing_increase") or {})
    unseen, unseen_detail = _worst(figures.get("new_category_share") or {})
    checks = [
        _at_most(
            "max feature drift share",
            figures.get("share_drifted"),
            tolerances.max_drift_share,
            f"drifted: {', '.join(drifted)}" if drifted else "",
        ),
        _at_most("max score PSI", figures.get("psi"), tolerances.max_psi, why_not="no scores to compare"),
        _at_most("max missing share increase", missing_rise, tolerances.max_missing_increase, missing_detail),
        _at_most("max new category share", unseen, tolerances.max_new_category_share, unseen_detail),
    ]
    if "refused_share" in figures:  # files mode: records of the current file the spec refused (see refused.csv)
        share = figures["refused_share"]
        checks.append(_at_most("max refused record share", share, tolerances.max_refused_share, "see refused.csv"))
    labelled = int(figures.get("labelled") or 0)
    if labelled < tolerances.min_labelled:
        why = f"{labelled} labelled records, fewer than {tolerances.min_labelled}"
        checks += [
            Check("min ROC AUC on labelled records", figures.get("roc_auc"), tolerances.min_roc_auc, None, why),
            Check("max calibration error on labelled records", None, tolerances.max_calibration_error, None, why),
        ]
        return checks
    auc = figures.get("roc_auc")
    name = "min ROC AUC on labelled records"
    if auc is None or auc != auc:  # NaN: one outcome class only
        checks.append(Check(name, None, tolerances.min_roc_auc, None, "a single outcome class among labelled records"))
    else:
        passed = bool(auc >= tolerances.min_roc_auc)
        checks.append(Check(name, float(auc), tolerances.min_roc_auc, passed, figures.get("roc_auc_basis", "")))
    checks.append(
        _at_most(
            "max calibration error on labelled records",
            figures.get("calibration_error"),
            tolerances.max_calibration_error,
            "expected calibration error over equal-count probability bins",
        )
    )
    return checks


def status(checks: list[Check]) -> str:
    """'fail' when any judged check failed, else 'pass'."""
    return "fail" if any(check.passed is False for check in checks) else "pass"


def enforce(checks: list[Check]) -> None:
    """The gate: raise `MonitoringGateError` naming each failed figure and its tolerance."""
    failed = [check for check in checks if check.passed is False]
    if failed:
        raise MonitoringGateError(failed)
