"""`make lint`'s import contracts (pyproject's [tool.importlinter]) checked on the package as a wheel lays it out.

The repository keeps `training/`, `serving/` and `monitoring/` at its top level and setuptools maps them under
`scoreloop` (pyproject's package-dir); import-linter reads packages from disk, so it is given that layout, staged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stage_package(target: Path) -> Path:
    """Copy every package to where the wheel installs it, under `target`; returns `target`."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):  # "scoreloop" first, then its mapped subpackages
        destination = target.joinpath(*package.split("."))
        shutil.copytree(ROOT / folder, destination, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    return target


def lint_imports(staged: Path) -> subprocess.CompletedProcess:
    """Run import-linter on a staged package with the project's contracts."""
    command = [str(Path(sys.executable).with_name("lint-imports")), str(ROOT / "pyproject.toml"), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(staged)}
    return subprocess.run(command, cwd=staged, env=env, capture_output=True, text=True)


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        result = lint_imports(stage_package(Path(folder)))
    print(result.stdout[-4000:], result.stderr[-2000:], sep="")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
