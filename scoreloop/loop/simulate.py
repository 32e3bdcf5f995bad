"""The feedback loop where the truth is known: the synthetic lead world, or a replay of any labelled table.

Month 0 is a pilot in which every record was worked: the first champion trains on it, once per seed, and every arm
starts from a copy of it. Each following month is one cycle: the champion scores the month, the arm's policy picks
which records are worked, outcomes arrive for those only, a monitoring report compares the month with the previous
one, and a sliding-window retrain trains a challenger and runs the gate. Then the simulation does what nobody in
production can: it scores the next month with champion and challenger and measures both against the truth, so
each gate decision is judged (right when it promotes exactly when the challenger is truly better).

The arms, on the same worlds and pilots:
- `explore`: the product's default loop: exploration below the top (propensities logged), retraining at the
  home's `retrain` settings (unweighted unless `retrain.ipw`), and the off-policy gate deciding every promotion.
- `exploit`: works only the top and deploys every retrain (the naive loop).
- `oracle`: deploys every retrain, trained on every record's outcome (the upper reference; it works the top).
- `stale`: never retrains (the lower reference).

Truth: on the synthetic world each record's true conversion probability (`p_true`): true AUC is the expected ROC
AUC against it. On a replay, each row's own label, revealed to the loop only when the row is worked: true AUC is
the AUC on every row of the month. Every cycle goes through the real record store, MLflow registry and gate; each
arm and seed has its own model name, experiment and store under the home.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from scoreloop.core.ingest import write_rows
from scoreloop.core.metrics import expected_auc, top_k_rows
from scoreloop.core.offpolicy import Logged, compare
from scoreloop.core.pages import new_figure, new_report_dir, number_or_nan, png, table, write_index, write_report
from scoreloop.core.policy import EXPLORE, work_plan
from scoreloop.core.progress import Progress, silent, within
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
from scoreloop.core.tracking import CHAMPION, configure, copy_version, load_registered, load_version
from scoreloop.loop.retrain import retrain
from scoreloop.monitoring.monitor import Window, monitor_period
from scoreloop.training.promote import promote, run_table
from scoreloop.training.tags import LOGGED_ARTIFACT
from scoreloop.training.train import TrainResult, train_rows

EXPLORE_ARM, EXPLOIT_ARM, ORACLE_ARM, STALE_ARM = "explore", "exploit", "oracle", "stale"
ARMS = (EXPLORE_ARM, EXPLOIT_ARM, ORACLE_ARM, STALE_ARM)
TRUTH = "p_true"  # each record's true probability (a replay: its label)
REPLAY_START = datetime(2024, 1, 1)
# The simulation compares loops, not model selection: one tuned candidate per retrain (cross-validated like the
# product's small-data path), a lower data floor (a simulated month deliberately retrains on a few hundred labels)
# and no baselines keep 10 seeds x 6 cycles affordable.
SIMULATION_TRAIN = {"min_rows": 100, "min_positives": 10, "candidates": ["tuned"], "baselines": False}


@dataclass(frozen=True)
class SimulationConfig:
    """A pilot month, `cycles` worked months and one more month to judge the last retrain, per seed."""

    cycles: int = 6
    rows: int = 3000
    seeds: tuple[int, ...] = (0,)
    covariate_drift: float = 0.5
    concept_drift: float = 1.0
    window: int = 2
    monitor: bool = True
    arms: tuple[str, ...] = ARMS
    value_level: float = 0.95

    def __post_init__(self) -> None:
        if self.cycles < 1 or self.window < 1 or self.rows < 200 or not self.seeds:
            raise ValueError(f"need cycles >= 1, window >= 1, rows >= 200 and a seed, got {self}")
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or not self.arms:
            raise ValueError(f"arms {unknown or '[]'} unknown; allowed: {list(ARMS)}")


@dataclass(frozen=True)
class World:
    """One seed's months (pilot first, the judging month last), their `cycles + 3` boundaries and the spec; every
    month carries `TRUTH`."""

    spec: DatasetSpec
    months: list[pd.DataFrame]
    bounds: list[datetime]
    source: str


@dataclass(frozen=True)
class CycleRecord:
    """One arm, seed and cycle: the month's conversions, the gate's estimate of the challenger's gain with its
    interval, the decision, and the truth on the next month (the model in use there is `deployed`). `span_gain` is
    the challenger's true gain on every record of the gate's own span: what a gate that saw every outcome there
    would estimate, so it splits the gate's error into estimation (its logged sample) and distance (span to next
    month)."""

    arm: str
    seed: int
    cycle: int
    champion_version: str
    true_auc_champion: float
    true_auc_challenger: float
    promoted: bool
    gated: bool
    conversions: int
    worked: int
    explored: int
    gate_estimate: float
    gate_low: float
    gate_high: float
    value_estimate: float
    value_low: float
    value_high: float
    value_truth: float
    span_gain: float
    monitor_status: str
    retrain: str
    reason: str

    @property
    def true_auc_deployed(self) -> float:
        return self.true_auc_challenger if self.promoted else self.true_auc_champion

    def to_dict(self) -> dict:
        return {**asdict(self), "true_auc_deployed": self.true_auc_deployed}


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


def synthetic_world(config: SimulationConfig, seed: int) -> World:
    """`config.rows` drifting leads a month for the pilot, the cycles and the judging month."""
    months = config.cycles + 2
    world = WorldConfig(
        rows=config.rows * months,
        seed=seed,
        months=months,
        covariate_drift=config.covariate_drift,
        concept_drift=config.concept_drift,
    )
    leads = generate_leads(world)
    bounds = [(pd.Timestamp(world.start) + pd.DateOffset(months=m)).to_pydatetime() for m in range(months + 1)]
    parts = [leads[(leads[TIME_COLUMN] >= a) & (leads[TIME_COLUMN] < b)] for a, b in itertools.pairwise(bounds)]
    return World(lead_spec(), parts, bounds, f"synthetic lead world, seed {seed}")


def replay_world(rows: pd.DataFrame, spec: DatasetSpec, config: SimulationConfig, seed: int) -> World:
    """A labelled table as `cycles + 2` consecutive months of equal size: in time order when the spec has a time
    column, else in a seeded shuffle. Each month's rows get times spread over one calendar month (the loop's
    windows are months), an id when the spec has none, and their label as the truth."""
    months = config.cycles + 2
    if len(rows) < months * 200:
        raise ValueError(f"{len(rows)} rows are too few to replay {months} months of at least 200 rows")
    ordered = (
        rows.sort_values(spec.time_column, kind="stable")
        if spec.time_column
        else rows.sample(frac=1.0, random_state=seed)
    )
    spec = spec.model_copy(
        update={"id_column": spec.id_column or "_replay_id", "time_column": spec.time_column or "_replay_time"}
    )
    ordered = ordered.reset_index(drop=True)
    if spec.id_column not in ordered:
        ordered[spec.id_column] = [f"r{i}" for i in range(len(ordered))]
    ordered[spec.id_column] = ordered[spec.id_column].astype(str)
    bounds = [(pd.Timestamp(REPLAY_START) + pd.DateOffset(months=m)).to_pydatetime() for m in range(months + 1)]
    parts = []
    for (start, end), index in zip(itertools.pairwise(bounds), np.array_split(ordered.index, months), strict=True):
        part = ordered.loc[index].copy()
        part[spec.time_column] = pd.date_range(start, end, periods=len(part) + 1, inclusive="left")
        part[TRUTH] = part[spec.target].astype(float)
        parts.append(part)
    return World(spec, parts, bounds, f"replay of {len(rows)} labelled rows, seed {seed}")


def arm_settings(settings: Settings, arm: str, seed: int) -> Settings:
    """One arm's loop under one seed: its own model name, record store and experiment; the home's reports."""
    home = settings.ensure_home()
    label = f"s{seed}-{arm}"
    explores = arm == EXPLORE_ARM
    return settings.model_copy(
        update={
            "model_name": f"{settings.model_name}-sim-{label}",
            "experiment": f"{settings.experiment}-sim-{label}",
            "store_url": f"sqlite:///{home / f'simulate-{label}.db'}",
            "policy": settings.policy.model_copy(update={"epsilon": settings.policy.epsilon if explores else 0.0}),
            "train": settings.train.model_copy(update={**SIMULATION_TRAIN, "seed": seed}),
        }
    )


def train_pilot(settings: Settings, world: World, seed: int, progress: Progress = silent) -> TrainResult:
    """The first champion of a seed, trained on the pilot month in which every record was worked. The month is
    written as an ingested file first, as a user's first training set would be: the champion's lineage names it,
    so a retrain can add it as older fully labelled rows (`retrain.older_rows`)."""
    pilot = settings.model_copy(
        update={
            "model_name": f"{settings.model_name}-sim-s{seed}-pilot",
            "train": settings.train.model_copy(update={**SIMULATION_TRAIN, "seed": seed}),
        }
    )
    rows = world.months[0].drop(columns=TRUTH)
    path = settings.ensure_home() / f"simulate-s{seed}-pilot.parquet"
    write_rows(rows, world.spec, path)
    return train_rows(pilot, world.spec, rows, source=str(path), study_name=pilot.model_name, progress=progress)


def true_auc(probability: np.ndarray, month: pd.DataFrame) -> float:
    """The model's AUC on the whole month against the truth (expected AUC on true probabilities)."""
    return expected_auc(np.asarray(probability, dtype=float), month[TRUTH].to_numpy())


def simulate_arm(
    settings: Settings,
    arm: str,
    seed: int,
    config: SimulationConfig,
    world: World,
    pilot: TrainResult,
    progress: Progress = silent,
) -> list[CycleRecord]:
    """Run one arm's loop from the pilot champion; one record per cycle. `progress` counts the cycles."""
    settings = arm_settings(settings, arm, seed)
    spec, bounds = world.spec, world.bounds
    configure(settings)
    copy_version(pilot.model_name, pilot.version, settings.model_name)
    promote(settings)
    store = RecordStore(settings.record_store_url)
    rng, judge_rng = np.random.default_rng(seed), np.random.default_rng(10_000 + seed)
    policy = settings.policy
    records = []
    for cycle in range(1, config.cycles + 1):
        step = f"cycle {cycle} of {config.cycles}"
        progress(cycle - 1, config.cycles, step)
        batch, following, model = world.months[cycle], world.months[cycle + 1], load_registered(settings)
        scored = model.score(batch).set_axis(batch.index)
        probability = scored["probability"].to_numpy()
        plan = work_plan(probability, policy.capacity, policy.epsilon, rng, policy.exploration).set_axis(batch.index)
        if arm == ORACLE_ARM:  # every outcome is revealed: labels no policy chose
            plan["propensity"] = 1.0
        log_scored(store, spec, batch, scored, plan, model)
        log_outcomes(store, spec, batch, plan["worked"] | (arm == ORACLE_ARM))
        status = "skipped"
        if config.monitor and cycle > 1:
            period, reference = bounds[cycle + 1] - bounds[cycle], Window(bounds[cycle - 1], bounds[cycle])
            status = monitor_period(settings, period, end=bounds[cycle + 1], reference=reference, store=store).status
        worked = plan["worked"].to_numpy()
        month = {
            "conversions": int(batch[spec.target].to_numpy()[worked].sum()),
            "worked": int(worked.sum()),
            "explored": int((plan["policy"] == EXPLORE).sum()),
            "monitor_status": status,
        }
        champion_proba = model.predict_proba(following)
        champion_next = true_auc(champion_proba, following)
        if arm == STALE_ARM:
            records.append(_record(arm, seed, cycle, model.version, champion_next, month))
            continue
        start = bounds[max(cycle + 1 - config.window, 1)]
        retrained = retrain(
            settings,
            bounds[cycle + 1] - start,
            end=bounds[cycle + 1],
            spec=spec,
            store=store,
            study_name=f"{settings.model_name}-cycle{cycle}",
            progress=within(progress, cycle - 1, config.cycles, f"{step}, retrain"),
        )
        gate, version = retrained.findings.gate, retrained.findings.train
        if version is None:
            records.append(_record(arm, seed, cycle, model.version, champion_next, month, retrained.outcome,
                                   retrained.reason))  # fmt: skip
            continue
        challenger = load_version(settings.model_name, version.version)
        challenger_next = challenger.predict_proba(following)
        span = _gate_span(world, cycle, config.window, version.run_id)
        gated = arm == EXPLORE_ARM
        promoted = bool(gate.get("promoted")) if gated else True
        if promoted and not gate.get("promoted"):  # the naive arms deploy every retrain
            MlflowClient().set_registered_model_alias(settings.model_name, CHAMPION, version.version)
        value = (
            _worklist_check(champion_proba, challenger_next, following, settings, judge_rng, config.value_level)
            if policy.epsilon > 0
            else (np.nan,) * 4
        )
        records.append(
            CycleRecord(
                arm,
                seed,
                cycle,
                model.version,
                champion_next,
                true_auc(challenger_next, following),
                promoted,
                gated,
                gate_estimate=number_or_nan(gate.get("gain")),
                gate_low=number_or_nan(gate.get("gain_low")),
                gate_high=number_or_nan(gate.get("gain_high")),
                value_estimate=value[0],
                value_low=value[1],
                value_high=value[2],
                value_truth=value[3],
                span_gain=true_auc(challenger.predict_proba(span), span) - true_auc(model.predict_proba(span), span),
                retrain=retrained.outcome,
                reason=retrained.reason,
                **month,
            )
        )
    return records


def _record(
    arm: str, seed: int, cycle: int, version: str, champion_next: float, month: dict, outcome: str = "-",
    reason: str = "never retrains",
) -> CycleRecord:  # fmt: skip
    """A cycle without a challenger: the champion stays."""
    nan = float("nan")
    return CycleRecord(arm, seed, cycle, version, champion_next, nan, False, False, gate_estimate=nan, gate_low=nan,
                       gate_high=nan, value_estimate=nan, value_low=nan, value_high=nan, value_truth=nan,
                       span_gain=nan, retrain=outcome, reason=reason, **month)  # fmt: skip


def _gate_span(world: World, cycle: int, window: int, run_id: str) -> pd.DataFrame:
    """The records the gate judged (its logged span, attached to the challenger's run), with every outcome: the
    gate itself sees the worked ones' only."""
    judged = set(run_table(run_id, LOGGED_ARTIFACT)[world.spec.id_column].astype(str))
    months = pd.concat(world.months[max(cycle + 1 - window, 1) : cycle + 1])
    return months[months[world.spec.id_column].astype(str).isin(judged)]


def _worklist_check(
    champion_next: np.ndarray,
    challenger_next: np.ndarray,
    following: pd.DataFrame,
    settings: Settings,
    rng,
    level: float,
) -> tuple[float, float, float, float]:
    """The doubly robust estimate of the challenger's worklist value on the next month as the champion's policy
    would log it (a draw of its own), with its interval, and the true value there."""
    policy = settings.policy
    plan = work_plan(champion_next, policy.capacity, policy.epsilon, rng, policy.exploration)
    truth = following[TRUTH].to_numpy()
    outcome = (rng.random(len(truth)) < truth).astype(float)
    logged = Logged.of(np.where(plan["worked"], outcome, np.nan), plan["propensity"])
    found = compare(logged, challenger_next, champion_next, "roc_auc", policy.capacity, level=level, rounds=200)
    top = np.argsort(-challenger_next, kind="stable")[: top_k_rows(len(truth), policy.capacity)]
    return found.new["worklist_value"], *found.new_value_interval, float(100 * truth[top].mean())


def log_scored(
    store: RecordStore, spec: DatasetSpec, batch: pd.DataFrame, scored: pd.DataFrame, plan: pd.DataFrame, model
) -> None:
    """Log each day's scores of `batch` (indexed like `scored` and `plan`) with the policy's decisions, scored at
    the record's day. `model` is anything with `name` and `version`."""
    columns = [spec.time_column, *spec.features]
    store.log_scores(
        ScoredBatch(
            rows[columns],
            scored.loc[rows.index],
            model_name=model.name,
            model_version=model.version,
            record_ids=rows[spec.id_column].astype(str).tolist(),
            scored_at=_moment(day),
            policy=plan.loc[rows.index],
        )
        for day, rows in batch.groupby(batch[spec.time_column].dt.floor("D"))
    )


def log_outcomes(store: RecordStore, spec: DatasetSpec, batch: pd.DataFrame, revealed: pd.Series) -> int:
    """Report the outcomes of the revealed records only (the worked ones), dated at the record's time."""
    shown = batch[revealed.loc[batch.index].to_numpy()]
    return store.add_outcomes(
        Outcome(str(i), int(y), _moment(t))
        for i, y, t in zip(shown[spec.id_column], shown[spec.target], shown[spec.time_column], strict=True)
    )


def _moment(value: pd.Timestamp) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


def run_simulation(
    settings: Settings,
    config: SimulationConfig,
    replay: tuple[pd.DataFrame, DatasetSpec] | None = None,
    progress: Progress = silent,
) -> tuple[list[CycleRecord], Path]:
    """Every arm on every seed's world (synthetic, or a replay of `replay`'s rows), each seed from its own pilot
    champion; then one comparison report. `progress` counts a unit per seed's pilot and per arm's cycle."""
    records = []
    total, done = len(config.seeds) * (1 + len(config.arms) * config.cycles), 0
    for seed in config.seeds:
        world = replay_world(*replay, config, seed) if replay else synthetic_world(config, seed)
        pilot = train_pilot(settings, world, seed, within(progress, done, total, f"seed {seed}, pilot"))
        done += 1
        for arm in config.arms:
            arm_progress = within(progress, done, total, f"seed {seed}, {arm}", span=config.cycles)
            records += simulate_arm(settings, arm, seed, config, world, pilot, arm_progress)
            done += config.cycles
    progress(total, total, "writing the comparison report")
    return records, simulation_report(settings, records, config, world.source)


def arm_summary(records: list[CycleRecord]) -> pd.DataFrame:
    """Per arm: true AUC of the model deployed after the last cycle and over all cycles (mean and spread over
    seeds), conversions over the cycles (mean over seeds) and their change against exploit-only."""
    frame = pd.DataFrame([r.to_dict() for r in records])
    last = frame[frame["cycle"] == frame["cycle"].max()].groupby("arm", sort=False)["true_auc_deployed"]
    per_seed = frame.groupby(["arm", "seed"], sort=False).agg(
        conversions=("conversions", "sum"), mean_auc=("true_auc_deployed", "mean")
    )
    grouped = per_seed.groupby("arm", sort=False)
    summary = pd.DataFrame(
        {
            "final_true_auc": last.mean(),
            "final_true_auc_sd": last.std(ddof=0),
            "mean_true_auc": grouped["mean_auc"].mean(),
            "conversions": grouped["conversions"].mean(),
        }
    )
    if EXPLOIT_ARM in summary.index:
        summary["conversions_vs_exploit"] = summary["conversions"] / summary.loc[EXPLOIT_ARM, "conversions"] - 1
    return summary


def gate_judgement(records: list[CycleRecord], threshold: float = 0.01) -> dict[str, float]:
    """How the gate decided where it decided: the share of promotions of a challenger truly worse than its
    champion by more than `threshold`, the share of right decisions where the true difference exceeds it either
    way, and how often the doubly robust interval covered the true worklist value. Then where its error comes
    from: the estimate's distance to the true gain on its own span (estimation), the span's true gain's distance to
    the next month's (distance), how often the span's true gain has the next month's sign where the difference is
    clear (the most any gate judging that span can get right), and how often the gate's own interval covered the
    span's true gain, with the share below its lower end (where a gate promotes on a gain that is not there)."""
    frame = pd.DataFrame([r.to_dict() for r in records if r.gated])
    if frame.empty:
        return {"decisions": 0}
    truth = frame["true_auc_challenger"] - frame["true_auc_champion"]
    clear = truth.abs() > threshold
    right = frame["promoted"] == (truth > 0)
    covered = frame.dropna(subset=["value_low"])
    inside = (covered["value_low"] <= covered["value_truth"]) & (covered["value_truth"] <= covered["value_high"])
    return {
        "decisions": len(frame),
        "promotions": int(frame["promoted"].sum()),
        "worse_promoted_share": float((frame["promoted"] & (truth < -threshold)).mean()),
        "clear_differences": int(clear.sum()),
        "right_where_clear": float(right[clear].mean()) if clear.any() else float("nan"),
        "truly_better_challengers": int((truth > threshold).sum()),
        "value_coverage": float(inside.mean()) if len(covered) else float("nan"),
        "estimation_error": float((frame["gate_estimate"] - frame["span_gain"]).abs().mean()),
        "distance_error": float((frame["span_gain"] - truth).abs().mean()),
        "span_sign_right_where_clear": float(((frame["span_gain"] > 0) == (truth > 0))[clear].mean())
        if clear.any()
        else float("nan"),
        "gain_coverage": float(
            ((frame["gate_low"] <= frame["span_gain"]) & (frame["span_gain"] <= frame["gate_high"])).mean()
        ),
        "span_gain_below_low": float((frame["span_gain"] < frame["gate_low"]).mean()),
    }


def per_cycle(records: list[CycleRecord]) -> pd.DataFrame:
    """Mean and spread over seeds, per arm and cycle, of the deployed model's true AUC and cumulative conversions."""
    frame = pd.DataFrame([r.to_dict() for r in records])
    frame["cumulative_conversions"] = frame.groupby(["arm", "seed"])["conversions"].cumsum()
    grouped = frame.groupby(["arm", "cycle"], sort=False)
    return grouped.agg(
        true_auc=("true_auc_deployed", "mean"),
        true_auc_sd=("true_auc_deployed", lambda s: s.std(ddof=0)),
        cumulative_conversions=("cumulative_conversions", "mean"),
        promoted=("promoted", "mean"),
    ).reset_index()


def simulation_report(settings: Settings, records: list[CycleRecord], config: SimulationConfig, source: str) -> Path:
    """The arms side by side: true AUC per cycle (mean and spread over seeds), cumulative conversions, the gate's
    decisions judged against the truth, and every cycle."""
    frame = pd.DataFrame([r.to_dict() for r in records])
    summary_table, cycles, judged = arm_summary(records), per_cycle(records), gate_judgement(records)
    out_dir = new_report_dir(settings.reports_dir, "simulate")
    best = summary_table["final_true_auc"].idxmax()
    summary = {
        "kind": "simulate",
        "title": f"simulation: {len(config.seeds)} seeds x {config.cycles} cycles, {source.split(',')[0]}",
        "status": "info",
        "model_version": "",
        "headline": {"roc_auc": float(summary_table.loc[best, "final_true_auc"]), **judged},
        "config": asdict(config),
        "arms": summary_table.reset_index().to_dict(orient="records"),
        "gate": judged,
        "records": frame.to_dict(orient="records"),
        "files": {},
    }
    figure = new_figure(9, 3.2)
    left, right = figure.subplots(1, 2)
    for arm, part in cycles.groupby("arm", sort=False):
        left.plot(part["cycle"], part["true_auc"], marker="o", label=arm)
        left.fill_between(part["cycle"], part["true_auc"] - part["true_auc_sd"], part["true_auc"] + part["true_auc_sd"],
                          alpha=0.15)  # fmt: skip
        right.plot(part["cycle"], part["cumulative_conversions"], marker="o", label=arm)
    left.set(title="true AUC of the deployed model, next month", xlabel="cycle")
    right.set(title="conversions won (cumulative, mean over seeds)", xlabel="cycle")
    left.legend(fontsize=8)
    body = (
        f"<p>{source}. True AUC is measured on the month after each cycle, on every record, against the truth "
        "(only a simulation knows it); the band is one standard deviation over seeds. The gate's decisions are "
        "judged right when it promotes exactly when the challenger is truly better.</p>"
        + png(figure)
        + "<h2>Arms</h2>"
        + table(summary_table.reset_index())
        + "<h2>Gate decisions against the truth</h2>"
        + table([{"figure": k, "value": v} for k, v in judged.items()])
        + "<h2>Per cycle (mean over seeds)</h2>"
        + table(cycles)
        + "<h2>Every cycle</h2>"
        + table(frame.drop(columns="reason"))
    )
    write_report(out_dir, summary, body)
    write_index(settings.reports_dir)
    return out_dir / "summary.html"
