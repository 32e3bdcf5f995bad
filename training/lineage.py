"""What a training run was made from: data slices (with digests), spec, time windows, code version, libraries."""

from __future__ import annotations

import platform
import subprocess
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow

from scoreloop.core.spec import DatasetSpec
from scoreloop.training.split import Split

LIBRARIES = ("catboost", "optuna", "mlflow", "scikit-learn", "pandas", "numpy")


def git_state(directory: Path) -> dict[str, str]:
    """Commit and dirtiness of the checkout holding `directory`; empty outside a git checkout or without git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": str(bool(status)).lower()}


def library_versions() -> dict[str, str]:
    """Python and the versions of the libraries that shape a model."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def log_lineage(split: Split, spec: DatasetSpec, source: str) -> None:
    """Each slice as an MLflow dataset input (with digest), the spec, the time windows, the git commit of this code
    (tags `scoreloop.git_commit`/`scoreloop.git_dirty` and MLflow's own) and library versions (`lib.*` params)."""
    with warnings.catch_warnings():  # MLflow warns about int columns and its own duplicate local-source resolvers
        warnings.simplefilter("ignore", UserWarning)
        slices = [("training", split.train), ("validation", split.valid), ("holdout", split.holdout)]
        for context, frame in slices + ([("training-older", split.older)] if split.older is not None else []):
            dataset = mlflow.data.from_pandas(frame, source=source, targets=spec.target, name=f"{spec.name}-{context}")
            mlflow.log_input(dataset, context=context)
    mlflow.log_text(spec.to_yaml(), "spec.yaml")
    mlflow.log_dict(split.windows, "windows.json")
    git = git_state(Path(__file__).resolve().parent)
    if git:
        mlflow.set_tags(
            {
                "scoreloop.git_commit": git["commit"],
                "scoreloop.git_dirty": git["dirty"],
                "mlflow.source.git.commit": git["commit"],
            }
        )
    mlflow.log_params({f"lib.{name}": value for name, value in library_versions().items()})
