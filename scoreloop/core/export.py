"""Writing the synthetic lead world to files, clean or as a messy CRM export, with its hidden truth beside it."""

from __future__ import annotations

from pathlib import Path

from scoreloop.core.synthetic import ID_COLUMN, TARGET, WorldConfig, corrupt_lines, generate_leads, make_messy

TRUTH_COLUMN = "p_true"


def truth_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(output.suffix) + ".truth.parquet")


def write_leads(config: WorldConfig, output: Path, *, messy: bool) -> dict:
    """Generate leads and write them to `output` (.csv or .parquet); the true probabilities go to a .truth file.

    A messy export is CSV only: its point is text that must be parsed, with a few structurally broken lines.
    """
    output = Path(output)
    if messy and output.suffix != ".csv":
        raise ValueError(f"a messy export is written as .csv, not {output.suffix!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    leads = generate_leads(config)
    leads[[ID_COLUMN, TRUTH_COLUMN]].to_parquet(truth_path(output), index=False)
    if messy:
        text = make_messy(leads, config.seed).to_csv(index=False)
        output.write_text(corrupt_lines(text, config.seed, count=max(1, config.rows // 2000)))
    elif output.suffix == ".parquet":
        leads.drop(columns=TRUTH_COLUMN).to_parquet(output, index=False)
    else:
        leads.drop(columns=TRUTH_COLUMN).to_csv(output, index=False)
    return {
        "rows": len(leads),
        "path": str(output),
        "truth": str(truth_path(output)),
        "positive_rate": round(float(leads[TARGET].mean()), 4),
        "window": f"{leads['created_at'].min():%Y-%m-%d} .. {leads['created_at'].max():%Y-%m-%d}",
    }
