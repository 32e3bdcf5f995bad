"""What the people who work the scores see, on a real `bentoml serve`: a record's history, the movers, queues of
fixed size and tier alerts."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore
from scoreloop.core.tracking import load_registered
from scoreloop.serving.alerts import sign
from scoreloop.training.tags import HOLDOUT_ARTIFACT
from tests.integration.test_serving import metric
from tests.support import Receiver, clean_env, cli, free_port, running, serve_command

pytestmark = pytest.mark.slow

QUIET = {"industry": "retail", "employees": 20, "product_events": 0, "sales_touches": 0}
BUSY = {"industry": "saas", "employees": 800, "product_events": 90, "sales_touches": 14, "email_opens": 30}


def score(server: str, record: dict) -> dict:
    response = httpx.post(f"{server}/score", json={"records": [record]}, timeout=30)
    response.raise_for_status()
    return response.json()[0]


def history(server: str, record_id: str, expected: int) -> list[dict]:
    """The record's history once `expected` scorings reached the log (it is written off the request path)."""
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(f"{server}/records/{record_id}/history", timeout=30)
        assert response.status_code == 200, response.text
        if len(entries := response.json()) >= expected or time.monotonic() > deadline:
            return entries
        time.sleep(0.3)


def test_history_after_three_scorings_of_one_id(server: str, trained_home: Path) -> None:
    scored = [score(server, {"lead_id": "hist-1", **QUIET, "product_events": events}) for events in (0, 12, 90)]
    httpx.post(f"{server}/feedback", json={"outcomes": [{"id": "hist-1", "converted": True}]}, timeout=30)
    entries = history(server, "hist-1", 3)
    assert [(e["score"], e["tier"], e["version"]) for e in entries] == [(s["score"], s["tier"], "1") for s in scored]
    assert [e["probability"] for e in entries] == pytest.approx([s["probability"] for s in scored])
    assert all(e["outcome"] is True for e in entries)
    assert entries[0]["scored_at"] <= entries[1]["scored_at"] <= entries[2]["scored_at"]
    events = [next((r["value"] for r in e["reasons"] if r["feature"] == "product_events"), None) for e in entries]
    assert len(entries[0]["reasons"]) == 3 and events[2] == 90  # reasons at each score, from its own features
    assert httpx.get(f"{server}/records/never-scored/history", timeout=30).json() == []
    too_long = httpx.get(f"{server}/records/{'x' * 201}/history", timeout=30)
    assert too_long.status_code == 400 and "at most 200" in too_long.text
    assert httpx.get(f"{server}/records/a%00b/history", timeout=30).status_code == 400
    shown = cli(trained_home, "record", "hist-1").stdout
    assert all(f" {s['score']} " in shown for s in scored) and shown.count("converted") == 3
    assert "product_events = 90" in shown


def test_movers_find_a_seeded_jump_and_its_reason(server: str, trained_home: Path, tmp_path: Path) -> None:
    before, after = score(server, {"lead_id": "jump-1", **QUIET}), score(server, {"lead_id": "jump-1", **BUSY})
    assert after["score"] - before["score"] >= 20  # the seeded jump
    score(server, {"lead_id": "flat-1", **QUIET})
    score(server, {"lead_id": "flat-1", **QUIET})
    history(server, "flat-1", 2)
    out = tmp_path / "movers.csv"
    printed = cli(trained_home, "movers", "--since", "1d", "--min-change", "20", "-o", str(out)).stdout
    movers = pd.read_csv(out).set_index("record_id")
    assert "flat-1" not in movers.index and "jump-1" in printed
    jump = movers.loc["jump-1"]
    assert (jump["previous_score"], jump["score"]) == (before["score"], after["score"])
    assert jump["change"] == after["score"] - before["score"]
    changed = {"product_events", "sales_touches", "industry", "employees", "email_opens"}
    reasons = jump["reasons"].split("; ")
    assert len(reasons) == 3 and reasons[0].split(" ")[0] in changed and " -> " in reasons[0]
    into = cli(trained_home, "movers", "--into", after["tier"], "-o", str(out)).stdout
    assert "jump-1" in into if before["tier"] != after["tier"] else "jump-1" not in into


def test_a_worklist_of_fixed_size_for_the_whole_file_and_per_day(trained_home: Path, tmp_path: Path) -> None:
    """`--capacity N` is N leads for the whole file (chunks of 1,500 do not each get N), or per day of the time
    column; the output is the queue, by probability, with reasons for the worked leads; propensities are logged."""
    store_url = f"sqlite:///{tmp_path / 'records.db'}"
    env = {"SCORELOOP_STORE_URL": store_url, "SCORELOOP_POLICY__EPSILON": "0.25"}
    export, whole, daily = trained_home / "export.csv", tmp_path / "whole.csv", tmp_path / "daily.parquet"
    cli(trained_home, "score", str(export), "-o", str(whole), "--chunk-rows", "1500", "--work", "--capacity", "40",
        env=env)  # fmt: skip
    queue = pd.read_csv(whole)
    assert queue["worked"].sum() == 40 and queue["policy"].eq("explore").sum() == 10
    assert queue["probability"].is_monotonic_decreasing
    worked = queue[queue["worked"]]
    assert worked["queue"].tolist() == list(range(1, 41)) and worked["reasons"].str.count("points").eq(3).all()
    assert queue.loc[~queue["worked"], "reasons"].isna().all()

    cli(trained_home, "score", str(export), "-o", str(daily), "--chunk-rows", "1500", "--work", "--capacity", "3",
        "--per-day", env=env)  # fmt: skip
    queue = pd.read_parquet(daily)
    raw = pd.read_csv(export, dtype=str, on_bad_lines="skip", usecols=["lead_id", "created_at"])
    day = pd.to_datetime(raw.set_index("lead_id")["created_at"], format="mixed", errors="coerce", utc=True).dt.date
    queue["day"] = queue["id"].map(day)
    per_day = queue.dropna(subset=["day"]).groupby("day").agg(worked=("worked", "sum"), rows=("worked", "size"))
    assert (per_day["worked"] == per_day["rows"].clip(upper=3)).all() and len(per_day) > 300
    for _, leads in queue.dropna(subset=["day"]).groupby("day", sort=False):
        assert leads["probability"].is_monotonic_decreasing  # one queue per day, in score order
        assert leads.loc[leads["worked"], "queue"].tolist() == list(range(1, int(leads["worked"].sum()) + 1))
    logged = RecordStore(store_url).scores(features=False).drop_duplicates("record_id", keep="last")
    logged = logged.set_index("record_id").loc[queue["id"]]
    assert logged["propensity"].tolist() == pytest.approx(queue["propensity"].tolist())
    assert logged["worked"].astype(bool).tolist() == queue["worked"].tolist()


@pytest.fixture(scope="module")
def alerting_home(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained home for the alerting servers. Two servers must not share one BentoML home: BentoML
    empties its Prometheus directory when a server starts, which would wipe the session server's counters."""
    home = tmp_path_factory.mktemp("alerts") / "home"
    shutil.copytree(trained_home, home, ignore=shutil.ignore_patterns("prometheus_multiproc_dir", "*.log"))
    return home


def alerting_server(home: Path, url: str):
    """A `scoreloop serve` of `home`, posting crossings into A or B to `url`."""
    port = free_port()
    env = clean_env(SCORELOOP_ALERTS__URL=url, SCORELOOP_ALERTS__SECRET="s3cret", SCORELOOP_ALERTS__TIERS='["A","B"]',
                    SCORELOOP_ALERTS__BACKOFF_SECONDS="0.1", SCORELOOP_ALERTS__ATTEMPTS="3")  # fmt: skip
    return running(serve_command(home, port), f"http://127.0.0.1:{port}/readyz", home / f"alerts-{port}.log", env)


def test_webhook_receives_signed_tier_crossings_retried_and_a_dead_one_is_counted(alerting_home: Path) -> None:
    receiver = Receiver(failures=1)
    try:
        with alerting_server(alerting_home, receiver.url) as process:
            server = f"http://127.0.0.1:{process.args[-1]}"
            before = score(server, {"lead_id": "alert-1", **QUIET})
            after = score(server, {"lead_id": "alert-1", **BUSY})
            assert before["tier"] not in ("A", "B") and after["tier"] in ("A", "B")  # the seeded crossing
            deadline = time.monotonic() + 15
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.2)
            body, signature = receiver.received[0]
            assert signature == sign(body, "s3cret")
            crossing = json.loads(body)["crossings"]
            assert [(c["id"], c["from_tier"], c["to_tier"], c["score"]) for c in crossing] == [
                ("alert-1", before["tier"], after["tier"], after["score"])
            ]
            assert metric(server, "scoreloop_alert_failures_total") == 1  # the receiver's first answer was a 500
            assert metric(server, "scoreloop_alerts_delivered_total") == 1
    finally:
        receiver.server.shutdown()
    with alerting_server(alerting_home, f"http://127.0.0.1:{free_port()}/down") as process:
        server = f"http://127.0.0.1:{process.args[-1]}"
        score(server, {"lead_id": "alert-2", **QUIET})
        began = time.monotonic()
        assert score(server, {"lead_id": "alert-2", **BUSY})["tier"] in ("A", "B")  # scored while delivery fails
        assert time.monotonic() - began < 2
        deadline = time.monotonic() + 15
        while metric(server, "scoreloop_alert_failures_total") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(server, "scoreloop_alert_failures_total") == 3  # every attempt, then dropped


def test_value_of_the_champion_against_random_and_the_simple_approach(trained_home: Path) -> None:
    """The figures `scoreloop value` reads from the training run agree with the champion's own holdout predictions:
    random working converts at the holdout's base rate, the model at the precision of its top 20%."""
    settings = Settings(home=trained_home)
    model = load_registered(settings)
    run = MlflowClient().get_run(model.card.run_id)
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=HOLDOUT_ARTIFACT)
    holdout = pd.read_parquet(path)
    y, proba = holdout[model.spec.target].to_numpy(), model.predict_proba(holdout)
    worked = 0.2 * len(y)  # SCORELOOP_POLICY__CAPACITY's default
    top = y[np.argsort(-proba, kind="stable")]
    by_hand = 100 * (top[: int(worked)].sum() + (worked % 1) * top[int(worked)]) / worked
    metrics = run.data.metrics
    assert metrics["value_random_per_100_worked"] == pytest.approx(100 * y.mean())
    assert metrics["value_model_per_100_worked"] == pytest.approx(by_hand, abs=1e-6)
    assert metrics["value_model_caught"] >= metrics["value_random_caught"]
    shown = cli(trained_home, "value").stdout
    assert "simple" in shown and "conversions per 100 records worked" in shown
    page = Path(shown.split("report:")[1].split()[0]).read_text()
    assert "|--- " in page and ("does NOT beat" in page) != ("The model beats" in page)  # thresholds, verdict
