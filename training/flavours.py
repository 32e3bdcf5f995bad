"""How a trained model is written to MLflow: CatBoost's flavour and a `python_function` flavour over one file.

The catboost flavour (native `model.cbm`, never a pickle) is what scoreloop's serving loads, as it did before the
pyfunc existed. The `python_function` flavour points at the same file with scoreloop's loader
(`scoreloop.serving.pyfunc`, named here, not imported: stages do not import each other), so MLflow's own tools
(`mlflow models predict/serve`, `mlflow.pyfunc.spark_udf`) score raw records through scoreloop's engine. The
signature describes raw records: every input field optional and of any type (text as a CRM exports it, or JSON
values), since coercing them is the model's job; the card travels in the metadata.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
import pandas as pd
from catboost import CatBoostClassifier
from mlflow.models import Model, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME, ModelInfo
from mlflow.pyfunc import FLAVOR_NAME as PYFUNC
from mlflow.types.schema import AnyType, ColSpec, Schema

from scoreloop.core.coerce import input_fields
from scoreloop.core.model import CARD_KEY, ModelCard

PYFUNC_LOADER = "scoreloop.serving.pyfunc"
OUTPUTS = Schema(
    [ColSpec("string", "id", required=False), ColSpec("double", "probability", required=False),
     ColSpec("long", "score", required=False), ColSpec("string", "tier", required=False),
     ColSpec("string", "reason", required=False)]
)  # fmt: skip


def raw_signature(card: ModelCard) -> ModelSignature:
    """The pyfunc's signature: the spec's input fields (features and id), each optional and of any type."""
    inputs = Schema([ColSpec(AnyType(), name, required=False) for name in input_fields(card.spec)])
    return ModelSignature(inputs=inputs, outputs=OUTPUTS)


def log_model(classifier: CatBoostClassifier, card: ModelCard, example: pd.DataFrame) -> ModelInfo:
    """Log `classifier` with its card under the active run, `example` being a few raw records."""
    return Model.log(
        None,  # artifact_path: deprecated for `name`, still positional
        name="model",
        flavor=sys.modules[__name__],
        flavor_name="catboost",
        metadata={CARD_KEY: card.model_dump(mode="json")},
        cb_model=classifier,
        card=card,
        input_example=example,
    )


def save_model(
    path: str, mlflow_model: Model, cb_model: CatBoostClassifier, card: ModelCard, input_example: pd.DataFrame
) -> None:
    """`Model.log`'s hook: CatBoost's own save, then its pyfunc flavour repointed at scoreloop's loader."""
    mlflow.catboost.save_model(
        cb_model,
        path,
        mlflow_model=mlflow_model,
        signature=raw_signature(card),
        input_example=input_example,
        metadata=mlflow_model.metadata,
        pip_requirements=mlflow.catboost.get_default_pip_requirements(),  # skips MLflow's model-loading subprocess
    )
    mlflow_model.flavors[PYFUNC]["loader_module"] = PYFUNC_LOADER
    mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))
