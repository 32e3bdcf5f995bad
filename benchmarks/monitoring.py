"""Monitoring a period of 1,000,000 scored rows: the sampled `monitor_period` against the full computation.

    .venv/bin/python -m benchmarks.monitoring [--rows 1000000] [--seed 0]   # from the repository root

(`-m`: run as a file, the script would shadow the `monitoring` package.)

Builds a record store with two months of drifting synthetic leads (`--rows` scored in each), worked by the
policy (the top 18% plus a 2% random slice) with outcomes for the worked ones, then times (1) `monitor_period` as
the CLI runs it: every row for PSI, AUC, calibration and tiers, a seeded hash sample of `sample_rows` per side for
Evidently and the feature checks; (2) the full computation: Evidently's drift report on every row of both
periods plus the same figures. Prints one table; the verdicts (drifted columns, PSI pass/fail, AUC) must match.

Scores come from a noisy copy of the world's true probability: monitoring does not care which model scored.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from scoreloop.core.metrics import psi
from scoreloop.core.model import fit_card_scale, to_scores, to_tiers
from scoreloop.core.policy import work_plan
from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore
from scoreloop.core.synthetic import WorldConfig, generate_leads
from scoreloop.loop.simulate import lead_spec, log_outcomes, log_scored
from scoreloop.monitoring.drift import build_drift_report
from scoreloop.monitoring.monitor import Window, monitor_period
from scoreloop.monitoring.quality import labelled_quality

CHUNK = 100_000


def fill_store(store: RecordStore, rows: int, seed: int) -> list[pd.Timestamp]:
    """Two months of about `rows` leads each, scored, worked and (the worked ones) labelled; returns the bounds."""
    # February then March 2023 (28 + 31 days): March, the monitored period, holds just over `rows` leads.
    world = WorldConfig(rows=2 * rows, seed=seed, start="2023-02-01", months=2, covariate_drift=0.6, concept_drift=0.5)
    leads = generate_leads(world)
    rng = np.random.default_rng(seed)
    logit = np.log(leads["p_true"] / (1 - leads["p_true"])) + rng.normal(0, 0.8, len(leads))
    probability = 1 / (1 + np.exp(-logit.to_numpy()))
    quantiles, cutoffs = fit_card_scale(probability[: rows // 4], {"A": 0.1, "B": 0.3, "C": 0.6})
    model = SimpleNamespace(name="benchmark", version="1")
    for start in range(0, len(leads), CHUNK):
        part = leads.iloc[start : start + CHUNK]
        p = probability[start : start + CHUNK]
        scored = pd.DataFrame(
            {"probability": p, "score": to_scores(p, quantiles), "tier": to_tiers(p, cutoffs)}, index=part.index
        )
        plan = work_plan(p, 0.2, 0.1, rng).set_axis(part.index)
        log_scored(store, lead_spec(), part, scored, plan, model)
        log_outcomes(store, lead_spec(), part, plan["worked"])
    return [pd.Timestamp(world.start) + pd.DateOffset(months=m) for m in range(3)]


def full_computation(settings: Settings, store: RecordStore, bounds: list[pd.Timestamp], out: Path) -> dict:
    """Evidently on every row of both periods, with the same PSI and labelled-quality figures."""
    reference, current = store.scores(bounds[0], bounds[1]), store.labelled(bounds[1], bounds[2])
    drift = build_drift_report(reference, current, lead_spec(), out, prediction="probability")
    quality = labelled_quality(current, None, settings.monitor.bins)
    return {
        "rows": (len(reference), len(current)),
        "drifted": sorted(c.column for c in drift.columns if c.drifted),
        "psi": psi(reference["probability"], current["probability"], settings.monitor.bins),
        "roc_auc": quality["roc_auc_unweighted"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="scored rows in the monitored period")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        store = RecordStore(settings.record_store_url)
        clock = time.perf_counter()
        bounds = fill_store(store, args.rows, args.seed)
        filled = time.perf_counter() - clock
        clock = time.perf_counter()
        report = monitor_period(
            settings,
            bounds[2] - bounds[1],
            end=bounds[2].to_pydatetime(),
            reference=Window(bounds[0].to_pydatetime(), bounds[1].to_pydatetime()),
            spec=lead_spec(),
            store=store,
        )
        sampled_seconds = time.perf_counter() - clock
        clock = time.perf_counter()
        full = full_computation(settings, store, bounds, Path(tmp) / "full")
        full_seconds = time.perf_counter() - clock
    figures, tolerance = report.summary["figures"], settings.monitor.max_psi
    sampled = {
        "rows": (figures["sampled_reference"], figures["sampled_current"]),
        "drifted": sorted(figures["drifted"]),
        "psi": figures["psi"],
        "roc_auc": figures["roc_auc_unweighted"],
    }
    rows = [
        ("monitor_period (sampled)", sampled_seconds, sampled),
        ("full (Evidently on every row)", full_seconds, full),
    ]
    print(f"store filled with {2 * args.rows:,} scored rows in {filled:.0f} s; PSI tolerance {tolerance:g}")
    print("| computation | rows per side (ref / cur) | wall s | drifted columns | score PSI | AUC (labelled) |")
    print("|---|---|---:|---|---|---:|")
    for name, seconds, f in rows:
        verdict = "fail" if f["psi"] > tolerance else "pass"
        drifted = ", ".join(f["drifted"]) or "none"
        print(
            f"| {name} | {f['rows'][0]:,} / {f['rows'][1]:,} | {seconds:.1f} | {drifted} | "
            f"{f['psi']:.4f} ({verdict}) | {f['roc_auc']:.4f} |"
        )
    same = sampled["drifted"] == full["drifted"] and (sampled["psi"] > tolerance) == (full["psi"] > tolerance)
    print(f"verdicts match: {'yes' if same and abs(sampled['roc_auc'] - full['roc_auc']) < 1e-9 else 'NO'}")


if __name__ == "__main__":
    main()
