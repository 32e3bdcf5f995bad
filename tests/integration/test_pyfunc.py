"""The registered model as MLflow's `python_function`: raw records scored as `/score` scores them, through MLflow's
own loader, `mlflow models predict` and `mlflow models serve`; models logged before the pyfunc still load."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest

from scoreloop.core.coerce import input_fields, read_frame
from scoreloop.core.model import CARD_KEY
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import CHAMPION, configure, load_registered, load_version
from scoreloop.serving.scoring import score_rows
from tests.support import clean_env, free_port, running

pytestmark = pytest.mark.slow

CHAMPION_URI = f"models:/scoreloop-model@{CHAMPION}"
ODD_RECORDS = [
    {"lead_id": "p-a", "industry": "SaaS", "employees": "1,200", "annual_revenue": "$1.2M", "product_events": 40},
    {"lead_id": "p-b", "industry": "fintec", "source": "N/A", "employees": "3k"},  # misspelt, missing, scaled
    {"lead_id": "p-c", "industry": "quantum_farming", "annual_revenue": "EUR 5"},  # unseen category
]


@pytest.fixture(scope="module")
def settings(trained_home: Path) -> Settings:
    settings = Settings(home=trained_home)
    configure(settings)
    return settings


@pytest.fixture(scope="module")
def pyfunc(settings: Settings) -> mlflow.pyfunc.PyFuncModel:
    return mlflow.pyfunc.load_model(CHAMPION_URI)


def raw_records(trained_home: Path) -> list[dict]:
    """The export's first 40 records as the CRM wrote them (text; the first 40 lines are well-formed), and a few
    odd ones, with only the fields the model reads."""
    fields = set(input_fields(load_registered(Settings(home=trained_home)).spec))
    raw = pd.read_csv(trained_home / "export.csv", dtype=str, keep_default_na=False).head(40)
    return [{k: v for k, v in row.items() if k in fields} for row in raw.to_dict("records")] + ODD_RECORDS


def test_pyfunc_scores_raw_records_as_score_does(server: str, trained_home: Path, pyfunc) -> None:
    records = raw_records(trained_home)
    api = pd.DataFrame(httpx.post(f"{server}/score", json={"records": records}, timeout=30).json())
    predicted = pyfunc.predict(pd.DataFrame(records))
    assert predicted["id"].tolist() == api["id"].tolist() == [r["lead_id"] for r in records]
    assert predicted["probability"].tolist() == api["probability"].tolist()  # one engine: identical, not close
    assert predicted["score"].tolist() == api["score"].tolist() and predicted["tier"].tolist() == api["tier"].tolist()
    assert predicted["reason"].isna().all()
    assert pyfunc.metadata.metadata[CARD_KEY]["tier_cutoffs"] == httpx.get(f"{server}/metadata").json()["tier_cutoffs"]


def test_a_refused_record_keeps_its_place_with_the_reason(pyfunc) -> None:
    records = [ODD_RECORDS[0], {"lead_id": "bad-1", "employees": "lots"}, {"lead_id": "bad-2", "employees": -4},
               ODD_RECORDS[1]]  # fmt: skip
    predicted = pyfunc.predict(pd.DataFrame(records))
    assert predicted["id"].tolist() == ["p-a", "bad-1", "bad-2", "p-b"]
    refused = predicted.iloc[[1, 2]]
    assert refused["probability"].isna().all() and refused["score"].isna().all() and refused["tier"].isna().all()
    assert refused["reason"].tolist()[0] == "employees: cannot read 'lots' as a number"
    assert refused["reason"].iloc[1].startswith("employees: ") and "below the minimum 0" in refused["reason"].iloc[1]
    scored = predicted.iloc[[0, 3]]
    assert scored["reason"].isna().all() and scored["probability"].between(0, 1).all()
    alone = pyfunc.predict(pd.DataFrame([records[0], records[3]]))  # the refused rows change nothing for the others
    assert scored["probability"].tolist() == alone["probability"].tolist()


def test_mlflow_models_predict_and_serve_score_raw_files_and_requests(
    settings: Settings, trained_home: Path, pyfunc, tmp_path: Path
) -> None:
    """MLflow's own CLI on `models:/NAME@champion`, in this environment (`--env-manager local`)."""
    records = raw_records(trained_home)
    expected = pyfunc.predict(pd.DataFrame(records))
    raw = tmp_path / "raw.csv"
    pd.DataFrame(records).to_csv(raw, index=False)
    path = f"{Path(sys.executable).parent}:{clean_env()['PATH']}"  # `mlflow models serve` runs uvicorn from PATH
    env = clean_env(MLFLOW_TRACKING_URI=settings.tracking_uri, PATH=path)
    mlflow_cli = [sys.executable, "-m", "mlflow", "models"]
    subprocess.run([*mlflow_cli, "predict", "-m", CHAMPION_URI, "--env-manager", "local", "-i", str(raw), "-t", "csv",
                    "-o", str(tmp_path / "predicted.json")], env=env, check=True, capture_output=True)  # fmt: skip
    predicted = pd.DataFrame(json.loads((tmp_path / "predicted.json").read_text())["predictions"])
    assert predicted["id"].tolist() == expected["id"].tolist()
    assert predicted["probability"].tolist() == pytest.approx(expected["probability"].tolist(), abs=1e-12)
    assert predicted["tier"].tolist() == expected["tier"].tolist()

    port = free_port()
    command = [*mlflow_cli, "serve", "-m", CHAMPION_URI, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with running(command, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", env):
        body = {"dataframe_records": [*records[:3], {"lead_id": "bad", "employees": "lots"}]}
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30).json()["predictions"]
    assert [a["probability"] for a in answer[:3]] == expected["probability"].head(3).tolist()
    assert math.isnan(answer[3]["probability"]) and answer[3]["reason"] == "employees: cannot read 'lots' as a number"


def test_a_version_logged_in_catboost_flavour_only_still_loads(settings: Settings, trained_home: Path) -> None:
    """Versions registered before the pyfunc existed carry only CatBoost's flavour: serving still loads them."""
    champion = load_registered(settings)
    with mlflow.start_run():
        info = mlflow.catboost.log_model(champion.classifier, name="model",
                                         metadata={CARD_KEY: champion.card.model_dump(mode="json")})  # fmt: skip
    version = mlflow.register_model(info.model_uri, "catboost-only-model").version
    old = load_version("catboost-only-model", str(version))
    checked = read_frame(pd.DataFrame(raw_records(trained_home)), champion.spec)
    assert (score_rows(old, checked.rows)["probability"] == score_rows(champion, checked.rows)["probability"]).all()
    assert mlflow.models.get_model_info(info.model_uri).flavors["python_function"]["loader_module"] == "mlflow.catboost"
