"""Static HTML for reviewers: each report's summary page and the index of every report, with embedded plots.

Pages are plain HTML with inline CSS and plots embedded as PNG data URIs: no script, no server, no network, so
they open from disk and can be copied anywhere. Every report folder under the reports directory holds a
`summary.json` (the machine-readable headline) and a `summary.html`; `write_index` lists them all.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

SUMMARY_JSON = "summary.json"
SUMMARY_HTML = "summary.html"
INDEX_HTML = "index.html"

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
.pass, .promoted { color: #fff; background: #2e7d32; padding: 0.1em 0.5em; border-radius: 3px; }
.fail, .refused { color: #fff; background: #c62828; padding: 0.1em 0.5em; border-radius: 3px; }
.info { color: #fff; background: #546e7a; padding: 0.1em 0.5em; border-radius: 3px; }
.muted { color: #777; }
img { max-width: 100%; }
"""


def new_figure(width: float = 7.0, height: float = 3.2) -> Figure:
    """A matplotlib figure that needs no pyplot state or display backend."""
    return Figure(figsize=(width, height), layout="constrained")


def png(figure: Figure) -> str:
    """The figure as an `<img>` with an embedded PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


def fmt(value: Any) -> str:
    """A cell: floats to 4 significant digits, NaN/None as a dash, everything escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table(rows: pd.DataFrame | Iterable[Mapping[str, Any]], raw: Iterable[str] = ()) -> str:
    """An HTML table from a frame or a list of dicts; columns named in `raw` hold trusted HTML (links, badges)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return '<p class="muted">none</p>'
    trusted = set(raw)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{value if column in trusted else fmt(value)}</td>"
            for column, value in zip(frame.columns, row, strict=True)
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def badge(status: str) -> str:
    return f'<span class="{html.escape(status)}">{html.escape(status)}</span>'


def link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def safe_name(text: str) -> str:
    """A user-supplied name as one harmless path component: letters, digits, `.`, `_` and `-` only, at most 80.

    Separators, `..`, control characters and anything else become `-`, so a name can never leave its folder
    (`../../etc/x` -> `etc-x`). A name with nothing usable left is refused.
    """
    cleaned = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "-", text)).strip(".-")[:80].rstrip(".-")
    if not cleaned:
        raise ValueError(f"name {text!r} has no usable characters: use letters, digits, '.', '_' or '-'")
    return cleaned


def new_report_dir(reports_dir: Path, kind: str, label: str = "") -> Path:
    """A fresh folder `<UTC time>-<kind>[-<label>]` under `reports_dir` (suffixed if that name is taken).

    `label` may come from a user: it is passed through `safe_name`, and the folder is checked to be inside
    `reports_dir`.
    """
    reports_dir = Path(reports_dir).resolve()
    base = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{safe_name(kind)}" + (f"-{safe_name(label)}" if label else "")
    candidate, n = reports_dir / base, 1
    while candidate.exists():
        n += 1
        candidate = reports_dir / f"{base}-{n}"
    if candidate.resolve().parent != reports_dir:
        raise ValueError(f"report folder {candidate} would not be inside {reports_dir}")
    candidate.mkdir(parents=True)
    return candidate


def write_report(out_dir: Path, summary: dict[str, Any], body: str) -> Path:
    """Write a report's `summary.json` and `summary.html` (headline, then `body`); returns the HTML path.

    `summary` needs `kind`, `title` and `status`; `files` maps link text to paths relative to `out_dir`.
    """
    summary = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), **summary}
    (out_dir / SUMMARY_JSON).write_text(json.dumps(summary, indent=2, default=_json_default))
    files = " · ".join(link(path, name) for name, path in summary.get("files", {}).items())
    header = (
        f"<p>{badge(summary['status'])} {html.escape(summary.get('kind', ''))} · "
        f"created {html.escape(summary['created_at'])} · {link('../' + INDEX_HTML, 'all reports')}</p>"
        + (f"<p>Reports: {files}</p>" if files else "")
    )
    path = out_dir / SUMMARY_HTML
    path.write_text(page(summary["title"], header + body), encoding="utf-8")
    return path


def _json_default(value: object) -> object:
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a report summary")


def read_summaries(reports_dir: Path) -> list[dict[str, Any]]:
    """Every report's summary under `reports_dir`, oldest first, each with its folder name as `folder`."""
    summaries = []
    for path in sorted(Path(reports_dir).glob(f"*/{SUMMARY_JSON}")):
        summary = json.loads(path.read_text())
        summaries.append({**summary, "folder": path.parent.name})
    return sorted(summaries, key=lambda s: (s.get("created_at", ""), s["folder"]))


def write_index(reports_dir: Path) -> Path:
    """(Re)write `index.html`: every report with its headline status and figures, and a trend plot."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    summaries = read_summaries(reports_dir)
    rows = []
    for s in summaries:
        headline = s.get("headline", {})
        rows.append(
            {
                "created (UTC)": s.get("created_at", ""),
                "kind": s.get("kind", ""),
                "report": link(f"{s['folder']}/{SUMMARY_HTML}", s.get("title", s["folder"])),
                "status": badge(s.get("status", "info")),
                "model version": s.get("model_version", ""),
                "drifted columns": ", ".join(headline.get("drifted", [])) or headline.get("drifted_columns", ""),
                "PSI": headline.get("psi"),
                "AUC (labelled)": headline.get("roc_auc"),
                "labelled": headline.get("labelled"),
                "files": " · ".join(link(f"{s['folder']}/{p}", n) for n, p in s.get("files", {}).items()),
            }
        )
    failing = sum(1 for s in summaries if s.get("status") == "fail")
    body = (
        f"<p>{len(summaries)} reports, {failing} failing. Newest last. Each report's page lists its checks "
        "(figure vs tolerance); the Evidently pages hold the detail.</p>"
        + _trend(summaries)
        + table(rows, raw=("report", "status", "files"))
    )
    path = reports_dir / INDEX_HTML
    path.write_text(page("scoreloop reports", body), encoding="utf-8")
    return path


def _trend(summaries: list[dict[str, Any]]) -> str:
    """Share of drifted features, score PSI and labelled AUC over the monitoring reports, in report order."""
    points = [s for s in summaries if s.get("kind") in {"monitor", "drift"}]
    if not points:
        return ""
    figure = new_figure(8, 2.8)
    axes = figure.subplots()
    x = range(1, len(points) + 1)
    for key, label in (("share_drifted", "share of features drifted"), ("psi", "score PSI"), ("roc_auc", "AUC")):
        y = [number_or_nan(p.get("headline", {}).get(key)) for p in points]
        if any(not math.isnan(v) for v in y):
            axes.plot(x, y, marker="o", label=label)
    axes.set_xlabel("monitoring report (oldest first)")
    axes.set_xticks(list(x))
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    return png(figure)


def number_or_nan(value: Any) -> float:
    """A figure that may be absent (None) as a float: NaN then, so that 0 stays 0 (`value or nan` would not)."""
    return float("nan") if value is None else float(value)
