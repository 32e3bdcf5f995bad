"""Movers and bands over 1,000,000 logged scores: the target is each within 30 s on 2 cores.

    .venv/bin/python -m benchmarks.people [--rows 1000000] [--records 300000] [--seed 0]

Builds a record store with `--rows` scores of `--records` leads over 8 weeks (batches of 1,000 built with the
store's own `ScoredBatch` and inserted in bulk), worked by the policy with outcomes for the worked ones, then times
what `scoreloop movers` and `scoreloop bands` run: reading the log without its features, finding the movers (and
the scan that fetches the listed movers' stored features for their reasons; the SHAP step on 50 records is
milliseconds and needs a model, so it is left out), and the band table by tier and week. Prints one table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from scoreloop.core.policy import work_plan
from scoreloop.core.store import Outcome, RecordStore, ScoredBatch
from scoreloop.monitoring.bands import band_table
from scoreloop.serving.movers import find_movers

BATCH = 1000
START = datetime(2025, 1, 6)
DAYS = 56
TIERS = np.array(["D", "C", "B", "A"])


def fill_store(store: RecordStore, rows: int, records: int, seed: int) -> datetime:
    """`rows` scores of `records` leads, each lead drifting a little between scorings; returns just after the last."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"L{i:07d}" for i in range(records)], dtype=object)
    level = rng.normal(0, 1, records)
    pending = []
    for start in range(0, rows, BATCH):
        size = min(BATCH, rows - start)
        at = START + timedelta(days=DAYS * start / rows)
        chosen = rng.integers(0, records, size)
        level[chosen] += rng.normal(0, 0.5, size)
        probability = 1 / (1 + np.exp(-(level[chosen] - 2)))
        score = np.clip((100 / (1 + np.exp(-level[chosen]))).round(), 0, 100).astype(int)
        tier = TIERS[np.searchsorted([40, 70, 90], score, side="right")]
        plan = work_plan(probability, 0.2, 0.1, rng)
        features = {"events": rng.poisson(10, size).astype(float), "industry": rng.choice(["saas", "retail"], size)}
        scored = {"probability": probability, "score": score, "tier": tier}
        batch = ScoredBatch(features, scored, "bench", "1", record_ids=ids[chosen], scored_at=at, policy=plan)
        pending.append(batch.as_row())
        if len(pending) == 100:
            store.insert_batches(pending)
            pending = []
    store.insert_batches(pending)
    worked = rng.choice(records, records // 5, replace=False)
    store.add_outcomes(Outcome(ids[i], int(rng.random() < 0.15)) for i in worked)
    return at + timedelta(seconds=1)


def timed(step):
    began = time.perf_counter()
    result = step()
    return result, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = RecordStore(f"sqlite:///{Path(tmp) / 'records.db'}")
        end, build = timed(lambda: fill_store(store, args.rows, args.records, args.seed))
        log, read_scores = timed(lambda: store.scores(features=False))
        movers, find = timed(lambda: find_movers(log, end - timedelta(days=1), 20))
        _, fetch = timed(lambda: store.history(movers["record_id"].head(50).tolist()))
        labelled, read_labelled = timed(lambda: store.labelled(features=False))
        bands, compute = timed(lambda: band_table(labelled, "week", "tier", 20, end, 30))
    table = pd.DataFrame(
        [
            ("build the log (bulk insert)", args.rows, build, ""),
            ("movers: read scores", len(log), read_scores, ""),
            ("movers: find", len(log), find, f"{len(movers)} movers in the last day"),
            ("movers: features of the top 50", 50, fetch, ""),
            ("movers: total", len(log), read_scores + find + fetch, "target 30 s"),
            ("bands: read scores + outcomes", len(labelled), read_labelled, ""),
            ("bands: table by tier and week", len(labelled), compute, f"{len(bands)} rows"),
            ("bands: total", len(labelled), read_labelled + compute, "target 30 s"),
        ],
        columns=["step", "rows", "seconds", "note"],
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
