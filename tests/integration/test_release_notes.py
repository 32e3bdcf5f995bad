"""Release notes after a promotion in a small loop: train, work a file, train again, promote; the page's figures
are checked against both versions' own answers on the same records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.support import cli, train_home

pytestmark = pytest.mark.slow

LOOSE_GATE = {"SCORELOOP_GATE__MARGIN": "-1", "SCORELOOP_GATE__ECE_TOLERANCE": "1",
              "SCORELOOP_GATE__BASELINE_TOLERANCE": "1"}  # fmt: skip


def test_release_notes_after_a_promotion(tmp_path: Path) -> None:
    home = train_home(tmp_path, "--rows", "3000", "--seed", "5", trials=1)
    export, worked, rescored = home / "export.csv", tmp_path / "worked.csv", tmp_path / "rescored.csv"
    cli(home, "score", str(export), "-o", str(worked), "--work")  # version 1 scores the file into the log
    first = cli(home, "promote", env=LOOSE_GATE).stdout
    assert "release notes" not in first  # the challenger is already champion: nothing changes
    train = ("train", "--spec", str(home / "spec.yaml"), "--data", str(home / "leads.parquet"), "--trials", "1")
    cli(home, *train, env={"SCORELOOP_TRAIN__SEED": "9", "SCORELOOP_TRAIN__SEARCH__DEPTH": "[2, 3]"})
    promoted = cli(home, "promote", env=LOOSE_GATE).stdout
    assert "release notes:" in promoted
    page = Path(promoted.split("release notes:")[1].split()[0])
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["title"] == "Release notes: version 2 replaces 1" and summary["model_version"] == "2"

    cli(home, "score", str(export), "-o", str(rescored))  # version 2 on the same records
    both = pd.read_csv(worked).merge(pd.read_csv(rescored), on="id", suffixes=("_v1", "_v2"))
    headline = summary["headline"]
    assert headline["records"] == len(both)
    assert headline["changed_tier"] == pytest.approx((both["tier_v1"] != both["tier_v2"]).mean(), abs=1e-4)
    spearman = both["probability_v1"].corr(both["probability_v2"], method="spearman")
    assert headline["rank_correlation"] == pytest.approx(spearman, abs=1e-4)
    html = page.read_text()
    assert "Tier before (rows) and after (columns)" in html and "Features that lost weight" in html
    change = (both["score_v2"] - both["score_v1"]).abs()
    assert any(record in html for record in both.loc[change == change.max(), "id"])  # the largest move is listed
    assert " points" in html.split("Records that moved most")[1]
    assert f"{page.parent.name}/summary.html" in (home / "reports" / "index.html").read_text()
