"""What decides whether a new champion may be swapped in, on a small real CatBoost model: it scores, and it takes the
same input spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier

from scoreloop.core.model import ModelCard, ScoringModel, fit_card_scale, make_pool
from scoreloop.core.spec import DatasetSpec
from scoreloop.serving.follow import smoke_score, spec_change

SPEC = DatasetSpec(
    id_column="lead_id",
    target="converted",
    positive_label="yes",
    numeric=["visits"],
    categorical=["industry"],
    allowed_values={"industry": ["saas", "retail"]},
)


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"visits": rng.poisson(5, 300).astype(float), "industry": rng.choice(["saas", "retail"], 300)})
    label = (rows["visits"] + rng.normal(0, 2, 300) > 6).astype(int)
    classifier = CatBoostClassifier(iterations=20, depth=2, verbose=False, allow_writing_files=False, thread_count=1)
    classifier.fit(make_pool(rows, SPEC, label))
    quantiles, cutoffs = fit_card_scale(classifier.predict_proba(make_pool(rows, SPEC))[:, 1], {"A": 0.1})
    return ScoringModel(classifier, ModelCard(spec=SPEC, score_quantiles=quantiles, tier_cutoffs=cutoffs), "m", "1")


def test_a_champion_with_the_same_spec_differs_in_nothing(model: ScoringModel) -> None:
    retrained = ScoringModel(model.classifier, model.card.model_copy(), "m", "2")
    assert spec_change(model, retrained) == []


def test_a_spec_change_names_the_fields_that_differ(model: ScoringModel) -> None:
    spec = SPEC.model_copy(update={"required": ["industry"], "allowed_values": {"industry": ["saas"]}})
    changed = ScoringModel(model.classifier, model.card.model_copy(update={"spec": spec}), "m", "2")
    assert spec_change(model, changed) == ["allowed_values", "required"]


def test_the_smoke_score_passes_a_model_that_scores_and_refuses_one_that_cannot(model: ScoringModel) -> None:
    smoke_score(model)
    untrained = ScoringModel(CatBoostClassifier(), model.card, "m", "2")
    with pytest.raises(ValueError, match="cannot score an empty record"):
        smoke_score(untrained)
