"""The record store: every scoring decision and every outcome, durably, for monitoring and retraining.

SQLite under the home by default (WAL, synchronous=FULL: a committed write survives a crash), PostgreSQL by
URL for a team. Serving writes to it; monitoring and retraining read from it; nothing else owns these tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

METADATA = sa.MetaData()

SCORES = sa.Table(
    "scores",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("record_id", sa.String(200), index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("scored_at", sa.DateTime, nullable=False, index=True),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("propensity", sa.Float, doc="Probability that the work policy works this record, when one decided."),
    sa.Column("worked", sa.Boolean, doc="Whether the work policy chose this record."),
    sa.Column("policy", sa.String(50)),
    sa.Column("features", sa.Text, nullable=False, doc="The coerced record as JSON."),
)

OUTCOMES = sa.Table(
    "outcomes",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("record_id", sa.String(200), nullable=False, index=True),
    sa.Column("outcome", sa.Integer, nullable=False),
    sa.Column("outcome_at", sa.DateTime),
    sa.Column("received_at", sa.DateTime, nullable=False),
)


@dataclass(frozen=True)
class Outcome:
    """What happened to a scored record: converted (1) or not (0), and when, if known."""

    record_id: str
    outcome: int
    outcome_at: datetime | None = None


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _json_default(value: object) -> object:
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if pd.isna(value):  # type: ignore[arg-type]
        return None
    raise TypeError(f"cannot store {type(value).__name__} in the scoring log")


class RecordStore:
    """Scoring log and outcomes behind one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_durable)
        METADATA.create_all(self.engine)

    def log_scores(
        self,
        features: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model_name: str,
        model_version: str,
        record_ids: Sequence[str | None] | None = None,
        scored_at: datetime | None = None,
        policy: pd.DataFrame | None = None,
    ) -> int:
        """Append one row per scored record; `policy` may carry `propensity`, `worked` and `policy` columns."""
        if features.empty:
            return 0
        moment = _naive_utc(scored_at) or datetime.now(UTC).replace(tzinfo=None)
        ids = list(record_ids) if record_ids is not None else [None] * len(features)
        payloads = [json.dumps(row, default=_json_default) for row in features.to_dict(orient="records")]
        rows = []
        for i, (probability, score, tier) in enumerate(
            zip(scored["probability"], scored["score"], scored["tier"], strict=True)
        ):
            row = {
                "record_id": ids[i],
                "model_name": model_name,
                "model_version": str(model_version),
                "scored_at": moment,
                "probability": float(probability),
                "score": int(score),
                "tier": str(tier),
                "features": payloads[i],
                "propensity": None,
                "worked": None,
                "policy": None,
            }
            if policy is not None:
                decided = policy.iloc[i]
                row.update(
                    propensity=float(decided["propensity"]),
                    worked=bool(decided["worked"]),
                    policy=str(decided["policy"]),
                )
            rows.append(row)
        with self.engine.begin() as connection:
            connection.execute(SCORES.insert(), rows)
        return len(rows)

    def add_outcomes(self, outcomes: Iterable[Outcome]) -> int:
        """Store outcomes in one transaction; when this returns, they are committed to disk."""
        received = datetime.now(UTC).replace(tzinfo=None)
        rows = [
            {
                "record_id": o.record_id,
                "outcome": int(o.outcome),
                "outcome_at": _naive_utc(o.outcome_at),
                "received_at": received,
            }
            for o in outcomes
        ]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(OUTCOMES.insert(), rows)
        return len(rows)

    def scores(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Scoring log rows with `start <= scored_at < end`, features expanded into columns."""
        query = sa.select(SCORES).order_by(SCORES.c.id)
        if start is not None:
            query = query.where(SCORES.c.scored_at >= _naive_utc(start))
        if end is not None:
            query = query.where(SCORES.c.scored_at < _naive_utc(end))
        with self.engine.connect() as connection:
            log = pd.read_sql(query, connection)
        features = pd.DataFrame([json.loads(f) for f in log.pop("features")], index=log.index)
        return pd.concat([log, features.drop(columns=[c for c in features if c in log], errors="ignore")], axis=1)

    def outcomes(self) -> pd.DataFrame:
        """Every outcome received; the latest per record wins when a record is reported twice."""
        with self.engine.connect() as connection:
            frame = pd.read_sql(sa.select(OUTCOMES).order_by(OUTCOMES.c.id), connection)
        return frame.drop_duplicates("record_id", keep="last").reset_index(drop=True)

    def labelled(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """The scoring log in the window joined with outcomes (NaN outcome: not known yet)."""
        log = self.scores(start, end)
        outcomes = self.outcomes()[["record_id", "outcome", "outcome_at"]]
        return log.merge(outcomes, on="record_id", how="left")


def _sqlite_durable(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
