"""A synthetic "lead world": the embedded default data, since scoreloop never downloads anything.

`generate_leads` draws a clean, typed table of B2B leads whose conversion follows a known logistic ground truth
(`true_probability`), optionally drifting over time. `make_messy` and `corrupt_lines` turn it into what a real CRM
export looks like, so ingestion is exercised on the same defects it meets in practice. Everything is deterministic
given a seed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import pandas as pd

INDUSTRIES = ("saas", "fintech", "retail", "manufacturing", "healthcare", "education", "logistics", "media")
COUNTRIES = ("us", "uk", "de", "fr", "in", "br", "ca", "au")
SOURCES = ("organic", "paid_search", "referral", "webinar", "outbound", "partner")
PLANS = ("free", "starter", "pro", "enterprise")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "industry": INDUSTRIES,
    "country": COUNTRIES,
    "source": SOURCES,
    "plan_interest": PLANS,
}
COUNT_FEATURES = (
    "product_events",
    "email_opens",
    "support_tickets",
    "sales_touches",
    "days_since_last_activity",
    "pages_viewed",
)
FEATURES_NUMERIC: tuple[str, ...] = ("employees", "annual_revenue", *COUNT_FEATURES)
FEATURES_CATEGORICAL: tuple[str, ...] = tuple(CATEGORIES)
ID_COLUMN = "lead_id"
TIME_COLUMN = "created_at"
TARGET = "converted"
EXTRA_COLUMNS = ("owner_email", "notes", "crm_internal_id")  # CRM bookkeeping a messy export adds: never features
MISSING_TOKENS = ("", "N/A", "n/a", "-", "null", "NULL", "none")
POSITIVE_TOKENS = ("yes", "Yes", "YES", "1", "true", "True")
NEGATIVE_TOKENS = ("no", "No", "0", "false", "False")
MAX_EMPLOYEES = 50_000
MAX_INACTIVE_DAYS = 120

# Category mixes at the first and the last month; covariate drift interpolates between them.
_INDUSTRY_MIX = (
    (0.22, 0.12, 0.14, 0.12, 0.12, 0.10, 0.10, 0.08),
    (0.12, 0.20, 0.08, 0.16, 0.18, 0.06, 0.12, 0.08),
)
_COUNTRY_MIX = (0.36, 0.12, 0.10, 0.08, 0.13, 0.07, 0.08, 0.06)
_SOURCE_MIX = (
    (0.30, 0.15, 0.15, 0.15, 0.15, 0.10),
    (0.14, 0.36, 0.10, 0.08, 0.27, 0.05),
)
_INDUSTRY_LOG_SIZE = dict(zip(INDUSTRIES, (0.0, 0.2, 0.3, 0.7, 0.5, 0.1, 0.4, -0.3), strict=True))
_INDUSTRY_LOG_REVENUE_PER_HEAD = dict(zip(INDUSTRIES, (0.3, 0.5, -0.4, 0.0, 0.0, -0.6, -0.2, 0.1), strict=True))

# Ground-truth coefficients; pairs are (first month, last month) and concept drift interpolates between them.
_INDUSTRY_EFFECT = (
    dict(zip(INDUSTRIES, (0.55, 0.30, -0.35, -0.10, 0.00, -0.50, -0.20, 0.10), strict=True)),
    dict(zip(INDUSTRIES, (0.00, 0.25, -0.35, 0.20, 0.75, -0.50, -0.20, -0.20), strict=True)),
)
_SOURCE_EFFECT = (
    dict(zip(SOURCES, (0.00, -0.35, 0.60, 0.40, -0.55, 0.30), strict=True)),
    dict(zip(SOURCES, (0.00, 0.25, 0.35, -0.20, 0.05, 0.30), strict=True)),
)
_EMAIL_EFFECT = (0.45, 0.0)
_COUNTRY_EFFECT = dict(zip(COUNTRIES, (0.10, 0.05, 0.00, -0.05, -0.25, -0.15, 0.05, 0.00), strict=True))
_PLAN_EFFECT = dict(zip(PLANS, (-0.60, 0.00, 0.35, 0.60), strict=True))
_PLAN_SIZE_SLOPE = dict(zip(PLANS, (-0.35, -0.10, 0.15, 0.50), strict=True))
_INDUSTRY_USAGE_SLOPE = dict(zip(INDUSTRIES, (0.35, 0.20, -0.15, 0.00, 0.10, -0.20, 0.00, 0.00), strict=True))

_CALIBRATION_ROWS = 20_000
_CALIBRATION_SEED = 20_240_101
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class WorldConfig:
    """Size, seed, time span, drift and base rate of a synthetic lead world."""

    rows: int = 20_000
    seed: int = 0
    start: str = "2024-01-01"
    months: int = 12
    covariate_drift: float = 0.0
    concept_drift: float = 0.0
    base_rate: float = 0.12

    def __post_init__(self) -> None:
        for name in ("covariate_drift", "concept_drift"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.base_rate < 1.0:
            raise ValueError(f"base_rate must be within (0, 1), got {self.base_rate}")
        if self.rows < 0 or self.months < 1:
            raise ValueError(f"rows must be >= 0 and months >= 1, got rows={self.rows}, months={self.months}")


# --------------------------------------------------------------------------------------------------- clean world


def generate_leads(config: WorldConfig) -> pd.DataFrame:
    """Draw the clean lead table, sorted by `created_at`, with its hidden `p_true` and a sampled `converted`."""
    rng = np.random.default_rng(config.seed)
    leads = _draw_features(config, rng)
    leads["p_true"] = true_probability(leads, config)
    leads[TARGET] = (rng.random(len(leads)) < leads["p_true"].to_numpy()).astype(np.int64)
    return leads


def true_probability(leads: pd.DataFrame, config: WorldConfig) -> np.ndarray:
    """Ground-truth conversion probability of `leads` (clean columns), at the drift position of `created_at`."""
    needed = [TIME_COLUMN, *FEATURES_NUMERIC, *FEATURES_CATEGORICAL]
    missing = [c for c in needed if c not in leads.columns]
    if missing:
        raise ValueError(f"true_probability needs columns {missing}, which the frame lacks")
    incomplete = [c for c in needed if leads[c].isna().any()]
    if incomplete:
        raise ValueError(f"true_probability needs complete values, but {incomplete} have missing ones")
    for column, allowed in CATEGORIES.items():
        unknown = sorted(set(map(str, leads[column])) - set(allowed))
        if unknown:
            raise ValueError(f"{column} has values {unknown[:5]}; allowed values are {list(allowed)}")
    return _sigmoid(_intercept(_calibration_key(config)) + _logit(leads, config))


def _draw_features(config: WorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    created_at = _draw_created_at(config, rng)
    shift = config.covariate_drift * _drift_position(created_at, config)
    leads = pd.DataFrame({ID_COLUMN: _lead_ids(len(created_at)), TIME_COLUMN: created_at})
    leads = pd.concat([leads, _draw_firmographics(shift, rng)], axis=1)
    return pd.concat([leads, _draw_touchpoints(leads, shift, rng)], axis=1)


def _span(config: WorldConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(config.start)
    return start, start + pd.DateOffset(months=config.months)


def _drift_position(created_at: pd.Series, config: WorldConfig) -> np.ndarray:
    """0 at `start`, 1 at the end of the span; clipped so leads outside the span get the edge behaviour."""
    start, end = _span(config)
    elapsed = (pd.to_datetime(created_at) - start).dt.total_seconds().to_numpy()
    return np.clip(elapsed / (end - start).total_seconds(), 0.0, 1.0)


def _draw_created_at(config: WorldConfig, rng: np.random.Generator) -> pd.Series:
    """Uniform over the span with fewer leads at weekends and at night."""
    start, end = _span(config)
    days = pd.date_range(start, end, freq="D", inclusive="left")
    weight = np.where(days.dayofweek >= 5, 0.35, 1.0)
    day = rng.choice(len(days), size=config.rows, p=weight / weight.sum())
    hour = rng.normal(13.0, 3.5, size=config.rows).clip(0, 23.99)
    seconds = (hour * 3600).astype(np.int64) + day.astype(np.int64) * 86_400
    stamps = start + pd.to_timedelta(np.sort(seconds), unit="s")
    return pd.Series(stamps.astype("datetime64[ns]"), name=TIME_COLUMN)


def _lead_ids(n: int) -> pd.Series:
    return "L" + pd.Series(np.arange(1, n + 1), dtype=np.int64).astype(str).str.zfill(7)


def _pick(
    rng: np.random.Generator,
    values: tuple[str, ...],
    first: tuple[float, ...],
    last: tuple[float, ...],
    shift: np.ndarray,
) -> np.ndarray:
    """Draw one category per row from a mix that moves from `first` to `last` as `shift` goes 0 -> 1."""
    probs = np.outer(1 - shift, first) + np.outer(shift, last)
    cumulative = probs.cumsum(axis=1) / probs.sum(axis=1, keepdims=True)
    index = (rng.random(len(shift))[:, None] > cumulative).sum(axis=1)
    return np.asarray(values, dtype=object)[np.minimum(index, len(values) - 1)]


def _effect(values: pd.Series | np.ndarray, table: dict[str, float]) -> np.ndarray:
    return pd.Series(values).map(table).to_numpy(dtype=float)


def _draw_firmographics(shift: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = len(shift)
    industry = _pick(rng, INDUSTRIES, *_INDUSTRY_MIX, shift)
    country = _pick(rng, COUNTRIES, _COUNTRY_MIX, _COUNTRY_MIX, shift)
    log_size = rng.normal(3.4 + _effect(industry, _INDUSTRY_LOG_SIZE), 1.6)
    employees = np.clip(np.rint(np.exp(log_size)), 1, MAX_EMPLOYEES).astype(np.int64)
    per_head = np.exp(rng.normal(np.log(120_000) + _effect(industry, _INDUSTRY_LOG_REVENUE_PER_HEAD), 0.6))
    revenue = np.maximum(np.round(employees * per_head, -3), 10_000.0)
    size = np.log(employees)
    plan_logits = np.column_stack([1.0 - 0.30 * size, np.full(n, 0.6), -0.6 + 0.15 * size, -3.2 + 0.50 * size])
    plan_cdf = np.cumsum(_softmax(plan_logits), axis=1)
    plan = np.asarray(PLANS, dtype=object)[np.minimum((rng.random(n)[:, None] > plan_cdf).sum(axis=1), 3)]
    source = _pick(rng, SOURCES, *_SOURCE_MIX, shift)
    return pd.DataFrame(
        {
            "industry": industry,
            "country": country,
            "employees": employees,
            "annual_revenue": revenue,
            "source": source,
            "plan_interest": plan,
        }
    )


def _draw_touchpoints(leads: pd.DataFrame, shift: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Counts share a latent engagement level, so they correlate like real activity does."""
    n = len(leads)
    engagement = rng.gamma(1.5, 1 / 1.5, size=n)
    plan, source = leads["plan_interest"], leads["source"]
    usage_rate = 5.0 * np.exp(
        _effect(plan, {"free": 0.2, "starter": 0.3, "pro": 0.4, "enterprise": 0.1})
        + _effect(
            source,
            {"organic": 0.2, "paid_search": -0.2, "referral": 0.1, "webinar": 0.1, "outbound": -0.5, "partner": 0.0},
        )
    )
    product_events = rng.poisson(usage_rate * engagement * rng.gamma(2.0, 0.5, size=n) * (1 + 0.8 * shift))
    outbound = (source == "outbound").to_numpy()
    touch_rate = 0.9 * np.exp(
        0.9 * outbound + _effect(plan, {"free": -0.5, "starter": 0.0, "pro": 0.3, "enterprise": 0.6})
    )
    webinar = (source == "webinar").to_numpy()
    inactive = rng.exponential(22.0 / np.sqrt(engagement + 0.05), size=n)
    return pd.DataFrame(
        {
            "product_events": product_events,
            "email_opens": rng.poisson(3.0 * rng.gamma(1.2, 1 / 1.2, size=n) * (1 + 0.5 * webinar)),
            "support_tickets": rng.poisson(0.15 + 0.05 * product_events**0.7),
            "sales_touches": rng.poisson(touch_rate),
            "days_since_last_activity": np.minimum(inactive, MAX_INACTIVE_DAYS).astype(np.int64),
            "pages_viewed": rng.poisson(3.0 * engagement + 0.4 * product_events),
        }
    ).astype(np.int64)


def _softmax(logits: np.ndarray) -> np.ndarray:
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _blend(pair: tuple[dict[str, float], dict[str, float]], values: pd.Series, drift: np.ndarray) -> np.ndarray:
    return (1 - drift) * _effect(values, pair[0]) + drift * _effect(values, pair[1])


def _logit(leads: pd.DataFrame, config: WorldConfig) -> np.ndarray:
    """Log-odds without the intercept: main effects, two interactions, and concept drift over time."""
    drift = config.concept_drift * _drift_position(leads[TIME_COLUMN], config)
    usage = np.log1p(leads["product_events"].to_numpy(dtype=float))
    tickets = leads["support_tickets"].to_numpy(dtype=float)
    size = np.log10(leads["employees"].to_numpy(dtype=float)) - 2.0
    email_weight = (1 - drift) * _EMAIL_EFFECT[0] + drift * _EMAIL_EFFECT[1]
    return (
        (0.75 + _effect(leads["industry"], _INDUSTRY_USAGE_SLOPE)) * usage
        + 0.25 * np.log1p(leads["pages_viewed"].to_numpy(dtype=float))
        - 0.03 * leads["days_since_last_activity"].to_numpy(dtype=float)
        + 0.22 * np.minimum(leads["sales_touches"].to_numpy(dtype=float), 6)
        + 0.45 * tickets
        - 0.12 * tickets**2
        + email_weight * np.log1p(leads["email_opens"].to_numpy(dtype=float))
        + _blend(_INDUSTRY_EFFECT, leads["industry"], drift)
        + _blend(_SOURCE_EFFECT, leads["source"], drift)
        + _effect(leads["country"], _COUNTRY_EFFECT)
        + _effect(leads["plan_interest"], _PLAN_EFFECT)
        + _effect(leads["plan_interest"], _PLAN_SIZE_SLOPE) * size
    )


def _calibration_key(config: WorldConfig) -> WorldConfig:
    """The intercept depends on the world's shape, not on its size or seed, so one value serves every frame."""
    return replace(config, rows=_CALIBRATION_ROWS, seed=_CALIBRATION_SEED)


@cache
def _intercept(config: WorldConfig) -> float:
    """Bisect the intercept so a fixed reference sample of this world converts at `base_rate`."""
    logit = _logit(_draw_features(config, np.random.default_rng(config.seed)), config)
    low, high = -20.0, 20.0
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if _sigmoid(middle + logit).mean() < config.base_rate else (low, middle)
    return (low + high) / 2


# --------------------------------------------------------------------------------------------------- messy export


def make_messy(leads: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Render clean leads as a CRM export: every cell a string, with the formats and defects real exports have."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({ID_COLUMN: leads[ID_COLUMN].astype(str), TIME_COLUMN: _format_dates(leads[TIME_COLUMN], rng)})
    for column in FEATURES_CATEGORICAL:
        out[column] = _mess_categories(leads[column].astype(str), rng)
    out["employees"] = _format_counts(leads["employees"], rng, thousands=True)
    out["annual_revenue"] = _format_revenue(leads["annual_revenue"], rng)
    for column in COUNT_FEATURES:
        out[column] = _format_counts(leads[column], rng, thousands=False)
    out[TARGET] = _format_target(leads[TARGET], rng)
    out = pd.concat([out, _extra_columns(len(leads), rng)], axis=1)
    out = _blank_cells(out, [*FEATURES_NUMERIC, *FEATURES_CATEGORICAL], rng)
    out = _inject_defects(out, rng)
    rest = [c for c in out.columns if c != ID_COLUMN]
    return out[[ID_COLUMN, *rng.permutation(rest)]].reset_index(drop=True)


def _choose(rng: np.random.Generator, options: tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(len(options), size=n)]


def _format_dates(created_at: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """ISO with a space or a 'T...Z', or date-only as US m/d/Y, 'Mon d, Y' and Y/m/d (these drop the time)."""
    stamps = pd.Series(pd.to_datetime(created_at).to_numpy())
    style = rng.choice(5, size=len(stamps), p=[0.55, 0.15, 0.10, 0.10, 0.10])
    out = np.empty(len(stamps), dtype=object)
    for kind, pattern in enumerate(("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%m/%d/%Y", None, "%Y/%m/%d")):
        rows = style == kind
        chosen = stamps[rows]
        if pattern is None:
            month = np.asarray(_MONTH_ABBR, dtype=object)[chosen.dt.month.to_numpy() - 1]
            out[rows] = month + " " + chosen.dt.day.astype(str) + ", " + chosen.dt.year.astype(str)
        else:
            out[rows] = chosen.dt.strftime(pattern)
    return out


def _mess_categories(values: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """About 1% misspelled by one inner edit, then mixed case and stray whitespace."""
    out = values.to_numpy(dtype=object).copy()
    for row in np.flatnonzero(rng.random(len(out)) < 0.01):
        if len(out[row]) >= 5:
            out[row] = _misspell(out[row], rng)
    return _pad(_vary_case(out, rng), rng)


def _misspell(value: str, rng: np.random.Generator) -> str:
    """Drop, duplicate or swap one inner character (never the first or last), always changing the value."""
    position = int(rng.integers(1, len(value) - 2))
    edit = int(rng.integers(3))
    if edit == 2 and value[position] != value[position + 1]:
        return value[:position] + value[position + 1] + value[position] + value[position + 2 :]
    if edit == 1:
        return value[:position] + value[position] + value[position:]
    return value[:position] + value[position + 1 :]


def _vary_case(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lower, Title, UPPER or one of three random casings per distinct value ('SaaS', 'fINtech', ...)."""
    codes, uniques = pd.factorize(values)
    table = np.asarray(
        [[v, v.title(), v.upper(), *(_random_case(v, rng) for _ in range(3))] for v in uniques], dtype=object
    ).reshape(-1, 6)
    style = rng.choice(6, size=len(values), p=[0.60, 0.12, 0.12, 0.06, 0.05, 0.05])
    return table[codes, style]


def _random_case(value: str, rng: np.random.Generator) -> str:
    upper = rng.random(len(value)) < 0.5
    return "".join(c.upper() if u else c for c, u in zip(value, upper, strict=True))


def _pad(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    style = rng.choice(4, size=len(values), p=[0.86, 0.06, 0.05, 0.03])
    before = np.where((style == 1) | (style == 3), " ", "").astype(object)
    after = np.where(style == 2, " ", np.where(style == 3, "  ", "")).astype(object)
    return before + values + after


def _format_counts(values: pd.Series, rng: np.random.Generator, thousands: bool) -> np.ndarray:
    """Plain integers, sometimes '3.0', and (when `thousands`) '1,250' for values of 1000 and more."""
    ints = values.to_numpy(dtype=np.int64)
    style = rng.choice(3, size=len(ints), p=[0.55, 0.05, 0.40] if thousands else [0.95, 0.05, 0.0])
    plain = ints.astype(str).astype(object)
    decimal = plain + ".0"
    grouped = np.asarray([f"{v:,}" for v in ints[style == 2]], dtype=object)
    out = np.where(style == 1, decimal, plain)
    out[style == 2] = grouped
    return out


def _format_revenue(values: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Whole-thousand dollars as '1200000', '$1,200,000', '1,200,000.00', '1200k' or '1.2M' (the last if >= 1M).

    Every form states the value exactly: 'k' and 'M' forms carry all significant digits, so Decimal parsing
    recovers the clean number (float parsing needs rounding to the cent).
    """
    dollars = values.to_numpy(dtype=float).round().astype(np.int64)
    style = rng.choice(5, size=len(dollars), p=[0.35, 0.25, 0.15, 0.12, 0.13])
    style = np.where((style == 4) & (dollars < 1_000_000), 1, style)
    renderers = (
        lambda v: str(v),
        lambda v: f"${v:,}",
        lambda v: f"{v:,}.00",
        lambda v: f"{v // 1000}k",
        lambda v: f"{v / 1_000_000:.3f}".rstrip("0").rstrip(".") + "M",
    )
    return np.asarray([renderers[s](v) for s, v in zip(style, dollars, strict=True)], dtype=object)


def _format_target(converted: pd.Series, rng: np.random.Generator) -> np.ndarray:
    positive = converted.to_numpy(dtype=np.int64) == 1
    n = len(positive)
    return np.where(positive, _choose(rng, POSITIVE_TOKENS, n), _choose(rng, NEGATIVE_TOKENS, n))


def _extra_columns(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Columns a CRM exports that a model must not use: the owner, free-text notes, the CRM's own key."""
    owners = (
        "ana.silva",
        "ben.okafor",
        "chloe.martin",
        "dev.patel",
        "emma.schulz",
        "felix.nguyen",
        "grace.kim",
        "hugo.rossi",
        "isla.murphy",
        "jon.berg",
        "kira.tanaka",
        "liam.walsh",
    )
    notes = (
        "",
        "",
        "",
        "asked for pricing",
        "follow up next week",
        "demo booked",
        "wants SSO, SOC2 report",
        "budget approved for Q3",
        "not the decision maker",
        "met at conference",
        "evaluating competitors",
        "needs CRM integration, API access",
        "trial extended",
        "left voicemail",
    )
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    codes = alphabet[rng.integers(len(alphabet), size=(n, 15))].copy().view("S15").ravel()
    return pd.DataFrame(
        {
            "owner_email": _choose(rng, owners, n) + "@example.com",
            "notes": _choose(rng, notes, n),
            "crm_internal_id": "00Q" + pd.Series(codes, dtype=object).str.decode("ascii"),
        }
    )


def _blank_cells(frame: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Blank about 3% of each feature column with one of the missing-value spellings CRMs use."""
    out = frame.copy()
    for column in columns:
        rows = rng.random(len(out)) < 0.03
        out.loc[rows, column] = _choose(rng, MISSING_TOKENS, int(rows.sum()))
    return out


def _inject_defects(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Break about 0.2% of rows in ways ingestion must quarantine, cycling through five kinds of defect."""
    out = frame.copy()
    count = round(len(out) * 0.002)
    rows = rng.choice(len(out), size=count, replace=False)
    for kind, row in enumerate(rows):
        match kind % 5:
            case 0:
                column = str(rng.choice(FEATURES_NUMERIC))
                out.iat[row, out.columns.get_loc(column)] = str(rng.choice(("twelve", "12abc", "3,4x")))
            case 1:
                out.iat[row, out.columns.get_loc("employees")] = f"-{rng.integers(1, 5000)}"
            case 2:
                out.iat[row, out.columns.get_loc(TIME_COLUMN)] = f"{rng.integers(2020, 2026)}-13-45"
            case 3:
                out.iat[row, out.columns.get_loc(TARGET)] = ""
            case _:
                out.iat[row, out.columns.get_loc(ID_COLUMN)] = ""
    return out


# --------------------------------------------------------------------------------------------------- broken CSV


def corrupt_lines(csv_text: str, seed: int, count: int) -> str:
    """Structurally break `count` data lines (too many or too few fields); every other line stays byte-identical.

    The header and the first data line are never touched: a first record with an extra field makes pandas take
    the first column as the index instead of skipping the record. Assumes one record per line (no quoted
    newlines), as `make_messy` exports are.
    """
    lines = csv_text.splitlines(keepends=True)
    width = len(_fields(lines[0])) if lines else 0
    candidates = [i for i in range(2, len(lines)) if lines[i].strip()]
    if count > len(candidates) or count < 0:
        raise ValueError(
            f"count must be within [0, {len(candidates)}] (the non-blank data lines after the first), got {count}"
        )
    rng = np.random.default_rng(seed)
    for index in sorted(rng.choice(candidates, size=count, replace=False)):
        body = lines[index].rstrip("\r\n")
        ending = lines[index][len(body) :]
        broken = _split_a_value(body, rng) if rng.random() < 0.5 or width < 4 else _truncate(body, width, rng)
        lines[index] = broken + ending
    return "".join(lines)


def _fields(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _join(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def _split_a_value(line: str, rng: np.random.Generator) -> str:
    """An unquoted comma inside one value: the record gains a field."""
    fields = _fields(line)
    column = int(rng.integers(len(fields)))
    value = fields[column].replace(",", " ").replace('"', "")
    cut = len(value) // 2
    quoted = [_join([f]) if f else "" for f in fields]
    quoted[column] = value[:cut] + "," + value[cut:]
    return ",".join(quoted)


def _truncate(line: str, width: int, rng: np.random.Generator) -> str:
    """A dump cut short mid-record: the record keeps at least two but fewer than `width` fields."""
    fields = _fields(line)
    keep = int(rng.integers(2, width - 1))
    partial = fields[keep][: len(fields[keep]) // 2]
    return _join([*fields[:keep], partial])
