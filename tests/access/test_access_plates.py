"""OCR-confusion candidate generation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.access.plates import DEFAULT_TABLE, ConfusionTable, candidates


def test_candidates_start_with_read_then_cheapest_swaps() -> None:
    got = list(candidates("B0", DEFAULT_TABLE, 0.5, 10))
    assert [(c.plate, c.distance) for c in got] == [("B0", 0.0), ("80", 0.5), ("BO", 0.5)]


def test_candidates_combine_swaps_up_to_max_distance() -> None:
    plates = {c.plate: c.distance for c in candidates("B0", DEFAULT_TABLE, 1.0, 100)}
    assert plates["8O"] == 1.0
    assert "8D" not in plates  # 0.5 + 0.8 > 1.0


def test_zero_distance_means_exact_only() -> None:
    assert [c.plate for c in candidates("SO8", DEFAULT_TABLE, 0.0, 100)] == ["SO8"]


def test_custom_table_is_symmetric_and_validated() -> None:
    table = ConfusionTable.from_pairs([("A", "4", 0.3)])
    assert table.alternatives == {"A": (("4", 0.3),), "4": (("A", 0.3),)}
    for bad in [("A", "A", 1.0), ("AB", "4", 1.0), ("A", "4", 0.0), ("A", "#", 1.0)]:
        with pytest.raises(ValueError, match="confusion pair"):
            ConfusionTable.from_pairs([bad])


@given(plate=st.text(alphabet="0O1I8B5S2Z6GDQAXY", min_size=1, max_size=10),
       max_distance=st.floats(0, 3), max_count=st.integers(1, 80))
def test_candidates_are_bounded_unique_ordered_substitutions(plate: str, max_distance: float,
                                                             max_count: int) -> None:
    got = list(candidates(plate, DEFAULT_TABLE, max_distance, max_count))
    assert got[0].plate == plate and got[0].distance == 0.0
    assert len(got) <= max_count
    assert len({c.plate for c in got}) == len(got)
    assert [c.distance for c in got] == sorted(c.distance for c in got)
    for c in got:
        assert c.distance <= max_distance + 1e-9 and len(c.plate) == len(plate)
        cost = sum(dict(DEFAULT_TABLE.alternatives.get(a, ()))[b] for a, b in zip(plate, c.plate, strict=True)
                   if a != b)
        assert c.distance == pytest.approx(cost)
