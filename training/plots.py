"""Diagnostic figures of a training run, drawn with matplotlib's object API (no pyplot state, Agg canvas).

Each function takes plain arrays or frames and returns a Figure; `save_figures` writes them as PNG files. Only the
Optuna figures go through pyplot (Optuna draws them that way), on the Agg backend.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from scoreloop.core.metrics import calibration_table, expected_calibration_error

SHAP_FEATURES = 15


def _curves(probas: dict[str, np.ndarray], curve: Callable[[np.ndarray], tuple]) -> tuple[Figure, Axes]:
    """One figure with `curve(proba) -> (x, y)` drawn for the model and each baseline."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, proba in probas.items():
        ax.plot(*curve(proba), label=name)
    return fig, ax


def roc_figure(y_true: np.ndarray, probas: dict[str, np.ndarray]) -> Figure:
    """ROC curves of the model and its baselines on the same records."""
    fig, ax = _curves(probas, lambda proba: roc_curve(y_true, proba)[:2])
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
    ax.legend(loc="lower right")
    return fig


def pr_figure(y_true: np.ndarray, probas: dict[str, np.ndarray]) -> Figure:
    """Precision-recall curves, with the base rate a random ranking would reach."""
    fig, ax = _curves(probas, lambda proba: precision_recall_curve(y_true, proba)[1::-1])
    ax.axhline(float(np.mean(y_true)), color="grey", linestyle=":", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (holdout)", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return fig


def calibration_figure(y_true: np.ndarray, proba: np.ndarray, bins: int, raw: np.ndarray | None = None) -> Figure:
    """Reliability diagram (observed rate against mean predicted probability per bin) over the score histogram;
    with `raw`, the probabilities before calibration are drawn too (before and after, with their ECE)."""
    fig = Figure(figsize=(5.5, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    curves = {"model": proba} if raw is None else {"calibrated": proba, "raw (before calibration)": raw}
    for label, values in curves.items():
        table = calibration_table(y_true, values, bins)
        ece = expected_calibration_error(y_true, values, bins)
        top.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=f"{label}, ECE {ece:.3f}")
    top.set(ylabel="observed positive rate", title="Calibration (holdout)")
    top.legend(loc="upper left")
    bottom.hist(proba, bins=bins, range=(0, 1), color="tab:blue", alpha=0.6)
    bottom.set(xlabel="predicted probability", ylabel="records")
    return fig


def lift_figure(deciles: pd.DataFrame) -> Figure:
    """Conversion and lift by score decile, and the cumulative gain curve."""
    fig = Figure(figsize=(10, 4.5))
    left, right = fig.subplots(1, 2)
    left.bar(deciles["decile"], deciles["conversion"], color="tab:blue")
    base_rate = deciles["positives"].sum() / deciles["rows"].sum()
    left.axhline(base_rate, color="grey", linestyle=":", label=f"base rate {base_rate:.3f}")
    for row in deciles.itertuples():
        left.annotate(f"x{row.lift:.1f}", (row.decile, row.conversion), ha="center", va="bottom", fontsize=8)
    left.set(
        xlabel="score decile (1 = highest)",
        ylabel="conversion",
        title="Conversion and lift by decile",
        xticks=deciles["decile"],
    )
    left.legend()
    shares = np.concatenate([[0.0], deciles["rows"].cumsum() / deciles["rows"].sum()])
    right.plot(shares, np.concatenate([[0.0], deciles["cumulative_gain"]]), marker="o", label="model")
    right.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    right.set(xlabel="share of records worked", ylabel="share of positives found", title="Cumulative gain")
    right.legend(loc="lower right")
    return fig


def importance_figure(importances: pd.Series) -> Figure:
    """Horizontal bars of feature importances, most important on top."""
    ordered = importances.sort_values()
    fig = Figure(figsize=(6, max(3.0, 0.3 * len(ordered) + 1)))
    ax = fig.subplots()
    ax.barh(ordered.index, ordered.to_numpy(), color="tab:blue")
    ax.set(xlabel="importance (prediction values change)", title="Feature importance")
    fig.tight_layout()
    return fig


def _colour_values(column: pd.Series) -> np.ndarray:
    """Feature values as 0..1 percentile ranks for colouring; NaN for categories and missing values."""
    if not pd.api.types.is_numeric_dtype(column):
        return np.full(len(column), np.nan)
    return column.rank(pct=True).to_numpy(dtype=float)


def shap_figure(shap_values: np.ndarray, features: pd.DataFrame, seed: int = 0) -> Figure:
    """A beeswarm-like SHAP summary: one row per feature (largest mean |SHAP| on top), one dot per record, coloured
    by the feature's value rank (grey for categories and missing values)."""
    mean_abs = np.abs(shap_values).mean(axis=0)
    top = np.argsort(mean_abs)[::-1][:SHAP_FEATURES][::-1]
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(7, max(3.0, 0.4 * len(top) + 1.2)))
    ax = fig.subplots()
    points = None
    for row, column in enumerate(top):
        values = shap_values[:, column]
        jitter = rng.uniform(-0.3, 0.3, len(values))
        colours = _colour_values(features.iloc[:, column])
        known = ~np.isnan(colours)
        ax.scatter(values[~known], row + jitter[~known], s=6, color="lightgrey", alpha=0.6, linewidths=0)
        points = ax.scatter(
            values[known],
            row + jitter[known],
            s=6,
            c=colours[known],
            cmap="coolwarm",
            vmin=0,
            vmax=1,
            alpha=0.7,
            linewidths=0,
        )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(top)), [features.columns[i] for i in top])
    ax.set(xlabel="SHAP value (impact on log-odds)", title="SHAP summary (holdout sample)")
    if points is not None:
        fig.colorbar(points, ax=ax, label="feature value rank (low -> high)")
    fig.tight_layout()
    return fig


def optuna_figures(study: optuna.Study) -> tuple[dict[str, Figure], list[str]]:
    """Optuna's optimization history and parameter importances; returns the figures and what could not be drawn
    (importances need at least two completed trials with varying parameters)."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as optuna_plots

    figures, skipped = {}, []
    drawers = {
        "optuna_history": optuna_plots.plot_optimization_history,
        "optuna_param_importances": optuna_plots.plot_param_importances,
    }
    for name, draw in drawers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as exc:
                skipped.append(f"{name}: {exc}")
                continue
        figure = np.ravel(axes)[0].figure
        figure.set_size_inches(7, 5)
        figures[name] = figure
    return figures, skipped


def save_figures(figures: dict[str, Figure], directory: Path) -> list[Path]:
    """Write each figure as `<name>.png` and release it."""
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        paths.append(path)
    return paths
