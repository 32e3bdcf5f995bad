"""`make demo`: the whole loop on the embedded synthetic world, through the same CLI a user types.

Generates a messy, drifting CRM export, infers a spec, ingests, trains, promotes, compares the oldest and newest
quarters for drift, batch-scores the newest quarter with the champion, and runs the feedback-loop simulation
(the default explore + off-policy-gate loop against exploit-only, never-retrain and an oracle, where the true
conversion probabilities are known); then says where everything is, the simulation's verdict first.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from scoreloop.cli.app import console
from scoreloop.cli.main import app
from scoreloop.core.settings import Settings
from scoreloop.core.synthetic import EXTRA_COLUMNS
from scoreloop.core.tracking import configure, runs_page


def run(*args: str) -> None:
    console.rule(f"scoreloop {' '.join(args)}")
    app(list(args), standalone_mode=False)


def split_quarters(ingested: Path, time_column: str, out_dir: Path) -> tuple[Path, Path]:
    """Write the oldest and the newest three months of ingested rows as the drift reference and current sets."""
    rows = pd.read_parquet(ingested)
    start, end = rows[time_column].min(), rows[time_column].max()
    reference = out_dir / "reference-first-quarter.parquet"
    current = out_dir / "current-last-quarter.parquet"
    rows[rows[time_column] < start + pd.DateOffset(months=3)].to_parquet(reference, index=False)
    rows[rows[time_column] > end - pd.DateOffset(months=3)].to_parquet(current, index=False)
    return reference, current


def main(rows: int = 20_000, trials: int = 6) -> None:
    began = time.monotonic()
    settings = Settings()
    home = settings.ensure_home()
    data = home / "data"
    export, spec, ingested = data / "leads-export.csv", home / "spec.yaml", data / "leads.parquet"
    run(
        "data",
        "generate",
        "--rows",
        str(rows),
        "--seed",
        "7",
        "--messy",
        "--covariate-drift",
        "0.7",
        "--concept-drift",
        "0.4",
        "-o",
        str(export),
    )
    run(
        "spec",
        "infer",
        str(export),
        "--target",
        "converted",
        "--id",
        "lead_id",
        "--time",
        "created_at",
        *[arg for column in EXTRA_COLUMNS for arg in ("--exclude", column)],
        "-o",
        str(spec),
    )
    run("ingest", str(export), "--spec", str(spec), "-o", str(ingested))
    run("train", "--spec", str(spec), "--data", str(ingested), "--trials", str(trials))
    run("promote")
    reference, current = split_quarters(ingested, "created_at", data)
    run("monitor", "--reference", str(reference), "--current", str(current), "--spec", str(spec))
    run("score", str(current), "-o", str(data / "scored-last-quarter.csv"))
    run("simulate", "--cycles", "3", "--rows", "3000", "--json", str(home / "simulation.json"))
    console.rule("done")
    runs = runs_page(settings, configure(settings))
    console.print(
        f"finished in {time.monotonic() - began:.0f} s; everything is under {home}\n"
        f"  feedback loop:    {_newest(settings.reports_dir, 'simulate')}  (the arms judged against the truth)\n"
        f"  runs and models:  mlflow ui --backend-store-uri {settings.tracking_uri_redacted}\n"
        f"                    then {runs}\n"
        f"  reports index:    {settings.reports_dir / 'index.html'}  (drift, monitoring, feedback loop)\n"
        f"  scored quarter:   {data / 'scored-last-quarter.csv'}\n"
        f"  quarantined rows: {data / 'leads.quarantine.csv'}\n"
        f"  serve champion:   .venv/bin/scoreloop serve --port 3000   (POST /score)"
    )


def _newest(reports_dir: Path, kind: str) -> Path:
    return sorted(reports_dir.glob(f"*-{kind}*"))[-1] / "summary.html"


if __name__ == "__main__":
    main()
