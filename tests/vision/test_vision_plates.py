import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.vision import plates


def test_normalise_drops_separators_and_uppercases():
    assert plates.normalise(" ab-123·cd.e ") == "AB123CDE"


def test_fold_lookalikes_maps_o_and_i_only():
    assert plates.fold_lookalikes("OI0 1-b") == "01018".replace("8", "B")


def test_fit_pattern_fixes_letters_and_digits_by_position():
    assert plates.fit_pattern("ABC1O34", plates.region_patterns("br")) == "ABC1034"
    assert plates.fit_pattern("A8C1234", plates.region_patterns("br")) == "ABC1234"


def test_fit_pattern_keeps_text_that_already_matches_or_cannot_be_fixed():
    assert plates.fit_pattern("ABC1D23", ("AAA9A99",)) == "ABC1D23"
    assert plates.fit_pattern("AB", ("AAA9999",)) == "AB"
    assert plates.fit_pattern("ABCXXXX", ("AAA9999",)) == "ABCXXXX"


def test_matches_checks_length_and_classes():
    assert plates.matches("PP587AO", "AA999AA")
    assert not plates.matches("PP587A0", "AA999AA")
    assert not plates.matches("PP587", "AA999AA")


def test_unknown_region_names_allowed_codes():
    with pytest.raises(ValueError, match="allowed: any, br, hr"):
        plates.region_patterns("xx")


@given(st.text(max_size=30))
def test_normalise_is_idempotent_and_alnum(text):
    once = plates.normalise(text)
    assert plates.normalise(once) == once
    assert all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for c in once)
