"""The feedback loop on the synthetic lead world, where every lead's true conversion probability is known.

Month 0 is a pilot in which every lead was worked: the first champion trains on it, once, and every policy starts
from a copy of it. Each following month is one cycle: the champion scores the month's leads, the work policy picks
which are worked, outcomes arrive for those only (the world's Bernoulli draw of each lead's true probability), a
monitoring report compares the month with the previous one, and a sliding-window retrain trains a challenger on
the labelled records and runs the gate. A last month is only scored, by the model the final cycle produced. The
world drifts (covariates and concept) as the months pass. Every cycle goes through the real record store, MLflow
registry and gate; each policy has its own model name and store under the home.

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

from scoreloop.core.metrics import expected_auc, roc_auc
from scoreloop.core.pages import new_figure, new_report_dir, png, table, write_index, write_report
from scoreloop.core.policy import EXPLORE, work_plan
from scoreloop.core.settings import Settings
from scoreloop.core.spec import DatasetSpec
from scoreloop.core.store import Outcome, RecordStore, ScoredBatch
from scoreloop.core.synthetic import (
    CATEGORIES,
    FEATURES_CATEGORICAL,
    FEATURES_NUMERIC,
    ID_COLUMN,
    TARGET,
    TIME_COLUMN,
    WorldConfig,
    generate_leads,
)
from scoreloop.core.tracking import configure, copy_version, load_registered
from scoreloop.loop.retrain import retrain
from scoreloop.monitoring.feedback import feedback_report
from scoreloop.monitoring.monitor import Window, monitor_period
from scoreloop.training.promote import promote
from scoreloop.training.train import TrainResult, train_rows

POLICIES = ("exploit", "explore")
EVALUATION = "evaluation month: scored only"


@dataclass(frozen=True)
class SimulationConfig:
    """The world and the loop: a pilot month, `cycles` worked months, then one month that is only scored.

    With `gate` off (the default) every retrained challenger is deployed, so the comparison is between what each
    policy lets the model learn, not between gate outcomes on policy-biased holdouts; the gate's figures are still
    recorded on every version.
    """

    cycles: int = 6
    rows: int = 3000
    seed: int = 0
    covariate_drift: float = 0.5
    concept_drift: float = 1.0
    window: int = 2
    monitor: bool = True
    gate: bool = False

    def __post_init__(self) -> None:
        if self.cycles < 1 or self.window < 1 or self.rows < 200:
            raise ValueError(f"need cycles >= 1, window >= 1 and rows >= 200, got {self}")


@dataclass(frozen=True)
class CycleResult:
    """One month of the loop under one policy (the last month is scored by the final model and not worked)."""

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


@dataclass(frozen=True)
class World:
    """The simulated months (pilot first, evaluation month last) and their `cycles + 3` boundaries."""

    months: list[pd.DataFrame]
    bounds: list[datetime]


SIMULATION_FLOOR = {"min_rows": 100, "min_positives": 10}


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


def make_world(config: SimulationConfig) -> World:
    """`config.rows` drifting leads a month for the pilot, the cycles and the evaluation month."""
    months = config.cycles + 2
    world = WorldConfig(
        rows=config.rows * months,
        seed=config.seed,
        months=months,
        covariate_drift=config.covariate_drift,
        concept_drift=config.concept_drift,
    )
    leads = generate_leads(world)
    bounds = [(pd.Timestamp(world.start) + pd.DateOffset(months=m)).to_pydatetime() for m in range(months + 1)]
    return World(
        [leads[(leads[TIME_COLUMN] >= a) & (leads[TIME_COLUMN] < b)] for a, b in itertools.pairwise(bounds)], bounds
    )


def policy_settings(settings: Settings, policy: str, ipw: bool, gate: bool = True) -> Settings:
    """Settings for one policy's loop: its own model name, record store and experiment, the home's reports."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {list(POLICIES)}, got {policy!r}")
    label = f"{policy}{'-ipw' if ipw else ''}"
    home = settings.ensure_home()
    update = {} if gate else {"margin": -1.0, "ece_tolerance": 1.0, "baseline_tolerance": 1.0}
    return settings.model_copy(
        update={
            "model_name": f"{settings.model_name}-sim-{label}",
            "experiment": f"{settings.experiment}-sim-{label}",
            "store_url": f"sqlite:///{home / f'simulate-{label}.db'}",
            "policy": settings.policy.model_copy(
                update={"epsilon": 0.0 if policy == "exploit" else settings.policy.epsilon}
            ),
            "gate": settings.gate.model_copy(update=update),
            # A simulated month is a few thousand leads of which sales works a fifth: the loop deliberately
            # retrains on a few hundred labels, below the product's floor (the retrains stay comparable).
            "train": settings.train.model_copy(update=SIMULATION_FLOOR),
        }
    )


def train_pilot(settings: Settings, world: World) -> TrainResult:
    """The first champion, trained on the pilot month in which every lead was worked (shared by every policy)."""
    pilot = settings.model_copy(
        update={
            "model_name": f"{settings.model_name}-sim-pilot",
            "train": settings.train.model_copy(update=SIMULATION_FLOOR),
        }
    )
    rows = world.months[0].drop(columns="p_true")
    return train_rows(pilot, lead_spec(), rows, source="pilot month: every lead worked", study_name=pilot.model_name)


def simulate(
    settings: Settings, policy: str, ipw: bool, config: SimulationConfig, world: World, pilot: TrainResult
) -> list[CycleResult]:
    """Run `config.cycles` cycles of the loop under `policy` from the pilot champion; one result per month."""
    settings = policy_settings(settings, policy, ipw, config.gate)
    spec, bounds, label = lead_spec(), world.bounds, f"{policy}{'+ipw' if ipw else ''}"
    configure(settings)
    copy_version(pilot.model_name, pilot.version, settings.model_name)
    promote(settings)
    store = RecordStore(settings.record_store_url)
    rng = np.random.default_rng(config.seed)
    results = []
    for cycle in range(1, config.cycles + 2):
        batch, model = world.months[cycle], load_registered(settings)
        scored = model.score(batch)
        truth = expected_auc(scored["probability"].to_numpy(), batch["p_true"].to_numpy())
        observed = roc_auc(batch[TARGET].to_numpy(), scored["probability"].to_numpy())
        if cycle > config.cycles:
            results.append(
                CycleResult(label, cycle, model.version, len(batch), 0, 0, 0, truth, observed, "-", "-", EVALUATION)
            )
            break
        plan = work_plan(scored["probability"].to_numpy(), settings.policy.capacity, settings.policy.epsilon, rng)
        plan.index = batch.index
        log_scored(store, batch, scored, plan, model)
        log_outcomes(store, batch, plan)
        status = "skipped"
        if config.monitor and cycle > 1:
            period, reference = bounds[cycle + 1] - bounds[cycle], Window(bounds[cycle - 1], bounds[cycle])
            status = monitor_period(settings, period, end=bounds[cycle + 1], reference=reference, store=store).status
        start = bounds[max(cycle + 1 - config.window, 1)]
        retrained = retrain(
            settings,
            bounds[cycle + 1] - start,
            end=bounds[cycle + 1],
            ipw=ipw,
            spec=spec,
            store=store,
            study_name=f"{settings.model_name}-cycle{cycle}",
        )
        worked = plan["worked"].to_numpy()
        explored = int((plan["policy"] == EXPLORE).sum())
        conversions = int(batch[TARGET].to_numpy()[worked].sum())
        results.append(
            CycleResult(
                label,
                cycle,
                model.version,
                len(batch),
                int(worked.sum()),
                explored,
                conversions,
                truth,
                observed,
                status,
                retrained.outcome,
                retrained.reason,
            )
        )
    feedback_report(settings, store=store, title=f"feedback loop: {label}")
    return results


def log_scored(store: RecordStore, batch: pd.DataFrame, scored: pd.DataFrame, plan: pd.DataFrame, model) -> None:
    """Log each day's scores of `batch` (leads indexed like `scored` and `plan`) with the policy's decisions.

    `model` is anything with `name` and `version`. The log stores the lead's time and the world's features."""
    columns = [TIME_COLUMN, *lead_spec().features]
    store.log_scores(
        ScoredBatch(
            rows[columns],
            scored.loc[rows.index],
            model_name=model.name,
            model_version=model.version,
            record_ids=rows[ID_COLUMN].tolist(),
            scored_at=_moment(day),
            policy=plan.loc[rows.index],
        )
        for day, rows in batch.groupby(batch[TIME_COLUMN].dt.floor("D"))
    )


def log_outcomes(store: RecordStore, batch: pd.DataFrame, plan: pd.DataFrame) -> int:
    """Report the outcomes of the worked leads only (the world's draw), dated at the lead's time."""
    worked = batch[plan.loc[batch.index, "worked"].to_numpy()]
    return store.add_outcomes(
        Outcome(str(i), int(y), _moment(t))
        for i, y, t in zip(worked[ID_COLUMN], worked[TARGET], worked[TIME_COLUMN], strict=True)
    )


def _moment(value: pd.Timestamp) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


def run_simulation(
    settings: Settings, policies: list[tuple[str, bool]], config: SimulationConfig
) -> tuple[list[CycleResult], Path]:
    """Simulate each (policy, ipw) on the same world from the same pilot champion; write a comparison report.

    Exploit-only works every labelled lead with propensity 1, so weighting changes nothing there and is skipped.
    """
    world = make_world(config)
    pilot = train_pilot(settings, world)
    results = [
        r
        for policy, ipw in policies
        for r in simulate(settings, policy, ipw and policy != "exploit", config, world, pilot)
    ]
    return results, simulation_report(settings, results, config)


def policy_totals(results: list[CycleResult]) -> pd.DataFrame:
    """Per policy: mean true AUC over the months scored by retrained models (cycle 2 on: month 1 is the shared
    pilot champion's), the final month's true AUC, and conversions won over the worked months."""
    frame = pd.DataFrame([r.to_dict() for r in results])
    retrained = frame[frame["cycle"] > 1].groupby("policy", sort=False)["true_auc"]
    grouped = frame.groupby("policy", sort=False)
    return pd.DataFrame(
        {
            "mean_true_auc_retrained": retrained.mean(),
            "final_true_auc": grouped["true_auc"].last(),
            "conversions": grouped["conversions"].sum(),
        }
    )


def simulation_report(settings: Settings, results: list[CycleResult], config: SimulationConfig) -> Path:
    """Per cycle and policy: true population AUC of the model in use, conversions won, the retrain's outcome."""
    frame = pd.DataFrame([r.to_dict() for r in results])
    totals = policy_totals(results)
    out_dir = new_report_dir(settings.reports_dir, "simulate")
    best = totals["mean_true_auc_retrained"].idxmax()
    summary = {
        "kind": "simulate",
        "title": f"simulation: {config.cycles} cycles of {config.rows} leads, seed {config.seed}",
        "status": "info",
        "model_version": "",
        "headline": {"roc_auc": float(totals.loc[best, "mean_true_auc_retrained"])},
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
