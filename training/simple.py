"""The simple approach a team could run without ML: a few thresholds on the strongest features, as a shallow tree.

Fitted on the training rows (train + valid) of the same split as the model, and scored on the same holdout, so
`scoreloop.core.value` compares like with like. The features are the model's strongest (CatBoost's importance):
what a team would pick by looking at its own best signals. A category becomes its conversion rate in the training
rows (unseen: the overall rate), so a threshold on it reads as "categories that convert above x", as a team would
write one; a missing number goes with whichever side converts like it (scikit-learn's trees learn that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from sklearn.tree import DecisionTreeClassifier, export_text

from scoreloop.core.model import model_frame
from scoreloop.core.settings import ValueSettings
from scoreloop.core.spec import DatasetSpec


@dataclass(frozen=True)
class SimpleApproach:
    """The fitted thresholds: which features, each category's rate, the tree and its rules in words."""

    features: list[str]
    rates: dict[str, pd.Series]
    overall: float
    tree: DecisionTreeClassifier

    def encode(self, rows: pd.DataFrame) -> np.ndarray:
        columns = [
            rows[f].map(self.rates[f]).astype(float).fillna(self.overall) if f in self.rates else rows[f].astype(float)
            for f in self.features
        ]
        return np.column_stack(columns)

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """Each record's group conversion rate in the training rows: higher is worked first."""
        return self.tree.predict_proba(self.encode(rows))[:, 1]

    @property
    def rules(self) -> str:
        return export_text(self.tree, feature_names=self.features, show_weights=False)


def strongest_features(model: CatBoostClassifier, count: int) -> list[str]:
    """The model's `count` most important features (CatBoost's prediction-value-change importance)."""
    importance = pd.Series(model.get_feature_importance(), index=model.feature_names_)
    return list(importance.sort_values(ascending=False, kind="stable").index[:count])


def fit_simple(
    rows: pd.DataFrame, spec: DatasetSpec, model: CatBoostClassifier, config: ValueSettings, seed: int
) -> SimpleApproach:
    """Thresholds on the model's strongest numeric or categorical features, learned from `rows` (labelled)."""
    usable = [f for f in strongest_features(model, len(spec.features)) if f not in spec.text][: config.features]
    frame, y = model_frame(rows, spec), rows[spec.target].to_numpy(dtype=float)
    overall = float(y.mean())
    rates = {f: pd.Series(y).groupby(frame[f].to_numpy()).mean() for f in usable if f in spec.categorical}
    simple = SimpleApproach(usable, rates, overall, DecisionTreeClassifier(max_depth=config.depth, random_state=seed))
    simple.tree.fit(simple.encode(frame), y)
    return simple
