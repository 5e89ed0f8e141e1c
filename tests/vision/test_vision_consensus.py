import pytest

from edge.vision.consensus import agree, consensus
from edge.vision.reader import PlateRead


def read(text: str, *confs: float) -> PlateRead:
    confs = confs or tuple(0.9 for _ in text)
    return PlateRead(text, min(confs), tuple(confs))


def test_majority_wins_per_character():
    result = consensus([read("AB123"), read("AB128"), read("A8123")])
    assert result is not None and result.text == "AB123"
    assert result.char_confidences[0] == pytest.approx(0.9)
    assert result.char_confidences[1] < 0.9  # one frame disagreed


def test_confident_minority_beats_unsure_majority_at_a_position():
    result = consensus([read("AB1", 0.9, 0.3, 0.9), read("AB1", 0.9, 0.3, 0.9), read("A81", 0.9, 0.95, 0.9)])
    assert result.text == "A81"


def test_length_chosen_by_weighted_vote():
    result = consensus([read("AB12"), read("AB123"), read("AB123"), read("B123", 0.2, 0.2, 0.2, 0.2)])
    assert result.text == "AB123"


def test_none_when_too_few_usable_reads():
    assert consensus([]) is None
    assert consensus([read("AB1")], min_votes=2) is None
    assert consensus([PlateRead("", 0.0, ())]) is None
    assert consensus([PlateRead("AB", 0.5, (0.5,))]) is None  # inconsistent char confidences


def test_single_read_is_returned_as_is():
    result = consensus([read("XY9", 0.8, 0.7, 0.9)])
    assert result.text == "XY9" and result.confidence == pytest.approx(0.7)


def test_agree_votes_whole_texts_weighted_by_confidence():
    reads = [read("AB123", 0.9), read("AB123", 0.6), read("XAB123", 0.95), read("", 0.0)]
    best, support = agree(reads)
    assert best.text == "AB123" and best.confidence == pytest.approx(0.9)
    assert support == pytest.approx((0.9 + 0.6) / 4)


def test_agree_is_none_without_any_text():
    assert agree([read("", 0.0)]) is None and agree([]) is None
