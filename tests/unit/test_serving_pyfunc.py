"""The python_function flavour on a small real model: written as training writes it, loaded by MLflow's own loader,
scoring raw records as `/score`'s path does and keeping refused ones in place with their reason."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from catboost import CatBoostClassifier
from mlflow.models import Model

from scoreloop.core.calibration import sigmoid
from scoreloop.core.coerce import read_frame
from scoreloop.core.model import CARD_KEY, ModelCard, fit_card_scale, load_scoring_model, make_pool
from scoreloop.serving.scoring import score_rows
from scoreloop.training import flavours
from tests.unit.test_serving_scoring import SPEC  # the same small lead spec

RAW = pd.DataFrame(
    [
        {"lead_id": "a", "employees": "1,200", "visits": "9", "industry": " SaaS "},
        {"lead_id": "b", "employees": "lots", "visits": "2", "industry": "retail"},  # refused: employees
        {"lead_id": "c", "employees": None, "visits": "N/A", "industry": "quantum"},  # missing, unseen: scored
        {"lead_id": "d", "employees": "-3", "visits": "1", "industry": "media"},  # refused: below the minimum
    ],
    index=[10, 11, 12, 13],
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"employees": rng.integers(1, 5000, 400).astype(float), "visits": rng.poisson(5, 400) * 1.0,
                         "industry": rng.choice(["saas", "retail", "media"], 400)})  # fmt: skip
    label = (rng.random(400) < sigmoid(-2 + 0.4 * rows["visits"])).astype(int)
    classifier = CatBoostClassifier(iterations=40, depth=3, verbose=False, allow_writing_files=False, thread_count=1)
    classifier.fit(make_pool(rows, SPEC, label))
    quantiles, cutoffs = fit_card_scale(classifier.predict_proba(make_pool(rows, SPEC))[:, 1], {"A": 0.1, "B": 0.3})
    card = ModelCard(spec=SPEC, score_quantiles=quantiles, tier_cutoffs=cutoffs)
    path = tmp_path_factory.mktemp("pyfunc") / "model"
    flavours.save_model(str(path), Model(metadata={CARD_KEY: card.model_dump(mode="json")}), classifier, card, RAW[:1])
    return path


def test_both_flavours_read_one_native_file_and_nothing_is_pickled(model_dir: Path) -> None:
    flavors = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]
    assert flavors["python_function"]["loader_module"] == "scoreloop.serving.pyfunc"
    assert flavors["python_function"]["data"] == flavors["catboost"]["data"]
    assert not [p for p in model_dir.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]


def test_predict_scores_raw_records_as_score_does_and_keeps_refused_ones_in_place(model_dir: Path) -> None:
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    predicted = pyfunc.predict(RAW)
    assert list(predicted.columns) == ["id", "probability", "score", "tier", "reason"]
    assert predicted.index.tolist() == RAW.index.tolist() and predicted["id"].tolist() == ["a", "b", "c", "d"]

    served = load_scoring_model(model_dir, "m", "1")  # the catboost flavour, as serving loads it
    checked = read_frame(RAW.reset_index(drop=True), SPEC)
    expected = score_rows(served, checked.rows[checked.accepted])
    scored = predicted.loc[[10, 12]]
    assert scored["probability"].tolist() == expected["probability"].tolist()
    assert scored["score"].tolist() == expected["score"].tolist()
    assert scored["tier"].tolist() == expected["tier"].tolist()
    assert scored["reason"].isna().all()

    refused = predicted.loc[[11, 13]]
    assert refused["probability"].isna().all() and refused["score"].isna().all() and refused["tier"].isna().all()
    assert refused["reason"].iloc[0] == "employees: cannot read 'lots' as a number"
    assert refused["reason"].iloc[1].startswith("employees: ") and "minimum 0" in refused["reason"].iloc[1]


def test_the_card_travels_as_metadata(model_dir: Path) -> None:
    card = mlflow.pyfunc.load_model(str(model_dir)).metadata.metadata[CARD_KEY]
    assert ModelCard.model_validate(card).spec == SPEC
