"""The benchmarks' real tables load offline from their packages with the documented shape and positive rate."""

import pytest

from benchmarks.tables import LOADERS

DOCUMENTED = {  # rows, columns (target included), positive rate
    "adult": (32_561, 15, 0.241),
    "credit": (4_454, 14, 0.282),
    "caravan": (5_822, 86, 0.060),
    "lending": (9_857, 23, 0.052),
    "resumes": (4_870, 27, 0.080),
}


def test_every_loader_is_documented():
    assert set(LOADERS) == set(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_table_shape_and_positive_rate(name):
    table = LOADERS[name]()
    rows, columns, rate = DOCUMENTED[name]
    assert table.frame.shape == (rows, columns)
    assert "rownames" not in table.frame.columns
    labels = table.frame[table.target]
    assert labels.notna().all()
    assert (labels == table.positive_label).mean() == pytest.approx(rate, abs=0.0005)
