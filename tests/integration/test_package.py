"""The distribution as users install it: a wheel built from the repository holds `scoreloop` and nothing else at
its top level (the stage folders are mapped under it), and its console script runs from outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.layers import ROOT

pytestmark = pytest.mark.slow


def test_a_wheel_holds_only_the_scoreloop_namespace(tmp_path: Path) -> None:
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "build", "-q", "--wheel", "-o", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("scoreloop-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"scoreloop", wheel.name.split("-py3")[0] + ".dist-info"}
    for stage in ("training", "serving", "monitoring", "core", "loop", "cli"):
        assert f"scoreloop/{stage}/__init__.py" in names
    assert "scoreloop/serving/service.py" in names and "scoreloop/training/train.py" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/entry_points.txt").decode()
    assert "scoreloop = scoreloop.cli.main:run" in entry_points


def test_the_stages_import_from_outside_the_checkout(tmp_path: Path) -> None:
    modules = ("scoreloop.training.train", "scoreloop.serving.scoring", "scoreloop.monitoring.drift", "scoreloop.loop")
    code = f"import {', '.join(modules)}"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    result = subprocess.run([sys.executable, "-c", "import training"], cwd=tmp_path, capture_output=True, text=True)
    assert "No module named 'training'" in result.stderr
