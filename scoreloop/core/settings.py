"""One typed settings object, read from `SCORELOOP_*` environment variables and built at the entry point.

Every piece of state lives under `home`: the MLflow store and artifacts, the Optuna storage, the BentoML model
store, reports. Switching a store to a team server is one setting each (a URL).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_KEY_LENGTH = 16


def redact(url: str) -> str:
    """`scheme://user:secret@host` -> `scheme://user:***@host`; URLs without credentials are unchanged."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", url)


class SearchSpace(BaseModel):
    """CatBoost's tuned hyperparameters: `[low, high]` ranges (learning rate and L2 on a log scale) and choices.

    The number of trees is not searched: every trial grows up to `max_iterations` and early stopping on the
    validation slice picks the count. Learning rates stop at 0.15: faster ones converge in a handful of trees, where
    the noise of a small validation slice picks the winner (benchmarks/README.md, tuning: worse holdout AUC than
    CatBoost's defaults on both datasets with (0.02, 0.3) and 600 trees; better with (0.01, 0.15) and 1000). Class
    weights change the raw probabilities: "Balanced" inflates the positive class by the full class ratio, so it is
    left out by default; whatever a trial chose, the calibration fitted after selection removes the shift from the
    probability a user sees, and selection also tries the tuned parameters without class weights.
    """

    depth: tuple[int, int] = (4, 8)
    learning_rate: tuple[float, float] = (0.01, 0.15)
    l2_leaf_reg: tuple[float, float] = (1.0, 30.0)
    border_count: list[int] = Field(default_factory=lambda: [32, 64, 128, 254], min_length=1)
    one_hot_max_size: list[int] = Field(default_factory=lambda: [2, 4, 10], min_length=1)
    auto_class_weights: list[Literal["None", "Balanced", "SqrtBalanced"]] = Field(
        default_factory=lambda: ["None", "SqrtBalanced"], min_length=1
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> Self:
        for name in ("depth", "learning_rate", "l2_leaf_reg"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"search.{name} must be [low, high] with 0 < low <= high, got {[low, high]}")
        return self


class TrainSettings(BaseModel):
    """How a training run splits, tunes and refits."""

    trials: int = Field(10, ge=1)
    seed: int = 42
    workers: int = Field(1, ge=1, description="Tuning processes on one study; 1 is the exactly reproducible path.")
    search: SearchSpace = Field(default_factory=SearchSpace)
    startup_trials: int = Field(5, ge=1, description="Seeded random trials before TPE starts modelling.")
    pruning: bool = True
    prune_after_trials: int = Field(3, ge=1, description="Completed trials before any trial can be pruned.")
    prune_warmup_iterations: int = Field(10, ge=0, description="Trees every trial grows before it can be pruned.")
    top_k: float = Field(0.10, gt=0, le=1, description="Share of records a team can work: precision and lift@k.")
    calibration_bins: int = Field(10, ge=2)
    baselines: bool = Field(True, description="Also fit untuned CatBoost and HistGradientBoosting on the split.")
    min_rows: int = Field(
        1000,
        ge=1,
        description="Fewer labelled rows: training refuses. Salesforce's lead scoring asks for 1,000 leads; below "
        "that the 15% holdout is too small for the gate's figures to mean anything.",
    )
    min_positives: int = Field(
        100,
        ge=1,
        description="Fewer positive labels: training refuses. HubSpot asks for 100 conversions, Salesforce for 120; "
        "100 leaves about 15 holdout positives, the least an AUC or ECE is worth judging on.",
    )
    cv_below_rows: int = Field(
        5000,
        ge=0,
        description="Fewer rows in train+valid: tuning and model selection use `cv_folds`-fold cross-validation "
        "instead of the one validation slice (benchmarks/README.md: at 3,000 rows the slice overestimated AUC by "
        "~0.02 and its pick scored ~0.01 lower on the holdout; at 10,000 rows both gave the same holdout AUC).",
    )
    candidates: list[Literal["tuned", "defaults", "blend"]] = Field(
        default_factory=lambda: ["tuned", "defaults", "blend"],
        min_length=1,
        description="What model selection compares: the tuned parameters (and, when they use class weights, the same "
        "without), CatBoost's defaults, and the blend of the best tuned one with the defaults (both must take part). "
        "Leaving one out is for experiments: the gate still compares baselines.",
    )
    objective: Literal["roc_auc", "log_loss"] = Field(
        "roc_auc",
        description="What a tuning trial is early-stopped, pruned and scored on (validation AUC or log loss); model "
        "selection compares candidates on AUC either way (README, Train: what tuning optimises).",
    )
    selection_level: float = Field(
        0.90,
        gt=0,
        lt=1,
        description="Two-sided level of the paired bootstrap interval (over out-of-fold rows) of a candidate's lead "
        "over CatBoost's defaults: the defaults win unless its low end is above 0.",
    )
    selection_rounds: int = Field(300, ge=50, description="Bootstrap rounds of the selection's intervals.")
    cv_folds: int = Field(5, ge=2, description="Folds of small-data cross-validation (time-ordered with a time).")
    calibration: Literal["platt", "isotonic", "identity"] = Field(
        "platt",
        description="How probabilities are calibrated on out-of-fold/validation predictions; platt measured best "
        "(benchmarks/README.md, calibration) and keeps SHAP reasons additive.",
    )
    valid_fraction: float = Field(0.15, gt=0, lt=0.5, description="Newest-but-one time slice, used for tuning.")
    holdout_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="Newest time slice, never tuned on: final metrics and the promotion gate."
    )
    max_iterations: int = Field(1000, ge=10)
    early_stopping_rounds: int = Field(40, ge=5)
    threads: int = Field(2, ge=1)
    tiers: dict[str, float] = Field(
        default_factory=lambda: {"A": 0.10, "B": 0.30, "C": 0.60},
        description="Tier name -> share of holdout records at or above its cut-off (the rest are 'D').",
    )


class GateSettings(BaseModel):
    """The promotion gate: the lower end of the paired `level` interval of the challenger's gain over the champion on
    the primary `metric` must exceed `margin` (-0.005: not clearly worse; 0: a clear win), its calibration
    error (ECE) may not clearly (the lower end of the same paired interval) exceed the champion's by more than
    `ece_tolerance`, and it may lose to no baseline of its own run (CatBoost defaults, HistGradientBoosting) on the
    same holdout by more than `baseline_tolerance` beyond the holdout's noise (`baseline_level`). On logged
    decisions every figure is an off-policy estimate."""

    metric: Literal["roc_auc", "pr_auc", "log_loss", "brier"] = "roc_auc"
    margin: float = Field(
        -0.005,
        description="The gain's lower end must exceed it: a non-inferiority margin (promote unless the challenger may "
        "be worse by more than 0.005 at `level`), chosen from the feedback-loop benchmark; 0 asks for a clear win.",
    )
    level: float = Field(
        0.90,
        gt=0,
        lt=1,
        description="Two-sided level of the paired bootstrap interval of the challenger's gain (on logged decisions "
        "widened to Student's t on the weights' effective size: core.offpolicy).",
    )
    rounds: int = Field(300, ge=50, description="Bootstrap rounds of the gate's intervals.")
    ece_tolerance: float = Field(0.01, ge=0)
    baseline_tolerance: float = Field(
        0.002, ge=0, description="How much worse than a baseline on the gate's metric a challenger may clearly be."
    )
    baseline_level: float = Field(
        0.90, gt=0, lt=1, description="Two-sided level of the paired bootstrap interval that decides a clear loss."
    )
    notes_rows: int = Field(
        5000, ge=1, description="Recent records both versions score for the release notes of a promotion."
    )


class MonitorSettings(BaseModel):
    """Tolerances that turn a monitoring report into pass/fail, and how large periods are sampled."""

    max_drift_share: float = Field(0.3, ge=0, le=1, description="Fail when a larger share of features drifts.")
    max_psi: float = Field(0.2, ge=0, description="Fail when the score distribution's PSI vs the reference exceeds it.")
    min_roc_auc: float = Field(0.6, ge=0, le=1, description="Fail when ROC AUC on labelled records falls below it.")
    max_calibration_error: float = Field(0.1, ge=0, le=1, description="Fail when ECE on labelled records exceeds it.")
    max_missing_increase: float = Field(0.1, ge=0, le=1, description="Fail when a feature's missing share rises more.")
    max_new_category_share: float = Field(
        0.05, ge=0, le=1, description="Fail when more of a column's values are categories the model never saw."
    )
    max_refused_share: float = Field(
        0.05, ge=0, le=1, description="Files mode: fail when a larger share of the current file's records is refused."
    )
    min_labelled: int = Field(200, ge=1, description="Fewer labelled records: quality is reported, not judged.")
    sample_rows: int = Field(
        50_000, ge=1000, description="Rows per side for Evidently and feature checks; larger periods are sampled."
    )
    seed: int = 0
    bins: int = Field(10, ge=2, description="Quantile bins for PSI and calibration.")
    outcome_days: int = Field(
        30, ge=0, description="Days outcomes take to arrive: younger cohorts are shown as too young to judge."
    )
    band_width: int = Field(20, ge=1, le=100, description="Score points per band in `scoreloop bands --by band`.")


class PolicySettings(BaseModel):
    """The work policy (which scored leads sales works) and how retraining corrects for its choices."""

    capacity: float = Field(0.2, gt=0, le=1, description="Share of each scored batch sales can work.")
    epsilon: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of the capacity drawn at random below the top (0.05: chosen from the loop benchmark over "
        "0.1 and 0.2, see benchmarks/README.md).",
    )
    exploration: Literal["uniform", "proportional"] = Field(
        "uniform",
        description="How explored leads are drawn below the top: uniformly, or with a chance that grows "
        "with their probability (see core.policy).",
    )
    ipw_clip: float = Field(20.0, ge=1, description="Largest inverse-propensity weight a labelled record gets.")
    seed: int = 0


class RetrainSettings(BaseModel):
    """What a retrain adds to the labelled records of its window (benchmarks/README.md, loop: measured off and on)."""

    older_decay: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Fully labelled rows from before the window (the file the champion's lineage names) join the "
        "training rows with weight older_decay ** age, age in window lengths before the window's start; they are "
        "never validated, held out or gated on. 0 leaves them out.",
    )
    warm_start: bool = Field(
        True,
        description="Fit the challenger on top of the champion: every fit starts from the champion's raw log-odds "
        "(CatBoost's baseline) and the served model is the sum of the two (one CatBoost model).",
    )
    warm_max_trees: int = Field(
        3000,
        ge=1,
        description="A champion with at least this many trees is not warm-started from: each warm-started promotion "
        "adds its correction's trees to the champion's, so past this size the retrain fits from scratch and the "
        "served model stops growing.",
    )
    ipw: bool = Field(
        False,
        description="Weight the window's labelled records by their clipped, self-normalised inverse propensity. Off: "
        "which records were worked depends only on their features, so the labels still follow the population's "
        "P(outcome | features) and an unweighted fit learns it; the weights only add variance (measured: "
        "unweighted challengers were truly better, benchmarks/README.md, loop). The gate and monitoring weight "
        "their estimates either way.",
    )
    holdout_fraction: float | None = Field(
        None,
        gt=0,
        lt=0.5,
        description="Newest share of the window a retrain holds out: the gate's span, whose logged decisions are "
        "all its evidence. None: train.holdout_fraction.",
    )


class ValueSettings(BaseModel):
    """The simple approach every training run is compared with, and the business terms of the comparison."""

    features: int = Field(3, ge=1, description="Strongest features (by the model's importance) the thresholds use.")
    depth: int = Field(2, ge=1, le=4, description="Depth of the threshold tree: 2 gives at most 4 groups of records.")
    review_budget: float = Field(0.1, gt=0, le=1, description="Share of records a review team can check.")
    margin: float = Field(
        1.0, description="Conversions per 100 records worked (at the policy's capacity) the model must add."
    )


class AlertSettings(BaseModel):
    """The tier-crossing webhook: where to post, the shared secret that signs each body, which tiers to watch, and
    how delivery is retried. Off unless both `url` and `secret` are set."""

    url: str | None = Field(None, pattern=r"^https?://", description="Webhook receiving tier crossings (http/https).")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key signing each body; only from the environment.")
    tiers: list[str] = Field(default_factory=lambda: ["A"], min_length=1, description="Crossings into these alert.")
    attempts: int = Field(5, ge=1, description="Delivery attempts per alert before it is dropped (and counted).")
    backoff_seconds: float = Field(0.5, ge=0, description="Wait after the first failed attempt; doubled after each.")
    timeout_seconds: float = Field(5.0, gt=0, description="Per attempt.")
    queue: int = Field(10_000, ge=1, description="Alerts waiting for delivery; beyond it new ones are dropped.")

    @property
    def enabled(self) -> bool:
        return self.url is not None and self.secret is not None


class ServeSettings(BaseModel):
    """The served API: request limits, adaptive batching, the scoring-log queue and the optional /feedback key."""

    max_records: int = Field(1000, ge=1, description="Most records one request may carry; more is a 413.")
    max_batch_size: int = Field(1000, ge=1, description="Most records adaptive batching merges into one call.")
    max_latency_ms: int = Field(
        1000, ge=1, description="Queueing budget of adaptive batching; beyond it requests are shed with a 503."
    )
    workers: int = Field(1, ge=1, description="Server processes, each with its own model copy and batcher.")
    inline_records: int = Field(
        10,
        ge=0,
        description="/score and /score/columns calls (after batching) of at most this many records are scored on "
        "the event loop, not handed to a worker thread (~1 ms less for one record on 2 cores); 0: always a thread.",
    )
    explain_top: int = Field(3, ge=1, description="Reasons per record /explain gives when the request names none.")
    log_queue_rows: int = Field(
        100_000, ge=1000, description="Scored rows that may wait for the scoring-log writer before /score blocks."
    )
    log_queue_bytes: int = Field(
        256 * 2**20, ge=2**20, description="Bytes of logged rows that may wait for the writer before /score blocks."
    )
    log_ack: Literal["queued", "committed"] = Field(
        "queued",
        description="When /score answers: once its rows are queued for the scoring log (a SIGKILL can lose the last "
        "~20 ms of them), or once they are committed (no loss; the commit's latency on every request).",
    )
    max_body_bytes: int = Field(
        16 * 2**20, ge=1024, description="Largest request body read; more is a 413 (from Content-Length: unread)."
    )
    body_seconds: float = Field(10.0, gt=0, description="A request body not received within this is a 408.")
    store_wait_seconds: float = Field(
        2.0, gt=0, description="How long a write waits for another process's lock on the record store; then 503."
    )
    api_key: SecretStr | None = Field(
        None,
        description="/feedback and /admin/reload need `Authorization: Bearer <key>` (reload is refused without one); "
        "at least 16 characters. Required on any address but loopback unless `open_feedback`.",
    )
    open_feedback: bool = Field(
        False,
        description="Serve on a non-loopback address without an API key, /feedback open to anyone who reaches it "
        "(and so able to steer the next model): an explicit opt-out, for a network you trust.",
    )
    champion_poll_seconds: float = Field(
        30.0,
        ge=0,
        description="How often the service checks `models:/NAME@champion` and hot-swaps to a new version; 0: never "
        "(POST /admin/reload still does).",
    )

    @model_validator(mode="after")
    def _check_key(self) -> Self:
        if self.api_key is not None and len(self.api_key.get_secret_value().strip()) < MIN_KEY_LENGTH:
            raise ValueError(
                f"serve.api_key (SCORELOOP_SERVE__API_KEY) must be at least {MIN_KEY_LENGTH} characters, not "
                "blank: a short key is guessed (`openssl rand -hex 24` makes one)"
            )
        return self


class Settings(BaseSettings):
    """Everything configurable, with embedded (single-machine) defaults."""

    model_config = SettingsConfigDict(env_prefix="SCORELOOP_", env_nested_delimiter="__")

    home: Path = Path(".scoreloop")
    experiment: str = "scoreloop"
    model_name: str = "scoreloop-model"
    optuna_storage: str | None = Field(None, description="Optuna storage URL; default: a journal file in home.")
    store_url: str | None = Field(None, description="Scoring log + outcomes database URL; default: SQLite in home.")
    train: TrainSettings = Field(default_factory=TrainSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    value: ValueSettings = Field(default_factory=ValueSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @property
    def tracking_uri(self) -> str:
        """`MLFLOW_TRACKING_URI` wins; otherwise a SQLite store in the home."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def tracking_uri_redacted(self) -> str:
        """The tracking URI safe to print or log: any password in it replaced by ***."""
        return redact(self.tracking_uri)

    @property
    def record_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.home.resolve() / 'records.db'}"

    @property
    def gate_span(self) -> float:
        """The newest share of a retrain's window held out for the gate: `retrain.holdout_fraction`, or the
        training's."""
        return self.retrain.holdout_fraction or self.train.holdout_fraction

    @property
    def artifact_root(self) -> Path:
        return self.home.resolve() / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home.resolve() / "reports"

    @property
    def bentoml_home(self) -> Path:
        return self.home.resolve() / "bentoml"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home.resolve()
