"""The record store: every scoring decision and every outcome, durably, for monitoring and retraining.

SQLite under the home by default (WAL, synchronous=FULL: a committed write survives a crash), PostgreSQL by
URL for a team. Serving writes to it; monitoring and retraining read from it; nothing else owns these tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
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


def _moments(scored_at: datetime | Sequence[datetime] | None, size: int) -> list[datetime | None]:
    if scored_at is None:
        return [datetime.now(UTC).replace(tzinfo=None)] * size
    if isinstance(scored_at, datetime):
        return [_naive_utc(scored_at)] * size
    moments = [_naive_utc(moment) for moment in scored_at]
    if len(moments) != size:
        raise ValueError(f"scored_at has {len(moments)} moments for {size} rows")
    return moments


def _json_lines(features: pd.DataFrame) -> list[str]:
    """Each row as a JSON object (missing values as null, times as ISO text), by pandas' C encoder: ~2 µs a row."""
    text = features.to_json(orient="records", lines=True, double_precision=15, date_format="iso", date_unit="us")
    return text.split("\n")[: len(features)]


def _processed(column: list, process: Callable[[Any], Any]) -> list:
    """`[process(value) for value in column]`, calling `process` once per distinct value."""
    done: dict[Any, Any] = {}
    return [done[value] if value in done else done.setdefault(value, process(value)) for value in column]


class RecordStore:
    """Scoring log and outcomes behind one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_durable)
        try:
            METADATA.create_all(self.engine)
        except sa.exc.DatabaseError:  # another process (a second server worker) created the tables first
            METADATA.create_all(self.engine)

    def log_scores(
        self,
        features: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model_name: str,
        model_version: str,
        record_ids: Sequence[str | None] | None = None,
        scored_at: datetime | Sequence[datetime] | None = None,
        policy: pd.DataFrame | None = None,
    ) -> int:
        """Append one row per scored record in one transaction; `policy` may carry `propensity`, `worked` and
        `policy` columns. `scored_at` is one moment for every row (default: now) or one per row."""
        size = len(features)
        if size == 0:
            return 0
        columns = {
            "record_id": list(record_ids) if record_ids is not None else [None] * size,
            "model_name": [model_name] * size,
            "model_version": [str(model_version)] * size,
            "scored_at": _moments(scored_at, size),
            "probability": np.asarray(scored["probability"], dtype=float).tolist(),
            "score": np.asarray(scored["score"], dtype=np.int64).tolist(),
            "tier": [str(tier) for tier in scored["tier"]],
            "features": _json_lines(features),
        }
        if policy is not None:  # otherwise NULL by default, at no binding cost
            columns["propensity"] = np.asarray(policy["propensity"], dtype=float).tolist()
            columns["worked"] = np.asarray(policy["worked"], dtype=bool).tolist()
            columns["policy"] = [str(name) for name in policy["policy"]]
        self._insert(SCORES, columns)
        return size

    def _insert(self, table: sa.Table, columns: dict[str, list]) -> None:
        """Insert equal-length columns in one transaction.

        On SQLite the rows go straight to the driver's executemany (after each column's own bind processing, once
        per distinct value: a batch shares one `scored_at`): SQLAlchemy's per-row parameter handling costs about
        8 µs a row, five times the insert itself, and the server's writer thread shares its CPU (and the GIL) with
        scoring. Other databases use SQLAlchemy's batched insert.
        """
        names = list(columns)
        with self.engine.begin() as connection:
            if self.engine.dialect.name != "sqlite":
                rows = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
                connection.execute(table.insert(), rows)
                return
            values = []
            for name, column in columns.items():
                process = table.c[name].type.dialect_impl(self.engine.dialect).bind_processor(self.engine.dialect)
                values.append(column if process is None else _processed(column, process))
            statement = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            connection.exec_driver_sql(statement, list(zip(*values, strict=True)))

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

    def scores(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        features: bool = True,
        sample: int | None = None,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Scoring log rows with `start <= scored_at < end`, features expanded into columns.

        `features=False` leaves the stored features out (cheap for millions of rows). `sample` keeps about that many
        rows of a larger window, chosen inside the database by a seeded hash of the row id (`_sampled`), so only the
        sampled rows are read and parsed.
        """
        columns = list(SCORES.c) if features else [c for c in SCORES.c if c.name != "features"]
        query = _in_window(sa.select(*columns), start, end).order_by(SCORES.c.id)
        if sample is not None:
            query = _sampled(query, sample / max(self.count(start, end), 1), seed)
        with self.engine.connect() as connection:
            log = pd.read_sql(query, connection)
        if not features:
            return log
        expanded = pd.DataFrame([json.loads(f) for f in log.pop("features")], index=log.index)
        return pd.concat([log, expanded.drop(columns=[c for c in expanded if c in log], errors="ignore")], axis=1)

    def count(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """Number of scoring log rows with `start <= scored_at < end`."""
        query = _in_window(sa.select(sa.func.count()).select_from(SCORES), start, end)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def span(self) -> tuple[datetime | None, datetime | None]:
        """The first and the last `scored_at` in the scoring log (None, None when it is empty)."""
        query = sa.select(sa.func.min(SCORES.c.scored_at), sa.func.max(SCORES.c.scored_at))
        with self.engine.connect() as connection:
            first, last = connection.execute(query).one()
        return first, last

    def outcomes(self) -> pd.DataFrame:
        """Every outcome received; the latest per record wins when a record is reported twice."""
        with self.engine.connect() as connection:
            frame = pd.read_sql(sa.select(OUTCOMES).order_by(OUTCOMES.c.id), connection)
        return frame.drop_duplicates("record_id", keep="last").reset_index(drop=True)

    def labelled(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        features: bool = True,
        sample: int | None = None,
        seed: int = 0,
    ) -> pd.DataFrame:
        """The scoring log in the window joined with outcomes (NaN outcome: not known yet); options as `scores`."""
        log = self.scores(start, end, features=features, sample=sample, seed=seed)
        outcomes = self.outcomes()[["record_id", "outcome", "outcome_at"]]
        return log.merge(outcomes, on="record_id", how="left")


def _in_window(query: sa.Select, start: datetime | None, end: datetime | None) -> sa.Select:
    if start is not None:
        query = query.where(SCORES.c.scored_at >= _naive_utc(start))
    if end is not None:
        query = query.where(SCORES.c.scored_at < _naive_utc(end))
    return query


def _sampled(query: sa.Select, fraction: float, seed: int) -> sa.Select:
    """Keep a row when (id + 7919 * seed) * 2654435761 mod 2^32 < fraction * 2^32.

    Knuth's multiplicative hash spreads consecutive ids evenly over [0, 2^32), so the kept rows are an evenly spread,
    reproducible sample of about `fraction` of the window (in SQLite and PostgreSQL alike); the seed rotates which.
    """
    if fraction >= 1:
        return query
    hashed = ((SCORES.c.id + 7919 * seed) * 2654435761) % 4294967296
    return query.where(hashed < int(fraction * 4294967296))


def _sqlite_durable(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
