import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.identity import LOOKALIKES, normalise_plate
from edge.vision import plates


def test_normalise_drops_separators_and_uppercases():
    assert plates.normalise(" ab-123·cd.e ") == "AB123CDE"


def test_fold_lookalikes_maps_o_and_i_only():
    assert plates.fold_lookalikes("OI0 1-b") == "01018".replace("8", "B")


def test_matches_checks_length_and_classes():
    assert plates.matches("PP587AO", "AA999AA")
    assert not plates.matches("PP587A0", "AA999AA")
    assert not plates.matches("PP587", "AA999AA")


def test_unknown_region_names_allowed_codes():
    with pytest.raises(
        ValueError, match=r"unknown plate region 'xx' in 'sk,xx'; allowed .*: any, br, eu, us, at"
    ):
        plates.region_patterns("sk,xx")


def test_regions_join_with_commas_and_any_adds_nothing():
    assert plates.region_patterns("sk, cz") == ("AA999AA", "9A*9999")
    assert plates.region_patterns("any") == () and plates.region_patterns("us") == ()
    assert set(plates.region_patterns("sk,cz")) <= set(plates.region_patterns("eu"))


@given(st.text(max_size=30))
def test_normalise_is_idempotent_and_alnum(text):
    once = plates.normalise(text)
    assert plates.normalise(once) == once
    assert all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for c in once)


ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"


def rows_for(
    text: str, sure: float = 0.97, second: dict[int, tuple[str, float]] | None = None
) -> list[list[float]]:
    """Probability rows of a read: each character at `sure`, optionally a runner-up per position."""
    rows = []
    for position, char in enumerate(text):
        row = [0.0] * len(ALPHABET)
        row[ALPHABET.index(char)] = sure
        if second and position in second:
            other, p = second[position]
            row[ALPHABET.index(other)] = p
        rest = (1 - sum(row)) / row.count(0.0)
        rows.append([p or rest for p in row])
    return rows


def test_fit_layout_drops_an_emblem_read_as_a_letter_and_a_frame_edge():
    fit = plates.fit_layout(rows_for("BRK857AI8"), ALPHABET, plates.region_patterns("sk"))
    assert fit is not None and fit.text == "RK857AI" and fit.pattern == "AA999AA"


def test_fit_layout_turns_a_digit_into_the_letter_the_layout_needs():
    fit = plates.fit_layout(
        rows_for("RK896A0", second={6: ("O", 0.02)}), ALPHABET, plates.region_patterns("sk")
    )
    assert fit is not None and fit.text == "RK896AO"
    assert fit.char_confidences[6] < 0.9  # the letter was the runner-up: the fit says so


def test_fit_layout_leaves_reads_that_fit_no_layout():
    assert plates.fit_layout(rows_for("WOBVWMK4"), ALPHABET, plates.region_patterns("sk")) is None
    assert plates.fit_layout(rows_for("AB123CD"), ALPHABET, ()) is None


@given(st.text(alphabet=ALPHABET[:-1], min_size=1, max_size=9), st.sampled_from(["eu", "br", "sk,cz"]))
def test_fit_layout_result_always_matches_its_layout(text, region):
    fit = plates.fit_layout(rows_for(text, sure=0.6), ALPHABET, plates.region_patterns(region))
    assert fit is None or (
        plates.matches(fit.text, fit.pattern) and len(fit.char_confidences) == len(fit.text)
    )


@given(st.text(max_size=30))
def test_the_ocr_edge_uses_the_one_normaliser_leniently(text):
    """`plates.normalise` is `identity.normalise_plate(lenient=True)`: where the strict use accepts a
    plate both agree; where it refuses one (a stray mark, nothing left) the lenient use drops the marks."""
    lenient = plates.normalise(text)
    assert lenient == normalise_plate(text, lenient=True)
    try:
        strict = normalise_plate(text)
    except ValueError:
        return
    assert strict == lenient


def test_odd_characters_are_dropped_at_the_ocr_edge_and_refused_elsewhere():
    assert plates.normalise("AB€12") == "AB12"
    with pytest.raises(ValueError, match="U\\+20AC"):
        normalise_plate("AB€12")


def test_folds_come_from_the_one_lookalike_table():
    assert ("0", "O", 0.5) in LOOKALIKES and ("1", "I", 0.5) in LOOKALIKES
    assert str.maketrans({"O": "0", "I": "1"}) == plates.FOLDS
