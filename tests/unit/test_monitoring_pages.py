"""Reviewer pages: sanitised report names, summary pages, and an index that lists every report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scoreloop.core.pages import INDEX_HTML, new_report_dir, read_summaries, safe_name, write_index, write_report


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nightly", "nightly"),
        ("../../etc/passwd", "etc-passwd"),
        ("/abs/path", "abs-path"),
        ("a/../../b", "a-.-.-b"),
        ("..\\..\\win", "win"),
        ("week 12 <script>", "week-12-script"),
        ("x" * 200, "x" * 80),
        (".hidden", "hidden"),
    ],
)
def test_safe_name_is_one_harmless_path_component(name: str, expected: str) -> None:
    cleaned = safe_name(name)
    assert cleaned == expected
    assert "/" not in cleaned and "\\" not in cleaned and ".." not in cleaned and not cleaned.startswith(".")


@pytest.mark.parametrize("name", ["", "..", "../..", "///", "\x00"])
def test_a_name_with_nothing_usable_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="no usable characters"):
        safe_name(name)


@pytest.mark.parametrize("label", ["../../outside", "/tmp/outside", "..", "a/../../outside"])
def test_report_folders_stay_inside_the_reports_folder(tmp_path: Path, label: str) -> None:
    reports = tmp_path / "home" / "reports"
    try:
        folder = new_report_dir(reports, "monitor", label)
    except ValueError:
        folder = None
    if folder is not None:
        assert folder.parent == reports.resolve()
    assert {p.name for p in tmp_path.iterdir()} <= {"home"}  # nothing was created beside the home


def test_report_folders_are_unique(tmp_path: Path) -> None:
    first, second = new_report_dir(tmp_path, "drift", "x"), new_report_dir(tmp_path, "drift", "x")
    assert first != second and first.is_dir() and second.is_dir()


def test_the_index_lists_every_report_with_its_status(tmp_path: Path) -> None:
    statuses = ["pass", "fail", "promoted", "info"]
    for i, state in enumerate(statuses):
        folder = new_report_dir(tmp_path, "monitor", f"r{i}")
        headline = {"drifted": ["a"] if state == "fail" else [], "psi": 0.01 * i, "roc_auc": 0.7}
        summary = {"kind": "monitor", "title": f"report <{i}>", "status": state, "headline": headline}
        write_report(folder, {**summary, "files": {"summary": "summary.html"}}, "<p>body</p>")
    page = write_index(tmp_path).read_text()
    folders = sorted(s["folder"] for s in read_summaries(tmp_path))
    assert sorted(re.findall(r'<a href="([^"/]+)/summary\.html">report', page)) == folders
    assert "4 reports, 1 failing" in page
    assert [f'class="{s}"' in page for s in statuses] == [True] * 4
    assert "report &lt;1&gt;" in page and "<1>" not in page  # titles are escaped
    assert page.count("data:image/png;base64,") == 1  # the trend plot
    assert "<script" not in page  # opens from disk with nothing to run
    assert (tmp_path / INDEX_HTML).is_file()
