"""The champion's history: every gate decision and rollback, kept as tags on the registered model.

Registry tags live in whatever backend MLflow uses (SQLite, PostgreSQL, a tracking server), travel with the model
and need no local file. Each decision is one tag `scoreloop.decision.<sequence>` holding a JSON record; replaying
them gives the line of champions (a promotion pushes a version, a rollback pops back to an earlier one).
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from mlflow import MlflowClient

DECISION_TAG = "scoreloop.decision."
PROMOTED, REFUSED, ROLLED_BACK = "promoted", "refused", "rolled_back"


def read_history(client: MlflowClient, name: str) -> list[dict]:
    """Every recorded decision for model `name`, oldest first."""
    tags = client.get_registered_model(name).tags
    entries = [json.loads(value) for key, value in tags.items() if key.startswith(DECISION_TAG)]
    return sorted(entries, key=lambda entry: entry["seq"])


def record_decision(client: MlflowClient, name: str, action: str, **figures: object) -> dict:
    """Append one decision (with its time, author and figures) to the model's history; returns the entry."""
    if action not in (PROMOTED, REFUSED, ROLLED_BACK):
        raise ValueError(f"unknown action {action!r}: expected one of {PROMOTED}, {REFUSED}, {ROLLED_BACK}")
    history = read_history(client, name)
    entry = {
        "seq": (history[-1]["seq"] + 1) if history else 1,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": _user(),
        "action": action,
        **{key: value for key, value in figures.items() if value is not None},
    }
    client.set_registered_model_tag(name, f"{DECISION_TAG}{entry['seq']:06d}", json.dumps(entry, default=str))
    return entry


def champion_line(history: list[dict]) -> list[str]:
    """The versions that were champion in turn, replayed from the history: the last one is the current champion
    (if nobody moved the alias by hand), the one before it is what a rollback returns to."""
    line: list[str] = []
    for entry in history:
        if entry["action"] == PROMOTED:
            line.append(entry["champion_after"])
        elif entry["action"] == ROLLED_BACK:
            if line and line[-1] == entry["champion_before"]:
                line.pop()
            if not line or line[-1] != entry["champion_after"]:
                line.append(entry["champion_after"])
    return line


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
