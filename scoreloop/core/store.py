"""The record store: every scoring decision and every outcome, durably, for monitoring and retraining.

SQLite under the home by default (WAL, synchronous=FULL: a committed write survives a crash), PostgreSQL by
URL for a team. Serving writes to it; monitoring and retraining read from it; nothing else owns these tables.

The scoring log is columnar: one database row per scored batch (a request, a file chunk, a day of a simulation)
holding its records as two Arrow IPC blobs, scores and features. Logging 1,000 records is then one insert instead
of 1,000 indexed rows with a JSON document each, a fraction of the server's CPU and GIL (benchmarks/README.md,
serving); reading decodes Arrow instead of parsing JSON. Windows select batches by their `scored_at`; outcomes join on
`record_id` after reading, as before.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from scoreloop.core.settings import redact

METADATA = sa.MetaData()

SCORE_BATCHES = sa.Table(
    "score_batches",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scored_at", sa.DateTime, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("scores", sa.LargeBinary, nullable=False, doc="Arrow IPC: record_id, scores and the policy's decisions."),
    sa.Column("features", sa.LargeBinary, nullable=False, doc="Arrow IPC: the coerced records, a column per feature."),
)
SCORE_SCHEMA = pa.schema(
    [("record_id", pa.string()), ("probability", pa.float64()), ("score", pa.int64()), ("tier", pa.string()),
     ("propensity", pa.float64()), ("worked", pa.bool_()), ("policy", pa.string())]
)  # fmt: skip
POLICY_COLUMNS = ("propensity", "worked", "policy")

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


@dataclass(frozen=True)
class ScoredBatch:
    """Records scored together, by one model at one moment: what one `log_scores` row holds.

    `features` and `scores` are anything indexable by column name (a DataFrame, a dict of arrays, a structured
    array): `scores` must carry `probability`, `score` and `tier`; `policy`, when a work policy decided, carries
    `propensity`, `worked` and `policy`. `feature_names` picks the features to store (default: every column of
    `features`); `scored_at` defaults to now.
    """

    features: Any
    scores: Any
    model_name: str
    model_version: str
    record_ids: Sequence[str | None] | None = None
    scored_at: datetime | None = None
    policy: Any = None
    feature_names: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.scores["probability"])

    def as_row(self) -> dict[str, Any]:
        size = len(self)
        columns: dict[str, Any] = {
            "record_id": self.record_ids,
            "probability": self.scores["probability"],
            "score": self.scores["score"],
            "tier": self.scores["tier"],
        }
        for name in POLICY_COLUMNS:
            columns[name] = self.policy[name] if self.policy is not None else None
        scores = [
            pa.nulls(size, field.type) if columns[field.name] is None else _array(columns[field.name], field.type)
            for field in SCORE_SCHEMA
        ]
        names = self.feature_names if self.feature_names is not None else list(self.features)
        features = pa.table({name: _array(self.features[name]) for name in names})
        return {
            "scored_at": _naive_utc(self.scored_at) or datetime.now(UTC).replace(tzinfo=None),
            "model_name": self.model_name,
            "model_version": str(self.model_version),
            "rows": size,
            "scores": ipc_bytes(pa.Table.from_arrays(scores, schema=SCORE_SCHEMA)),
            "features": ipc_bytes(features),
        }


def _array(values: Any, type: pa.DataType | None = None) -> pa.Array:
    """A column as Arrow (of `type` if given); pandas' extension dtypes and datetimes go through pandas' own
    conversion."""
    return pa.array(values, type=type, from_pandas=True)  # NaN in an object column is a null, as in the record


def ipc_bytes(table: pa.Table) -> bytes:
    """A table as one Arrow IPC stream (what the scoring log stores, and what `/score/arrow` speaks)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_table(blob: bytes) -> pa.Table:
    """The table of one Arrow IPC stream (`ipc_bytes` in reverse); `pa.ArrowInvalid` when it is not one."""
    return pa.ipc.open_stream(blob).read_all()


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


class StoreUnavailable(ConnectionError):
    """The record store did not take a write (deleted, replaced, read-only, locked, unreachable): nothing of it was
    kept, and the same write may be tried again."""


class RecordStore:
    """Scoring log and outcomes behind one SQLAlchemy engine.

    A SQLite store is one file, and the store keeps to that file: its connections open it read-write without ever
    creating it, and a write is reported kept only if the file it went to is still the one at the path (a deleted or
    replaced file would otherwise take writes that nobody can read). `unavailable()` says whether writes are taken
    now; a file put back at the path is adopted there, so a server recovers without a restart. `busy_seconds` is how
    long a write waits for another process's lock before failing.
    """

    def __init__(self, url: str, *, busy_seconds: float = 10.0) -> None:
        self.url = url
        self.busy_seconds = busy_seconds
        self.file = _sqlite_file(url)
        if self.file is None:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        else:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(self.file).close()  # the only place the file is created
            self.engine = sa.create_engine(  # the pool a file URL gets: "sqlite://" alone means memory, one per thread
                "sqlite://", creator=self._connect_file, poolclass=sa.pool.QueuePool, pool_pre_ping=True
            )
            self.inode = self.file.stat().st_ino
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", partial(_sqlite_durable, busy_seconds=busy_seconds))
        self._create_tables()

    def _connect_file(self) -> sqlite3.Connection:
        uri = f"file:{self.file}?mode=rw"
        return sqlite3.connect(uri, uri=True, timeout=self.busy_seconds, check_same_thread=False)

    def _create_tables(self) -> None:
        try:
            METADATA.create_all(self.engine)
        except sa.exc.DatabaseError:  # another process (a second server worker) created the tables first
            METADATA.create_all(self.engine)

    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """One write transaction; `StoreUnavailable` when it failed or went to a file no longer at the path."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()  # a connection opened read-only or to a gone server never recovers by itself
            raise StoreUnavailable(f"the record store {redact(self.url)} refused a write: {exc.orig}") from exc
        if self.file is not None and _inode(self.file) != self.inode:
            self.engine.dispose()
            raise StoreUnavailable(f"the record store {self.file} was deleted or replaced during a write")

    def unavailable(self) -> str | None:
        """Why the store would not take a write now (one quick attempt that writes nothing), or None.

        A SQLite file deleted from its path is "deleted" (nothing recreates it); a file put at the path in its place
        is adopted from now on; a read-only or locked file is named so. A server store must answer a connection.
        """
        if self.file is None:
            try:
                with self.engine.connect() as connection:
                    connection.execute(sa.text("SELECT 1"))
            except sa.exc.DBAPIError as exc:
                self.engine.dispose()
                return f"{redact(self.url)} is unreachable: {' '.join(str(exc.orig).split())}"
            return None
        inode = _inode(self.file)
        if inode is None:
            return f"{self.file} was deleted"
        if not os.access(self.file, os.R_OK | os.W_OK):
            return f"{self.file} is read-only"
        try:
            with closing(sqlite3.connect(f"file:{self.file}?mode=rw", uri=True, timeout=1.0)) as probe:
                probe.execute("BEGIN IMMEDIATE")  # takes the write lock, as a write would
                probe.rollback()
        except sqlite3.Error as exc:
            return f"{self.file} does not take writes: {exc}"
        if inode != self.inode:
            self.engine.dispose()  # pooled connections hold the old file open
            self.inode = inode
            self._create_tables()
        return None

    def log_scores(self, batches: Iterable[ScoredBatch]) -> int:
        """Append scored batches in one transaction; returns the number of records logged."""
        return self.insert_batches([batch.as_row() for batch in batches if len(batch)])

    def insert_batches(self, rows: list[dict[str, Any]]) -> int:
        """Append rows already built by `ScoredBatch.as_row()` in one transaction (the scoring log builds them on the
        request thread, see `serving.scorelog`); returns the number of records logged."""
        if rows:
            with self._writing() as connection:
                connection.execute(SCORE_BATCHES.insert(), rows)
        return sum(row["rows"] for row in rows)

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
            with self._writing() as connection:
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
        """Scoring log records with `start <= scored_at < end`, in logging order, features as columns.

        `features=False` leaves the stored features out (their blobs are not even read). `sample` keeps about that
        many records of a larger window, chosen by a seeded hash of each record's position in the log
        (`_sampled`), before anything is converted to pandas.
        """
        columns = [SCORE_BATCHES.c[name] for name in ("id", "scored_at", "model_name", "model_version", "rows")]
        columns += [SCORE_BATCHES.c.scores] + ([SCORE_BATCHES.c.features] if features else [])
        query = _in_window(sa.select(*columns), start, end).order_by(SCORE_BATCHES.c.id)
        with self.engine.connect() as connection:
            batches = connection.execute(query).all()
        total = sum(batch.rows for batch in batches)
        fraction = 1.0 if sample is None else sample / max(total, 1)
        keep = [_sampled(batch.id, batch.rows, fraction, seed) for batch in batches]
        log = _frame([ipc_table(b.scores).filter(k) for b, k in zip(batches, keep, strict=True)], SCORE_SCHEMA)
        counts = [int(k.sum()) for k in keep]
        log.insert(0, "model_version", np.repeat([b.model_version for b in batches], counts).astype(object))
        log.insert(0, "model_name", np.repeat([b.model_name for b in batches], counts).astype(object))
        log.insert(0, "scored_at", pd.to_datetime(np.repeat([b.scored_at for b in batches], counts)))
        if not features:
            return log
        stored = _frame([ipc_table(b.features).filter(k) for b, k in zip(batches, keep, strict=True)])
        return pd.concat([log, stored.drop(columns=[c for c in stored if c in log])], axis=1)

    def history(self, record_ids: Sequence[str]) -> pd.DataFrame:
        """Every scoring of the given records, oldest first, with the stored features and the outcome if known.

        The log has no index per record: the score blobs are scanned (without features) and the features decoded
        only for the batches holding one of the records.
        """
        wanted = pa.array(list(record_ids), pa.string())
        columns = [SCORE_BATCHES.c[name] for name in ("id", "scored_at", "model_name", "model_version", "scores")]
        with self.engine.connect() as connection:
            batches = connection.execute(sa.select(*columns).order_by(SCORE_BATCHES.c.id)).all()
            hits = {}
            for batch in batches:
                mask = pc.is_in(ipc_table(batch.scores)["record_id"], value_set=wanted).fill_null(False)
                if pc.any(mask).as_py():
                    hits[batch.id] = (batch, mask)
            query = sa.select(SCORE_BATCHES.c.id, SCORE_BATCHES.c.features).where(SCORE_BATCHES.c.id.in_(list(hits)))
            features = dict(connection.execute(query).all()) if hits else {}
        parts = []
        for batch_id, (batch, mask) in hits.items():
            scored = ipc_table(batch.scores).filter(mask).to_pandas()
            stored = ipc_table(features[batch_id]).filter(mask).to_pandas()
            meta = {"scored_at": batch.scored_at, "model_name": batch.model_name, "model_version": batch.model_version}
            parts.append(
                pd.concat([scored.assign(**meta), stored.drop(columns=[c for c in stored if c in scored])], axis=1)
            )
        empty = _frame([], SCORE_SCHEMA).assign(scored_at=pd.NaT, model_name=None, model_version=None)
        log = pd.concat(parts, ignore_index=True) if parts else empty
        outcomes = self.outcomes()[["record_id", "outcome", "outcome_at"]]
        return log.merge(outcomes, on="record_id", how="left")

    def count(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """Number of scoring log records with `start <= scored_at < end`."""
        query = _in_window(sa.select(sa.func.coalesce(sa.func.sum(SCORE_BATCHES.c.rows), 0)), start, end)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def span(self) -> tuple[datetime | None, datetime | None]:
        """The first and the last `scored_at` in the scoring log (None, None when it is empty)."""
        query = sa.select(sa.func.min(SCORE_BATCHES.c.scored_at), sa.func.max(SCORE_BATCHES.c.scored_at))
        with self.engine.connect() as connection:
            first, last = connection.execute(query).one()
        return first, last

    def outcomes(self) -> pd.DataFrame:
        """Every outcome received; the latest per record wins when a record is reported twice."""
        with self.engine.connect() as connection:
            frame = pd.read_sql(sa.select(OUTCOMES).order_by(OUTCOMES.c.id), connection)
        return frame.drop_duplicates("record_id", keep="last").reset_index(drop=True)

    def unmatched_outcomes(self) -> int:
        """Records with an outcome whose id the scoring log never held: /feedback stores them as sent (the log is
        not looked up on the request path), and monitoring reports how many there are."""
        with self.engine.connect() as connection:
            blobs = connection.execute(sa.select(SCORE_BATCHES.c.scores)).scalars()
            logged = {i for blob in blobs for i in ipc_table(blob).column("record_id").to_pylist()}
        return int((~self.outcomes()["record_id"].isin(logged)).sum())

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
        query = query.where(SCORE_BATCHES.c.scored_at >= _naive_utc(start))
    if end is not None:
        query = query.where(SCORE_BATCHES.c.scored_at < _naive_utc(end))
    return query


def _sampled(batch_id: int, rows: int, fraction: float, seed: int) -> np.ndarray:
    """Which records of a batch to keep: those whose key (batch id * 2^20 + position, shifted by the seed) has a
    Knuth multiplicative hash below `fraction * 2^32`.

    The hash spreads consecutive keys evenly over [0, 2^32), so the kept records are an evenly spread, reproducible
    sample of about `fraction` of the window; the seed rotates which. (uint64 arithmetic wraps modulo 2^64, which
    leaves the product modulo 2^32 intact.)
    """
    if fraction >= 1:
        return np.ones(rows, dtype=bool)
    keys = np.uint64(batch_id) * np.uint64(1 << 20) + np.arange(rows, dtype=np.uint64) + np.uint64(7919 * seed)
    hashed = (keys * np.uint64(2654435761)) % np.uint64(1 << 32)
    return hashed < np.uint64(int(fraction * (1 << 32)))


def _frame(tables: list[pa.Table], schema: pa.Schema | None = None) -> pd.DataFrame:
    """Batches' tables as one frame; a column a batch lacks (or has only nulls in) is missing in its records."""
    if not tables:
        return schema.empty_table().to_pandas() if schema is not None else pd.DataFrame()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for any other store, and for SQLite in memory)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _sqlite_durable(connection, _record, *, busy_seconds: float) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
    cursor.close()
