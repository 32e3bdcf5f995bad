"""The feedback loop on the synthetic lead world, where every lead's true conversion probability is known.

Month 0 is a pilot in which every lead was worked: the first champion trains on it. Each following month is one
cycle: the champion scores the month's leads, the work policy picks which are worked, outcomes arrive for those
only (the world's Bernoulli draw of each lead's true probability), a monitoring report compares the month with
the previous one, and a sliding-window retrain trains a challenger on the labelled records and runs the gate.
The world drifts (covariates and concept) as the months pass. Every cycle goes through the real record store,
MLflow registry and gate; each policy has its own model name and store under the home.

Because the truth is known, each cycle measures what monitoring alone cannot: the expected ROC AUC of the model
in use on the whole month's population (`expected_auc` against the true probabilities).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.feedback import feedback_report
from monitoring.metrics import expected_auc, roc_auc
from monitoring.monitor import Window, monitor_period
from monitoring.pages import new_figure, new_report_dir, png, table, write_index, write_report
from scoreloop.policy import EXPLORE, work_plan
from scoreloop.settings import Settings
from scoreloop.spec import DatasetSpec
from scoreloop.store import Outcome, RecordStore
from scoreloop.synthetic import (
    CATEGORIES,
    FEATURES_CATEGORICAL,
    FEATURES_NUMERIC,
    ID_COLUMN,
    TARGET,
    TIME_COLUMN,
    WorldConfig,
    generate_leads,
)
from scoreloop.tracking import load_registered
from training.promote import promote
from training.retrain import retrain
from training.train import train_rows

POLICIES = ("exploit", "explore")


@dataclass(frozen=True)
class SimulationConfig:
    """The world and the loop: `cycles` months after a pilot month, `rows` leads a month."""

    cycles: int = 6
    rows: int = 3000
    seed: int = 0
    covariate_drift: float = 0.5
    concept_drift: float = 1.0
    window: int = 2
    monitor: bool = True

    def __post_init__(self) -> None:
        if self.cycles < 1 or self.window < 1 or self.rows < 200:
            raise ValueError(f"need cycles >= 1, window >= 1 and rows >= 200, got {self}")


@dataclass(frozen=True)
class CycleResult:
    """One month of the loop under one policy."""

    policy: str
    cycle: int
    model_version: str
    scored: int
    worked: int
    explored: int
    conversions: int
    true_auc: float
    observed_auc: float
    monitor_status: str
    retrain: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def lead_spec() -> DatasetSpec:
    """The synthetic world's spec (clean, typed columns)."""
    return DatasetSpec(
        name="leads",
        id_column=ID_COLUMN,
        time_column=TIME_COLUMN,
        target=TARGET,
        positive_label="1",
        numeric=list(FEATURES_NUMERIC),
        categorical=list(FEATURES_CATEGORICAL),
        allowed_values={k: list(v) for k, v in CATEGORIES.items()},
    )


def policy_settings(settings: Settings, policy: str, ipw: bool) -> Settings:
    """Settings for one policy's loop: its own model name, record store and experiment, the home's reports."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {list(POLICIES)}, got {policy!r}")
    label = f"{policy}{'-ipw' if ipw else ''}"
    home = settings.ensure_home()
    return settings.model_copy(
        update={
            "model_name": f"{settings.model_name}-sim-{label}",
            "experiment": f"{settings.experiment}-sim-{label}",
            "store_url": f"sqlite:///{home / f'simulate-{label}.db'}",
            "policy": settings.policy.model_copy(
                update={"epsilon": 0.0 if policy == "exploit" else settings.policy.epsilon}
            ),
        }
    )


def simulate(settings: Settings, policy: str, ipw: bool, config: SimulationConfig) -> list[CycleResult]:
    """Run the pilot and `config.cycles` cycles of the loop under `policy`; one result per cycle."""
    settings = policy_settings(settings, policy, ipw)
    spec = lead_spec()
    world = WorldConfig(
        rows=config.rows * (config.cycles + 1),
        seed=config.seed,
        months=config.cycles + 1,
        covariate_drift=config.covariate_drift,
        concept_drift=config.concept_drift,
    )
    leads = generate_leads(world)
    bounds = [(pd.Timestamp(world.start) + pd.DateOffset(months=m)).to_pydatetime() for m in range(config.cycles + 2)]
    months = [leads[(leads[TIME_COLUMN] >= a) & (leads[TIME_COLUMN] < b)] for a, b in itertools.pairwise(bounds)]
    store = RecordStore(settings.record_store_url)
    pilot = months[0].drop(columns="p_true")
    train_rows(
        settings, spec, pilot, source="pilot month: every lead worked", study_name=f"{settings.model_name}-pilot"
    )
    promote(settings)
    rng = np.random.default_rng(config.seed)
    results = []
    for cycle in range(1, config.cycles + 1):
        batch = months[cycle]
        model = load_registered(settings)
        scored = model.score(batch)
        plan = work_plan(scored["probability"].to_numpy(), settings.policy.capacity, settings.policy.epsilon, rng)
        plan.index = batch.index
        _log_cycle(store, batch, scored, plan, model.name, model.version, spec)
        status = "skipped"
        if config.monitor and cycle > 1:
            status = monitor_period(
                settings,
                bounds[cycle + 1] - bounds[cycle],
                end=bounds[cycle + 1],
                reference=Window(bounds[cycle - 1], bounds[cycle]),
                store=store,
            ).status
        start = bounds[max(cycle + 1 - config.window, 0)]
        outcome = retrain(
            settings,
            bounds[cycle + 1] - start,
            end=bounds[cycle + 1],
            ipw=ipw,
            spec=spec,
            store=store,
            study_name=f"{settings.model_name}-cycle{cycle}",
        )
        worked = plan["worked"].to_numpy()
        results.append(
            CycleResult(
                policy=f"{policy}{'+ipw' if ipw else ''}",
                cycle=cycle,
                model_version=model.version,
                scored=len(batch),
                worked=int(worked.sum()),
                explored=int((plan["policy"] == EXPLORE).sum()),
                conversions=int(batch[TARGET].to_numpy()[worked].sum()),
                true_auc=expected_auc(scored["probability"].to_numpy(), batch["p_true"].to_numpy()),
                observed_auc=roc_auc(batch[TARGET].to_numpy(), scored["probability"].to_numpy()),
                monitor_status=status,
                retrain=outcome.outcome,
                reason=outcome.reason,
            )
        )
    feedback_report(settings, store=store, title=f"feedback loop: {results[0].policy}")
    return results


def _log_cycle(
    store: RecordStore,
    batch: pd.DataFrame,
    scored: pd.DataFrame,
    plan: pd.DataFrame,
    model_name: str,
    version: str,
    spec: DatasetSpec,
) -> None:
    """Log each day's scores with the policy's decisions, then the outcomes of the worked leads."""
    for day, rows in batch.groupby(batch[TIME_COLUMN].dt.floor("D")):
        store.log_scores(
            rows[[TIME_COLUMN, *spec.features]],
            scored.loc[rows.index],
            model_name=model_name,
            model_version=version,
            record_ids=rows[ID_COLUMN].tolist(),
            scored_at=_moment(day),
            policy=plan.loc[rows.index],
        )
    worked = batch[plan["worked"].to_numpy()]
    store.add_outcomes(
        Outcome(str(i), int(y), _moment(t))
        for i, y, t in zip(worked[ID_COLUMN], worked[TARGET], worked[TIME_COLUMN], strict=True)
    )


def _moment(value: pd.Timestamp) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


def run_simulation(
    settings: Settings, policies: list[tuple[str, bool]], config: SimulationConfig
) -> tuple[list[CycleResult], Path]:
    """Simulate each (policy, ipw) on the same world; write a comparison report; return the results and its page.

    Exploit-only works every labelled lead with propensity 1, so weighting changes nothing there and is skipped.
    """
    results = [r for policy, ipw in policies for r in simulate(settings, policy, ipw and policy != "exploit", config)]
    return results, simulation_report(settings, results, config)


def simulation_report(settings: Settings, results: list[CycleResult], config: SimulationConfig) -> Path:
    """Per cycle and policy: true population AUC of the model in use, conversions won, the retrain's outcome."""
    frame = pd.DataFrame([r.to_dict() for r in results])
    totals = frame.groupby("policy", sort=False).agg(
        mean_true_auc=("true_auc", "mean"), final_true_auc=("true_auc", "last"), conversions=("conversions", "sum")
    )
    out_dir = new_report_dir(settings.reports_dir, "simulate")
    best = totals["final_true_auc"].idxmax()
    summary = {
        "kind": "simulate",
        "title": f"simulation: {config.cycles} cycles of {config.rows} leads, seed {config.seed}",
        "status": "info",
        "model_version": "",
        "headline": {"roc_auc": float(totals.loc[best, "final_true_auc"])},
        "config": asdict(config),
        "cycles": frame.to_dict(orient="records"),
        "totals": totals.reset_index().to_dict(orient="records"),
        "files": {},
    }
    figure = new_figure(9, 3.2)
    left, right = figure.subplots(1, 2)
    for policy, part in frame.groupby("policy", sort=False):
        left.plot(part["cycle"], part["true_auc"], marker="o", label=policy)
        right.plot(part["cycle"], part["conversions"].cumsum(), marker="o", label=policy)
    left.set(title="true population AUC of the model in use", xlabel="cycle")
    right.set(title="conversions won (cumulative)", xlabel="cycle")
    left.legend(fontsize=8)
    body = (
        "<p>True AUC is the expected ROC AUC of the model in use on each month's whole population, against the "
        "leads' true conversion probabilities; only the simulation can know it. Conversions are worked leads that "
        "converted.</p>"
        + png(figure)
        + "<h2>Totals</h2>"
        + table(totals.reset_index())
        + "<h2>Cycles</h2>"
        + table(frame)
    )
    write_report(out_dir, summary, body)
    write_index(settings.reports_dir)
    return out_dir / "summary.html"
