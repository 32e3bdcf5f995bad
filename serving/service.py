"""The BentoML service: loads the imported champion once and scores batches of records.

BentoML discovers services by import path, so this module resolves its model when imported: the request schema
is generated from the spec stored with that model. `SCORELOOP_BENTO_MODEL` names the model tag (set by
`scoreloop serve`); a built bento serves the model it was built with.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import pandas as pd

from scoreloop.model import load_scoring_model, read_card
from serving.schema import Scored, record_model

MAX_BATCH = 1000

_bento_model = bentoml.models.BentoModel(os.environ.get("SCORELOOP_BENTO_MODEL", "scoreloop-model:latest"))
_model_dir = Path(_bento_model.resolve().path_of("mlflow_model"))
Record = record_model(read_card(_model_dir).spec)


@bentoml.service(name="scoreloop", traffic={"timeout": 30})
class Scorer:
    bento_model = _bento_model

    def __init__(self) -> None:
        metadata = self.bento_model.info.metadata  # BentoML hands the instance the resolved stored model
        self.model = load_scoring_model(_model_dir, metadata["registered_model"], metadata["version"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=10)
    def score(self, records: list[Record]) -> list[Scored]:  # type: ignore[valid-type]
        """Probability, 0-100 score and tier for each record."""
        rows = pd.DataFrame([record.model_dump() for record in records], columns=list(Record.model_fields))
        scored = self.model.score(rows)
        id_column = self.model.spec.id_column
        ids = rows[id_column] if id_column else pd.Series(None, index=rows.index)
        return [
            Scored(id=i, probability=p, score=s, tier=t, model=self.model.name, version=self.model.version)
            for i, p, s, t in zip(ids, scored["probability"], scored["score"], scored["tier"], strict=True)
        ]
