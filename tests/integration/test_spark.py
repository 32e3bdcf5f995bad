"""`scoreloop score --engine spark`: the registered pyfunc on Spark local[2], over several partitions, gives the
in-process scorer's rows and quarantine; MLflow's own `spark_udf` scores raw records with the same pyfunc."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from scoreloop.core.coerce import input_fields
from scoreloop.core.settings import Settings
from scoreloop.core.tracking import configure, load_registered
from scoreloop.serving.batch import score_file
from scoreloop.serving.spark import read_input, score_with_spark
from tests.support import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(trained_home: Path):
    settings = Settings(home=trained_home)
    configure(settings)
    return load_registered(settings)


@pytest.fixture(scope="module")
def small_splits(spark):
    """Files split every 64 kB, so the 4,000-record export is read as several partitions."""
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 1024))
    yield
    spark.conf.unset("spark.sql.files.maxPartitionBytes")


def read_dataset(path: Path) -> pd.DataFrame:
    """A Spark dataset (a directory of part files) as one frame, by record number."""
    parts = sorted(path.glob("part-*"))
    frames = [pd.read_parquet(p) if path.suffix == ".parquet" else pd.read_csv(p, dtype={"_line": str}) for p in parts]
    return pd.concat(frames, ignore_index=True).sort_values("_record", ignore_index=True)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_spark_scoring_matches_the_in_process_scorer(
    spark, small_splits, model, trained_home: Path, tmp_path: Path, kind: str
) -> None:
    source = trained_home / "export.csv"  # messy text, two malformed lines
    if kind == "parquet":
        source = tmp_path / "export.parquet"
        raw = pd.read_csv(trained_home / "export.csv", dtype=str, keep_default_na=False, on_bad_lines="skip")
        raw.to_parquet(source, row_group_size=500)  # Spark splits Parquet by row group
    assert read_input(spark, str(source), ",").rdd.getNumPartitions() >= 3
    local = score_file(model, source, tmp_path / "local.parquet")
    report = score_with_spark(spark, model, str(source), str(tmp_path / "spark.parquet"))

    assert report.rows_in == local.rows_in == report.rows_scored + report.rows_quarantined
    assert (report.rows_scored, report.rows_quarantined) == (local.rows_scored, local.rows_quarantined)
    expected, scored = pd.read_parquet(tmp_path / "local.parquet"), read_dataset(tmp_path / "spark.parquet")
    assert list(scored.columns) == list(expected.columns)
    assert scored["_record"].tolist() == expected["_record"].tolist()
    assert np.abs(scored["probability"] - expected["probability"]).max() <= 1e-9
    same = ["id", "score", "tier", "model", "version"]  # ids may be missing: None on both sides
    pd.testing.assert_frame_equal(scored[same], expected[same])

    expected_q = pd.read_csv(tmp_path / "local.quarantine.csv", dtype={"_line": str})
    quarantined = read_dataset(tmp_path / "spark.quarantine.csv")
    assert list(quarantined.columns) == list(expected_q.columns)
    assert quarantined["_record"].tolist() == expected_q["_record"].tolist()
    for mine, theirs in zip(quarantined["_reason"], expected_q["_reason"], strict=True):
        assert theirs.startswith(mine)  # a malformed line's reason also names its line in-process
    assert quarantined["_reason"].str.contains("expected 18 fields").sum() == (2 if kind == "csv" else 0)


def test_the_cli_scores_on_spark_and_reports_the_accounting(trained_home: Path, tmp_path: Path) -> None:
    output = tmp_path / "scored.csv"
    result = cli(trained_home, "score", str(trained_home / "export.csv"), "-o", str(output), "--engine", "spark",
                 "--master", "local[2]")  # fmt: skip
    assert "rows_quarantined" in result.stdout and "4000" in result.stdout
    scored, quarantined = read_dataset(output), read_dataset(tmp_path / "scored.quarantine.csv")
    assert len(scored) + len(quarantined) == 4000 and scored["probability"].between(0, 1).all()
    refused = cli(trained_home, "score", str(trained_home / "export.csv"), "-o", str(output), "--engine", "spark",
                  "--work", check=False)  # fmt: skip
    assert refused.returncode != 0 and "--work decides over the whole file" in refused.stdout + refused.stderr
    wrong = [(["--engine", "dask"], "--engine must be local or spark, got 'dask'"),
             (["--master", "local[2]"], "--master says where Spark runs: add --engine spark")]  # fmt: skip
    for options, message in wrong:
        refused = cli(trained_home, "score", str(trained_home / "export.csv"), "-o", str(output), *options, check=False)
        assert refused.returncode == 2 and message in refused.stdout + refused.stderr


def test_mlflow_spark_udf_scores_raw_records_with_the_pyfunc(spark, model, trained_home: Path) -> None:
    raw = pd.read_csv(trained_home / "export.csv", dtype=str, keep_default_na=False, on_bad_lines="skip").head(200)
    udf = mlflow.pyfunc.spark_udf(spark, "models:/scoreloop-model@champion", env_manager="local")
    frame = spark.createDataFrame(raw)
    fields = F.struct(*[name for name in input_fields(model.spec) if name in raw])  # the raw fields, by name
    scored = frame.select("lead_id", udf(fields).alias("scored")).select("lead_id", "scored.*").toPandas()
    expected = mlflow.pyfunc.load_model("models:/scoreloop-model@champion").predict(raw)
    assert scored["id"].tolist() == raw["lead_id"].tolist()
    assert np.abs(scored["probability"] - expected["probability"]).max() <= 1e-9
    assert scored["tier"].tolist() == expected["tier"].tolist()
