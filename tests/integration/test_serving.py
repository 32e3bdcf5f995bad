"""Every endpoint of a real `bentoml serve` (the session `server` on a loopback port), and batch scoring by the CLI."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from scoreloop.core.settings import Settings
from scoreloop.core.store import RecordStore, ipc_bytes, ipc_table
from scoreloop.serving.arrow import ARROW_STREAM
from tests.support import cli

pytestmark = pytest.mark.slow

RECORDS = [
    {"lead_id": "s-a", "industry": "SaaS", "employees": "1,200", "annual_revenue": "$1.2M", "product_events": 40},
    {"lead_id": "s-b", "industry": "fintec", "source": "N/A"},  # misspelling mapped, missing scored
    {"lead_id": "s-c", "industry": "quantum_farming"},  # unseen category: scored, not rejected
]


def post(server: str, path: str, body: object, **kwargs) -> httpx.Response:
    return httpx.post(f"{server}{path}", json=body, timeout=30, **kwargs)


def metric(server: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus counter on /metrics (0 when it has not been created yet)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in httpx.get(f"{server}/metrics", timeout=30).text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_score_returns_probability_score_tier_model_and_version(server: str) -> None:
    response = post(server, "/score", {"records": RECORDS})
    assert response.status_code == 200, response.text
    scored = response.json()
    assert [s["id"] for s in scored] == ["s-a", "s-b", "s-c"]
    assert all(s["model"] == "scoreloop-model" and s["version"] == "1" for s in scored)
    assert all(0 < s["probability"] < 1 and 0 <= s["score"] <= 100 and s["tier"] in "ABCD" for s in scored)
    cutoffs = httpx.get(f"{server}/metadata", timeout=30).json()["tier_cutoffs"]
    for s in scored:  # the tier is the card's: the best tier whose cut-off the probability reaches
        assert s["tier"] == next((t for t, cut in cutoffs.items() if s["probability"] >= cut), "D")
    single = post(server, "/score", {"records": RECORDS[0]}).json()
    assert single == scored[:1]
    assert post(server, "/score", {"records": []}).json() == []


def test_scoring_is_logged_with_inputs_scores_version_and_time(server: str, trained_home: Path) -> None:
    before = time.time()
    post(server, "/score", {"records": [{**RECORDS[0], "lead_id": "log-1"}]}).raise_for_status()
    store = RecordStore(f"sqlite:///{trained_home / 'records.db'}")
    deadline = time.monotonic() + 10  # the scoring log is written off the request path
    while (log := store.scores()).query("record_id == 'log-1'").empty and time.monotonic() < deadline:
        time.sleep(0.2)
    row = log.query("record_id == 'log-1'").iloc[0]
    assert (row["model_name"], row["model_version"], row["tier"]) == ("scoreloop-model", "1", row["tier"])
    assert 0 < row["probability"] < 1
    assert (row["employees"], row["annual_revenue"], row["industry"]) == (1200, 1_200_000, "saas")
    assert pd.isna(row["country"])
    assert abs(row["scored_at"].timestamp() - before) < 60  # naive UTC; the test machine runs in UTC or near it


def test_adaptive_batching_merges_concurrent_requests(server: str) -> None:
    def batches() -> float:
        return metric(server, "bentoml_service_adaptive_batch_size_count", method_name="score", runner_name="scoreloop",
                      service_name="scoreloop", service_version="not available", worker_index="1")  # fmt: skip

    before = batches()  # the session's server has scored for other modules already
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: post(server, "/score", {"records": [{"lead_id": f"c{i}"}]}), range(64)))
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()[0]["id"] for r in responses] == [f"c{i}" for i in range(64)]
    assert 0 < batches() - before <= 64  # counted per batch; batches hold several requests under load


def test_unseen_categories_and_missing_fields_are_counted(server: str) -> None:
    unseen = metric(server, "scoreloop_unseen_categories_total", field="industry")
    missing = metric(server, "scoreloop_missing_fields_total", field="country")
    scored = metric(server, "scoreloop_scored_records_total", model="scoreloop-model", version="1")
    post(server, "/score", {"records": RECORDS}).raise_for_status()
    assert metric(server, "scoreloop_unseen_categories_total", field="industry") == unseen + 1
    assert metric(server, "scoreloop_missing_fields_total", field="country") == missing + 3
    assert metric(server, "scoreloop_scored_records_total", model="scoreloop-model", version="1") == scored + 3


def test_explain_gives_top_reasons_in_words_with_signed_points(server: str) -> None:
    response = post(server, "/explain", {"records": RECORDS[:2], "top": 2})
    assert response.status_code == 200, response.text
    explained = response.json()
    scored = post(server, "/score", {"records": RECORDS[:2]}).json()
    for record, plain in zip(explained, scored, strict=True):
        assert record["probability"] == pytest.approx(plain["probability"])
        assert len(record["reasons"]) == 2
        total = record["baseline"] + (sum(r["points"] for r in record["reasons"]) + record["other_points"]) / 100
        assert total == pytest.approx(record["probability"], abs=1e-6)
        for reason in record["reasons"]:
            verb = "raises" if reason["points"] > 0 else "lowers"
            assert reason["text"].startswith(reason["feature"]) and verb in reason["text"]
    default = post(server, "/explain", {"records": RECORDS[:1]}).json()[0]
    assert len(default["reasons"]) == 3
    assert post(server, "/explain", {"records": RECORDS[:1], "top": 0}).status_code == 400


def test_metadata_describes_what_is_served(server: str) -> None:
    meta = httpx.get(f"{server}/metadata", timeout=30).json()
    assert (meta["model"], meta["version"]) == ("scoreloop-model", "1")
    assert len(meta["run_id"]) == 32
    assert {"train_start", "valid_end", "holdout_end"} <= set(meta["windows"])
    assert 0.5 < meta["metrics"]["validation"]["roc_auc"] <= 1 and 0.5 < meta["metrics"]["holdout"]["roc_auc"] <= 1
    assert list(meta["tier_cutoffs"]) == ["A", "B", "C"]
    assert "employees" in meta["input_schema"]["properties"] and meta["max_records"] == 1000


def test_feedback_is_committed_before_the_200(server: str, trained_home: Path) -> None:
    outcomes = [{"id": "s-a", "converted": True, "at": "2025-01-02T03:04:05Z"}, {"id": "s-b", "converted": False}]
    response = post(server, "/feedback", {"outcomes": outcomes})
    assert response.status_code == 200 and response.json() == {"stored": 2}
    stored = RecordStore(f"sqlite:///{trained_home / 'records.db'}").outcomes().set_index("record_id")
    assert stored.loc["s-a", "outcome"] == 1 and stored.loc["s-b", "outcome"] == 0
    assert str(stored.loc["s-a", "outcome_at"]) == "2025-01-02 03:04:05"
    bad = post(server, "/feedback", {"outcomes": [{"id": "x", "converted": "maybe"}]})
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["outcomes", 0, "converted"]


def test_health_endpoints_and_docs(server: str) -> None:
    for path in ("/healthz", "/livez", "/readyz", "/metrics", "/docs.json"):
        assert httpx.get(f"{server}{path}", timeout=30).status_code == 200, path
    paths = httpx.get(f"{server}/docs.json", timeout=30).json()["paths"]
    assert {"/score", "/score/columns", "/explain", "/feedback"} <= set(paths)


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"employees": "lots"}, "employees", "cannot read 'lots' as a number"),
        ({"employees": -4}, "employees", "below the minimum 0"),
        ({"employes": 3}, "employes", "Extra inputs are not permitted"),
        ({"employees": True}, "employees", "as a number"),
        ({"product_events": "Infinity"}, "product_events", "cannot read 'Infinity' as a number"),
        ({"industry": ["saas"]}, "industry", "expected text, got a list"),
    ],
)
def test_bad_input_is_a_400_naming_record_and_field(server: str, record: dict, field: str, message: str) -> None:
    response = post(server, "/score", {"records": [{"industry": "saas"}, record]})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["records", 1, field]
    assert message in detail["msg"]


def test_json_overflow_is_a_400_not_a_score(server: str) -> None:
    body = '{"records": [{"employees": 1e400}]}'  # Python's JSON reads it as infinity
    response = httpx.post(f"{server}/score", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400 and response.json()["detail"][0]["loc"] == ["records", 0, "employees"]


def test_an_oversized_batch_is_a_413_that_says_what_to_do(server: str) -> None:
    response = post(server, "/score", {"records": [{"industry": "saas"}] * 1001})
    assert response.status_code == 413
    assert "at most 1000 records, this one has 1001" in response.text and "scoreloop score" in response.text


@pytest.mark.parametrize(
    "body", ["not json", "", "[]", "null", '{"rows": []}', '{"records": {"a": 1}}', '{"records": [1, 2]}']
)
def test_malformed_bodies_are_4xx_never_5xx(server: str, body: str) -> None:
    response = httpx.post(f"{server}/score", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("records", "loc", "message"),
    [([{"industry": "saas"}, 2], ["records", 1], "expected a record object, got a number"),
     (None, ["records"], "expected a list of records or one record, got null"),
     ("saas", ["records"], "expected a list of records or one record, got text")],
)  # fmt: skip
def test_records_that_are_not_objects_are_a_400_naming_where(server: str, records, loc: list, message: str) -> None:
    response = post(server, "/score", {"records": records})
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == loc and message in response.text


def post_arrow(server: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{server}/score/arrow", content=body, headers={"content-type": ARROW_STREAM}, timeout=30)


def test_arrow_in_and_out_scores_what_json_scores(server: str) -> None:
    fields = sorted({name for record in RECORDS for name in record})
    columns = {name: [record.get(name) for record in RECORDS] for name in fields}
    columns["product_events"] = [40.0, None, None]  # typed Arrow columns as well as text ones
    response = post_arrow(server, ipc_bytes(pa.table(columns)))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW_STREAM
    scored = ipc_table(response.content).to_pylist()
    assert scored == post(server, "/score", {"records": RECORDS}).json()
    empty = post_arrow(server, ipc_bytes(pa.table({"industry": pa.array([], pa.string())})))
    assert empty.status_code == 200 and ipc_table(empty.content).num_rows == 0


@pytest.mark.parametrize(
    ("columns", "status", "loc", "message"),
    [({"industry": ["saas", "retail"], "employees": ["12", "many"]}, 400, ["employees", 1], "cannot read 'many'"),
     ({"industry": ["saas"], "colour": ["red"]}, 400, ["colour"], "Extra inputs are not permitted"),
     ({"industry": [["saas"]]}, 400, ["industry", 0], "expected text, got a list"),
     ({"industry": ["saas"] * 1001}, 413, None, "at most 1000 records, this one has 1001")],
)  # fmt: skip
def test_arrow_bad_input_is_a_4xx_naming_field_and_index(server: str, columns, status, loc, message) -> None:
    response = post_arrow(server, ipc_bytes(pa.table(columns)))
    assert response.status_code == status and message in response.text, response.text
    if loc is not None:
        assert response.json()["detail"][0]["loc"] == loc


def test_a_body_that_is_not_arrow_is_a_400_and_an_oversized_one_a_413(server: str) -> None:
    response = post_arrow(server, b'{"records": []}')
    assert response.status_code == 400 and "expected an Arrow IPC stream" in response.text
    too_large = bytes(Settings().serve.max_body_bytes + 1)
    assert post_arrow(server, too_large).status_code == 413  # refused before it is read


def test_batch_scoring_a_file_gives_what_the_api_gives(server: str, trained_home: Path, tmp_path: Path) -> None:
    export = trained_home / "export.csv"
    result = cli(trained_home, "score", str(export), "-o", str(tmp_path / "scored.parquet"), "--chunk-rows", "1500")
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    quarantine = pd.read_csv(tmp_path / "scored.quarantine.csv")
    assert len(scored) + len(quarantine) == 4000 and "rows_quarantined" in result.stdout
    assert quarantine["_reason"].str.len().gt(0).all()
    raw = pd.read_csv(export, dtype=str, keep_default_na=False).head(40)  # the first 40 lines are well-formed
    fields = ["lead_id", *httpx.get(f"{server}/metadata", timeout=30).json()["input_schema"]["properties"]]
    records = [{k: v for k, v in row.items() if k in fields} for row in raw.to_dict("records")]
    api = pd.DataFrame(post(server, "/score", {"records": records}).json()).set_index("id")
    batch = scored.set_index("id").loc[api.index]
    assert batch["probability"].tolist() == pytest.approx(api["probability"].tolist(), abs=1e-12)
    assert (batch[["score", "tier", "model", "version"]] == api[["score", "tier", "model", "version"]]).all().all()


def test_batch_scoring_with_the_work_policy_writes_and_logs_the_worklist(trained_home: Path, tmp_path: Path) -> None:
    """`--work`: over the whole file (not per chunk), the top of the capacity is exploited and an epsilon share
    explored at random; every scored row is logged with its propensity, and expected worked (sum of propensities)
    equals worked."""
    store_url = f"sqlite:///{tmp_path / 'records.db'}"
    env = {"SCORELOOP_STORE_URL": store_url, "SCORELOOP_POLICY__CAPACITY": "0.2", "SCORELOOP_POLICY__EPSILON": "0.25"}
    output = tmp_path / "worklist.csv"
    cli(trained_home, "score", str(trained_home / "export.csv"), "-o", str(output), "--chunk-rows", "1500", "--work",
        env=env)  # fmt: skip
    worklist = pd.read_csv(output)
    worked = round(0.2 * len(worklist))  # one decision for the 4,000 records, read in chunks of 1,500
    assert worklist["worked"].sum() == worked and worklist["policy"].eq("explore").sum() == round(0.25 * worked)
    assert worklist["propensity"].sum() == pytest.approx(worklist["worked"].sum())
    exploited = worklist[worklist["policy"].eq("exploit")]
    assert exploited["propensity"].eq(1).all() and worklist.loc[~worklist["worked"], "propensity"].lt(1).all()
    assert exploited["probability"].min() > worklist.loc[~worklist["worked"], "probability"].median()

    assert len(RecordStore(store_url).scores(features=False)) == len(worklist)
    named = worklist.dropna(subset=["id"])  # the queue is in score order, not the log's: join on the id
    logged = RecordStore(store_url).scores(features=False).dropna(subset=["record_id"]).set_index("record_id")
    logged = logged.loc[named["id"]]
    assert logged["worked"].astype(bool).tolist() == named["worked"].tolist()
    assert logged["propensity"].tolist() == pytest.approx(named["propensity"].tolist())
