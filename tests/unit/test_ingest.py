"""Ingestion: rows in = rows out + rows quarantined, with a reason and the raw text for every quarantined row."""

from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

import pandas as pd
import pytest

from scoreloop.core.export import write_leads
from scoreloop.core.infer import infer_spec
from scoreloop.core.ingest import detect_delimiter, ingest_file, quarantine_path, read_raw, read_rows, sniff_delimiter
from scoreloop.core.spec import DatasetSpec, Range
from scoreloop.core.synthetic import EXTRA_COLUMNS, WorldConfig

HEADER = "lead_id,created_at,revenue,industry,converted\n"
SPEC = DatasetSpec(
    id_column="lead_id",
    target="converted",
    positive_label="yes",
    time_column="created_at",
    numeric=["revenue"],
    categorical=["industry"],
    allowed_values={"industry": ["fintech", "saas"]},
    ranges={"revenue": Range(min=0)},
)


def _write(tmp_path: Path, body: str, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def _ingest(source: Path, spec: DatasetSpec = SPEC):
    return ingest_file(source, spec, source.parent / "out" / "leads.parquet")


def _quarantine(report) -> pd.DataFrame:
    return pd.read_csv(report.quarantine, dtype=str, keep_default_na=False)


def test_clean_export_writes_typed_rows_and_no_quarantine(tmp_path):
    source = _write(tmp_path, 'L1,2024-03-05,"$1,200", SaaS ,Yes\nL2,03/06/2024,1.2k,FINTECH,no\n')
    report = _ingest(source)
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (2, 2, 0)
    assert report.quarantine is None
    assert not quarantine_path(report.output).exists()
    rows = pd.read_parquet(report.output)
    assert rows.to_dict("list") == {
        "lead_id": ["L1", "L2"],
        "created_at": [pd.Timestamp("2024-03-05"), pd.Timestamp("2024-03-06")],
        "revenue": [1200.0, 1200.0],
        "industry": ["saas", "fintech"],
        "converted": [1, 0],
    }


def test_a_stale_quarantine_file_is_removed_when_nothing_is_rejected(tmp_path):
    source = _write(tmp_path, "L1,2024-03-05,1,saas,yes\n")
    stale = quarantine_path(source.parent / "out" / "leads.parquet")
    stale.parent.mkdir()
    stale.write_text("_record,_reason\n1,old\n")
    assert _ingest(source).quarantine is None
    assert not stale.exists()


def test_rejected_rows_are_quarantined_with_reason_record_and_raw_text(tmp_path):
    closed = SPEC.model_copy(update={"closed": ["industry"]})
    body = (
        'L1,2024-03-05,"$1,200",saas,yes\n'
        'L2,2024-03-05,"$1,200",crypto,yes\n'
        "L3,2024-13-45,12abc,saas,N/A\n"
        "L4,2024-03-05,-5,saas,no\n"
        "L1,2024-03-05,7,saas,no\n"
        ",2024-03-05,7,saas,no\n"
        "L6,2024-03-05,N/A,,no\n"
    )
    report = _ingest(_write(tmp_path, body), closed)
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (7, 2, 5)
    quarantine = _quarantine(report)
    assert len(quarantine) == report.rows_quarantined
    assert quarantine["_record"].tolist() == ["2", "3", "4", "5", "6"]
    assert quarantine["_reason"].tolist() == [
        "industry: 'crypto' is not one of ['fintech', 'saas']",
        "created_at: cannot read '2024-13-45' as a date; revenue: cannot read '12abc' as a number; "
        "converted: is missing",
        "revenue: -5 is below the minimum 0",
        "lead_id: duplicate id 'L1' (the first row with it was kept)",
        "lead_id: is missing",
    ]
    assert quarantine.loc[0, ["lead_id", "revenue", "industry"]].tolist() == ["L2", "$1,200", "crypto"]
    assert quarantine.loc[1, ["created_at", "revenue", "converted"]].tolist() == ["2024-13-45", "12abc", "N/A"]
    assert pd.read_parquet(report.output)["lead_id"].tolist() == ["L1", "L6"]


def test_a_category_outside_the_allowed_values_is_kept_and_reported_as_unseen(tmp_path):
    source = _write(tmp_path, "L1,2024-03-05,1,Crypto,yes\nL2,2024-03-05,2,fintec,no\nL3,2024-03-05,3,crypto,no\n")
    report = _ingest(source)
    assert (report.rows_out, report.rows_quarantined) == (3, 0)
    assert report.unseen_categories == {"industry": 2}
    assert report.mapped_categories == {"industry": 1}
    assert pd.read_parquet(report.output)["industry"].tolist() == ["crypto", "fintech", "crypto"]


def test_missing_spec_columns_raise_naming_them(tmp_path):
    source = tmp_path / "leads.csv"
    source.write_text("lead_id,created_at,industry\nL1,2024-03-05,saas\n")
    with pytest.raises(ValueError, match=re.escape("lacks spec columns ['converted', 'revenue']")):
        _ingest(source)


def test_extra_columns_are_reported_as_ignored_not_rejected(tmp_path):
    source = tmp_path / "leads.csv"
    source.write_text("owner_email," + HEADER + "ana@example.com,L1,2024-03-05,1,saas,yes\n")
    report = _ingest(source)
    assert report.ignored_columns == ["owner_email"]
    assert report.rows_out == 1
    assert "owner_email" not in pd.read_parquet(report.output).columns


def test_lines_with_the_wrong_field_count_are_quarantined_with_their_raw_text(tmp_path):
    too_many = 'L2,2024-03-05,"$1,200",saas,yes,"Acme, Inc"'
    too_few = "L3,2024-03-05,7"
    source = _write(tmp_path, f"L1,2024-03-05,1,saas,yes\n{too_many}\n{too_few}\nL4,2024-03-05,2,saas,no\n")
    report = _ingest(source)
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (4, 2, 2)
    quarantine = _quarantine(report)
    assert quarantine[["_record", "_reason", "_raw_line"]].to_dict("list") == {
        "_record": ["2", "3"],
        "_reason": ["expected 5 fields, found 6 (line 3)", "expected 5 fields, found 3 (line 4)"],
        "_raw_line": [too_many, too_few],
    }


def test_quoted_commas_and_newlines_stay_inside_one_field(tmp_path):
    body = 'L1,2024-03-05,"1,200","saas",yes\nL2,2024-03-05,5,"fin\ntech",no\nL3,2024-03-05,6,saas,yes,extra\n'
    source = _write(tmp_path, body)
    raw = read_raw(source)
    assert raw.frame["industry"].tolist() == ["saas", "fin\ntech"]
    assert raw.records.tolist() == [1, 2]
    assert raw.malformed["_reason"].tolist() == ["expected 5 fields, found 6 (line 5)"]
    report = _ingest(source)
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (3, 2, 1)
    assert pd.read_parquet(report.output)["industry"].tolist() == ["saas", "fintech"]
    assert _quarantine(report)["_record"].tolist() == ["3"]


def test_records_know_their_physical_lines_and_those_spanning_lines_are_counted(tmp_path):
    body = ('L1,2024-03-05,1,saas,yes\nL2,2024-03-05,"5,fintech,no\nL3,2024-03-05,6,saas,yes\nL4",x\n'
            "L5,2024-03-05,2,saas,no\n")  # fmt: skip
    raw = read_raw(_write(tmp_path, body))  # a stray quote merges lines 3-5 into one record
    assert raw.records.tolist() == [1, 3] and raw.lines.tolist() == ["2", "6"]
    assert raw.malformed[["_record", "_line"]].to_dict("list") == {"_record": [2], "_line": ["3-5"]}
    assert raw.spanning_lines() == 1
    report = _ingest(_write(tmp_path, body))
    assert report.records_spanning_lines == 1
    assert _quarantine(report)[["_record", "_line"]].to_dict("list") == {"_record": ["2"], "_line": ["3-5"]}


def test_a_line_that_is_not_utf8_or_holds_a_huge_field_is_quarantined_not_an_abort(tmp_path):
    source = tmp_path / "leads.csv"
    huge = "x" * (csv.field_size_limit() + 1)
    source.write_bytes(HEADER.encode() + b"L1,2024-03-05,1,saas,yes\nL2,2024-03-05,1,s\xffaas,yes\n"
                       + f"L3,2024-03-05,1,{huge},yes\nL4,2024-03-05,2,saas,no\n".encode())  # fmt: skip
    report = _ingest(source)
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (4, 2, 2)
    quarantine = _quarantine(report)
    assert quarantine["_record"].tolist() == ["2", "3"] and quarantine["_line"].tolist() == ["3", "4"]
    assert quarantine["_reason"][0] == "not valid UTF-8 (line 3)"
    assert quarantine["_raw_line"][0] == "L2,2024-03-05,1,s\ufffdaas,yes"
    assert quarantine["_reason"][1].startswith("unreadable CSV: field larger than field limit")


def test_a_failed_ingest_leaves_no_output_and_keeps_the_previous_one(tmp_path):
    source = _write(tmp_path, "L1,2024-03-05,1,saas,yes\n")
    report = _ingest(source)
    before = report.output.read_bytes()
    with pytest.raises(ValueError, match="lacks spec columns"):
        _ingest(source, DatasetSpec.model_validate({**SPEC.model_dump(), "numeric": ["revenue", "absent"]}))
    assert report.output.read_bytes() == before
    assert not list(report.output.parent.glob(".*partial"))


def test_gzip_csv_reads_like_plain_csv(tmp_path):
    text = HEADER + "L1,2024-03-05,1,saas,yes\n"
    for name in ("leads.csv.gz", "LEADS.CSV.GZ"):
        with gzip.open(tmp_path / name, "wt") as handle:
            handle.write(text)
        frame = read_raw(tmp_path / name).frame
        assert frame.to_dict("records") == [
            {"lead_id": "L1", "created_at": "2024-03-05", "revenue": "1", "industry": "saas", "converted": "yes"}
        ]


def test_parquet_numeric_columns_pass_through(tmp_path):
    source = tmp_path / "leads.parquet"
    frame = pd.DataFrame(
        {
            "lead_id": ["L1", "L2"],
            "created_at": pd.to_datetime(["2024-03-05", "2024-03-06"]),
            "revenue": [1200.5, -1.0],
            "industry": ["saas", "fintech"],
            "converted": [1, 0],
        }
    )
    frame.to_parquet(source)
    report = ingest_file(source, SPEC.model_copy(update={"positive_label": "1"}), tmp_path / "out.parquet")
    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (2, 1, 1)
    assert pd.read_parquet(report.output)["revenue"].tolist() == [1200.5]
    assert _quarantine(report)["_reason"].tolist() == ["revenue: -1 is below the minimum 0"]


@pytest.mark.parametrize("name", ["leads.xlsx", "leads.json", "leads"])
def test_unsupported_file_type_is_rejected(tmp_path, name):
    (tmp_path / name).write_text(HEADER)
    with pytest.raises(ValueError, match="unsupported file type"):
        read_raw(tmp_path / name)


def test_empty_file_is_rejected(tmp_path):
    (tmp_path / "leads.csv").write_text("")
    with pytest.raises(ValueError, match="is empty: expected a header row"):
        read_raw(tmp_path / "leads.csv")


EXPECTED_REASONS = re.compile(
    r"[a-z_]+: cannot read '.*' as a number"
    r"|[a-z_]+: -?[\d.e+]+ is below the minimum 0"
    r"|created_at: cannot read '.*' as a date"
    r"|(lead_id|converted|created_at): is missing"
    r"|lead_id: duplicate id '.*' \(the first row with it was kept\)"
    r"|[a-z_]+: '.*' is not one of \[.*\]"
    r"|expected \d+ fields, found \d+ \(line \d+\)"
)


def test_synthetic_messy_export_is_fully_accounted_for(tmp_path):
    source = tmp_path / "leads.csv"
    write_leads(WorldConfig(rows=3000, seed=1), source, messy=True)
    spec = infer_spec(read_raw(source).frame, "converted", exclude=EXTRA_COLUMNS)
    report = ingest_file(source, spec, tmp_path / "leads.parquet")

    assert report.rows_in == 3000
    assert report.rows_in == report.rows_out + report.rows_quarantined
    assert 0 < report.rows_quarantined < 30
    assert sorted(report.ignored_columns) == sorted(EXTRA_COLUMNS)
    assert report.mapped_categories, "the export misspells about 1% of categories"
    quarantine = _quarantine(report)
    assert len(quarantine) == report.rows_quarantined
    assert quarantine["_record"].astype(int).is_unique
    assert quarantine["_record"].astype(int).between(1, 3000).all()
    reasons = [part for reason in quarantine["_reason"] for part in reason.split("; ")]
    assert all(reasons), quarantine
    unexpected = [r for r in reasons if not EXPECTED_REASONS.fullmatch(r)]
    assert unexpected == []
    assert any(r.startswith("expected 18 fields") for r in reasons)
    rows = pd.read_parquet(report.output)
    assert len(rows) == report.rows_out
    assert rows["lead_id"].is_unique
    assert rows["converted"].isin([0, 1]).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('id,revenue,industry\nL1,"1,5",saas\nL2,3,retail\n', ","),
        ("id;revenue;industry\nL1;1,5;saas\nL2;1.234,56 €;retail\n", ";"),
        ("id\trevenue\nL1\t1,5\n", "\t"),
        ("id|revenue\nL1|1;5\n", "|"),
        ("id\nL1\n", ","),
    ],
)
def test_the_delimiter_is_the_one_that_splits_every_record_like_the_header(tmp_path, text, expected):
    assert detect_delimiter(text.splitlines(keepends=True)) == expected
    with gzip.open(tmp_path / "export.csv.gz", "wt") as handle:
        handle.write(text)
    assert sniff_delimiter(tmp_path / "export.csv.gz") == expected


def test_a_semicolon_export_is_read_by_the_spec_format_and_quarantined_as_written(tmp_path):
    eu = DatasetSpec.model_validate({**SPEC.model_dump(), "format": {"delimiter": ";", "decimal": ","}})
    source = tmp_path / "leads.csv"
    source.write_text(HEADER.replace(",", ";") + "L1;2024-03-05;1.234,5 €;saas;ja\nL2;2024-03-05;7;saas\n")
    report = _ingest(source, eu.model_copy(update={"positive_label": "ja"}))
    assert (report.rows_out, report.rows_quarantined) == (1, 1)
    assert pd.read_parquet(report.output)["revenue"].tolist() == [1234.5]
    assert _quarantine(report)["_raw_line"].tolist() == ["L2;2024-03-05;7;saas"]


def test_training_loads_an_ingested_file_as_written_and_reads_a_raw_export_once(tmp_path):
    source = _write(tmp_path, "L1,2024-03-05,1.2k,SaaS,yes\nL2,2024-03-05,-1,saas,no\nL3,2024-03-05,2,saas,no\n")
    report = _ingest(source)
    rows, rejected = read_rows(report.output, SPEC)
    pd.testing.assert_frame_equal(rows, pd.read_parquet(report.output))
    assert rejected == report.rows_quarantined == 1
    raw_rows, raw_rejected = read_rows(source, SPEC)
    pd.testing.assert_frame_equal(raw_rows, rows)
    assert raw_rejected == 1


def test_an_ingested_file_is_not_read_again_under_another_spec(tmp_path):
    report = _ingest(_write(tmp_path, "L1,2024-03-05,1,saas,yes\n"))
    with pytest.raises(ValueError, match="was ingested with another spec: ingest the export again with this one"):
        read_rows(report.output, SPEC.model_copy(update={"positive_label": "no"}))
