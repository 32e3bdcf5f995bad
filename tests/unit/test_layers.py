"""The import contracts hold on the package, and they catch what they name: a stage importing another stage, the
core importing a stage, and a cycle between two modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.layers import lint_imports, stage_package

pytestmark = pytest.mark.slow  # builds the import graph of the whole package, a few seconds per run


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = lint_imports(stage_package(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "2 kept, 0 broken" in result.stdout


LAYERS = "layers: cli > loop > training | serving | monitoring > core"
CYCLES = "no import cycles between modules of a package"


@pytest.mark.parametrize(
    ("edits", "broken"),
    [
        ({"serving/schema.py": "import scoreloop.training.split"}, {LAYERS}),  # a stage importing a stage
        ({"core/spec.py": "import scoreloop.monitoring.checks"}, {LAYERS, CYCLES}),  # the core importing a stage
        (
            {"core/spec.py": "import scoreloop.core.settings", "core/settings.py": "import scoreloop.core.spec"},
            {CYCLES},
        ),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, edits: dict[str, str], broken: set[str]) -> None:
    staged = stage_package(tmp_path)
    for module, line in edits.items():
        target = staged / "scoreloop" / module
        target.write_text(f"{target.read_text()}\n{line}\n")
    result = lint_imports(staged)
    assert result.returncode != 0
    for contract in (LAYERS, CYCLES):
        assert f"{contract} {'BROKEN' if contract in broken else 'KEPT'}" in result.stdout
