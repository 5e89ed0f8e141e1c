"""Plate tracks over an approach (edge.vision.tracks): pure, plain data."""

from __future__ import annotations

import pytest

from edge.vision.tracks import Tracks, TrackSettings, Why, choose, confirm, observe, same_plate
from edge.vision.types import PlateRead

SETTINGS = TrackSettings(window_s=3.0, min_votes=2)


def read(text: str, box: tuple[float, float, float, float], conf: float = 0.9,
         chars: tuple[float, ...] | None = None) -> PlateRead:
    return PlateRead(text, conf, chars or tuple(conf for _ in text), box)


def approach(text: str, frames: int = 10, start: float = 0.0, x: float = 400.0, step_s: float = 0.1,
             tracks: Tracks | None = None, misread: dict[int, str] | None = None, first: int = 0) -> Tracks:
    """A car driving up: its plate box grows from 60 to about 150 px wide, moving down the frame (from
    its ``first`` frame on)."""
    tracks = tracks or Tracks()
    for i in range(first, first + frames):
        width = 60 + 10 * i
        box = (x - width / 2, 200 + 15 * i, x + width / 2, 200 + 15 * i + width / 4)
        at = start + (i - first) * step_s
        tracks = observe(tracks, [read((misread or {}).get(i, text), box)], at, SETTINGS)
    return tracks


def test_one_car_approaching_is_one_track_that_decides():
    tracks = approach("AB123CD")
    assert len(tracks.tracks) == 1 and len(tracks.tracks[0].sightings) == 10
    choice = choose(tracks, 1.2, SETTINGS)
    assert choice.why is Why.APPROACH and choice.read is not None and choice.read.text == "AB123CD"


def test_the_approach_votes_out_single_frame_misreads():
    tracks = approach("AB123CD", misread={1: "AB128CD", 4: "A8123CD", 7: "AB123C0"})
    choice = choose(tracks, 1.0, SETTINGS)
    assert len(tracks.tracks) == 1  # misreads of a character join the track
    assert choice.why is Why.APPROACH and choice.read.text == "AB123CD"
    assert min(choice.read.char_confidences) < 0.9  # the positions read differently are less sure


def test_per_character_confidences_come_from_the_whole_approach():
    tracks = Tracks()
    for i, conf in enumerate((0.6, 0.7, 0.95)):
        box = (100.0, 100.0 + i, 160.0 + 10 * i, 120.0 + i)
        tracks = observe(tracks, [read("XY12", box, conf)], i * 0.1, SETTINGS)
    choice = choose(tracks, 0.3, SETTINGS)
    assert choice.read.char_confidences == pytest.approx((0.75,) * 4)  # the mean of the three reads


def test_a_track_older_than_the_window_is_stale():
    tracks = approach("AB123CD")
    assert choose(tracks, 0.9 + 3.01, SETTINGS).why is Why.STALE
    assert choose(Tracks(), 1.0, SETTINGS).why is Why.NO_TRACK


def test_a_car_that_turned_away_has_left():
    tracks = approach("AB123CD")
    tracks = observe(tracks, [], 1.0, SETTINGS)  # the frame read after it moved shows no plate
    choice = choose(tracks, 1.1, SETTINGS)
    assert choice.why is Why.LEFT


def test_with_a_tolerance_a_missed_frame_is_not_yet_gone():
    tolerant = TrackSettings(miss_frames=3)
    tracks = approach("AB123CD")
    for i in range(2):
        tracks = observe(tracks, [], 1.0 + i * 0.1, tolerant)
    assert choose(tracks, 1.3, tolerant).why is Why.APPROACH
    assert choose(observe(tracks, [], 1.3, tolerant), 1.4, tolerant).why is Why.LEFT


def test_two_cars_close_together_are_ambiguous():
    """The first car turned off just before the loop, the second drove up behind it: which one is at
    the loop is not the tracks' call."""
    tracks = approach("AB123CD", frames=6)
    tracks = approach("XY987ZW", frames=6, start=0.8, x=700.0, tracks=tracks)
    assert len(tracks.tracks) == 2
    choice = choose(tracks, 1.5, SETTINGS)
    assert choice.why is Why.AMBIGUOUS


def test_another_plate_at_the_same_place_starts_its_own_track():
    tracks = approach("AB123CD", frames=5)
    box = tracks.tracks[0].sightings[-1].read.box
    tracks = observe(tracks, [read("XY987ZW", box)], 0.5, SETTINGS)
    assert [t.text for t in tracks.tracks] == ["AB123CD", "XY987ZW"]
    assert choose(tracks, 0.6, SETTINGS).why is Why.FEW_READS


def test_a_far_plate_misread_for_a_while_is_the_same_car():
    """The first frames of an approach read the small plate wrong (another text, three times), then the
    right text takes over where the wrong one ended: one car, and its approach decides."""
    tracks = approach("B1177B", frames=3)
    tracks = approach("BN107BX", frames=8, start=0.3, tracks=tracks, first=3)
    assert [t.text for t in tracks.tracks] == ["B1177B", "BN107BX"]
    choice = choose(tracks, 1.2, SETTINGS)
    assert choice.why is Why.APPROACH and choice.read.text == "BN107BX"


def test_a_plate_gone_for_a_frame_then_another_where_it_was_is_a_second_car():
    tracks = approach("AB123CD", frames=5)
    box = tracks.tracks[0].sightings[-1].read.box
    tracks = observe(tracks, [], 0.5, SETTINGS)  # the first car turned off: a frame without plates
    for i in range(3):
        tracks = observe(tracks, [read("XY987ZW", box)], 0.6 + i * 0.1, SETTINGS)
    assert choose(tracks, 1.0, SETTINGS).why is Why.AMBIGUOUS


def test_two_plates_seen_at_once_are_two_cars():
    tracks = Tracks()
    for i in range(5):
        near = (340.0 - 5 * i, 300.0 + 10 * i, 460.0 + 5 * i, 330.0 + 10 * i)
        far = (600.0, 150.0, 650.0 + i, 162.0)
        tracks = observe(tracks, [read("AB123CD", near), read("XY987ZW", far)], i * 0.1, SETTINGS)
    assert choose(tracks, 0.5, SETTINGS).why is Why.AMBIGUOUS


def test_one_stray_read_of_another_plate_is_not_a_second_car():
    """A distant plate misread once early in the approach: too little to call the approach ambiguous."""
    tracks = observe(Tracks(), [read("K49G", (380.0, 200.0, 440.0, 215.0), 0.6)], 0.0, SETTINGS)
    tracks = approach("IK643CG", start=0.1, tracks=tracks)
    assert len(tracks.tracks) == 2
    assert choose(tracks, 1.2, SETTINGS).read.text == "IK643CG"


def test_the_same_plate_far_away_in_the_frame_is_another_track():
    tracks = approach("AB123CD", frames=3)
    tracks = observe(tracks, [read("AB123CD", (900.0, 50.0, 960.0, 65.0))], 0.3, SETTINGS)
    assert len(tracks.tracks) == 2
    assert choose(tracks, 0.4, SETTINGS).why is Why.FEW_READS  # the newest track has one read


def test_an_old_car_out_of_the_window_does_not_make_the_next_ambiguous():
    tracks = approach("AB123CD", frames=5)
    tracks = approach("XY987ZW", frames=8, start=5.0, x=700.0, tracks=tracks)
    assert [t.text for t in tracks.tracks] == ["XY987ZW"]  # dropped: older than the window
    assert choose(tracks, 5.8, SETTINGS).read.text == "XY987ZW"


def test_a_receding_plate_does_not_decide():
    tracks = Tracks()
    for i in range(5):
        width = 150 - 15 * i
        tracks = observe(tracks, [read("AB123CD", (400 - width / 2, 300.0, 400 + width / 2, 340.0))],
                         i * 0.1, SETTINGS)
    assert choose(tracks, 0.5, SETTINGS).why is Why.RECEDING


def test_box_jitter_of_an_approaching_plate_is_no_retreat():
    tracks = Tracks()
    for i, width in enumerate((100, 128, 123, 157, 143, 165, 140)):  # read boxes of one approach
        tracks = observe(tracks, [read("ZW771QP", (400 - width / 2, 300.0, 400 + width / 2, 330.0))],
                         i * 0.1, SETTINGS)
    assert choose(tracks, 0.7, SETTINGS).why is Why.APPROACH


def test_a_car_read_only_as_it_stopped_decides():
    """A busy reader: the first read took long (the far plate, a track of its own), then two reads of
    the stopped car whose second box came out 11 % narrower (seen on the daemon's rendered approach)."""
    tracks = Tracks()
    for i, width in ((0, 61), (15, 227), (19, 202)):
        box = (450 - width / 2, 290 + i * 3, 450 + width / 2, 300 + i * 3 + width / 4)
        tracks = observe(tracks, [read("AB123CD", box)], i * 0.1, SETTINGS)
    choice = choose(tracks, 2.1, SETTINGS)
    assert choice.why is Why.APPROACH and choice.read is not None and choice.read.text == "AB123CD"


def test_one_read_is_too_few():
    tracks = approach("AB123CD", frames=1)
    assert choose(tracks, 0.1, SETTINGS).why is Why.FEW_READS


def test_unsure_reads_join_a_track_but_start_none():
    tracks = observe(Tracks(), [read("ZZ12", (10.0, 10.0, 40.0, 20.0), conf=0.2)], 0.0, SETTINGS)
    assert tracks.tracks == ()
    fragment = observe(Tracks(), [read("24", (10.0, 10.0, 40.0, 20.0), conf=0.9)], 0.0, SETTINGS)
    assert fragment.tracks == ()  # too short for a plate: a piece of a sign
    tracks = approach("AB123CD", frames=3)
    last = tracks.tracks[0].sightings[-1].read.box
    tracks = observe(tracks, [read("AB123CD", last, conf=0.3), read("QQ", (0.0, 0.0, 9.0, 3.0), 0.2)], 0.3,
                     SETTINGS)
    assert len(tracks.tracks) == 1 and len(tracks.tracks[0].sightings) == 4


def test_memory_is_bounded():
    settings = TrackSettings(max_tracks=3, max_sightings=5)
    tracks = Tracks()
    for i in range(50):
        reads = [read(f"P{i}X{k}AB", (100.0 * k, 10.0 * i, 100.0 * k + 60, 10.0 * i + 15)) for k in range(4)]
        tracks = observe(tracks, reads, i * 0.01, settings)
    assert len(tracks.tracks) <= 3
    tracks = approach("AB123CD", frames=30)
    assert all(len(t.sightings) <= SETTINGS.max_sightings for t in tracks.tracks)
    capped = Tracks()
    for i in range(20):
        capped = observe(capped, [read("AB123CD", (100.0, 100.0, 160.0 + i, 115.0))], i * 0.1, settings)
    assert len(capped.tracks[0].sightings) == 5


def test_empty_texts_are_ignored():
    tracks = observe(Tracks(), [read("", (0.0, 0.0, 10.0, 5.0))], 0.0, SETTINGS)
    assert tracks.tracks == ()


@pytest.mark.parametrize(("a", "b", "same"), [("AB123CD", "AB123CD", True), ("AB123CD", "AB128CD", True),
                                              ("AB123CD", "A8128C0", False), ("AB123CD", "", False)])
def test_same_plate(a, b, same):
    assert same_plate(a, b, 0.7) is same


def test_the_frame_in_view_confirms_a_track_that_moved_on():
    tracks = approach("AB123CD", frames=6)
    track = tracks.tracks[0]
    last = track.sightings[-1].read.box
    closer = (last[0] - 10, last[1] + 15, last[2] + 10, last[3] + 20)
    choice = confirm(track, [read("AB123CD", closer)], 0.8, 0.9, SETTINGS)
    assert choice.why is Why.APPROACH and choice.read.text == "AB123CD"
    assert len(choice.track.sightings) == 7  # the confirming read votes too


def test_one_read_and_its_confirmation_are_two_votes():
    track = approach("AB123CD", frames=1).tracks[0]
    assert choose(Tracks((track,)), 0.1, SETTINGS).why is Why.FEW_READS
    box = track.sightings[-1].read.box
    assert confirm(track, [read("AB123CD", box)], 0.2, 0.3, SETTINGS).why is Why.APPROACH


@pytest.mark.parametrize("seen", [
    [],  # the car is gone
    [("XY987ZW", 0)],  # another car where it was
    [("AB123CD", 400)],  # the same text far away: not this car
    [("AB123CD", 0), ("XY987ZW", 300)],  # the car, and another one in view
])
def test_the_frame_in_view_must_show_the_car_and_only_it(seen):
    track = approach("AB123CD", frames=6).tracks[0]
    last = track.sightings[-1].read.box
    reads = [read(text, (last[0] + dx, last[1], last[2] + dx, last[3])) for text, dx in seen]
    assert confirm(track, reads, 0.8, 0.9, SETTINGS).why is Why.UNCONFIRMED


@pytest.mark.parametrize(("at", "now"), [
    (0.5, 0.6),  # the frame of the track's last read, still in view: a frozen camera
    (0.4, 0.6),  # an older frame
    (0.8, 3.0),  # a newer frame, but 2.2 s old at the trigger: the camera froze after it
])
def test_only_a_fresh_frame_newer_than_the_last_read_confirms(at, now):
    """The car's plate in the frame 'in view now' confirms the track only when that frame is newer than the
    track's last read and at most ``max_frame_age_s`` old: a frozen camera shows the car's last frame."""
    track = approach("AB123CD", frames=6).tracks[0]
    assert track.last_seen == pytest.approx(0.5)
    box = track.sightings[-1].read.box
    assert confirm(track, [read("AB123CD", box)], at, now, SETTINGS).why is Why.UNCONFIRMED
    assert confirm(track, [read("AB123CD", box)], 0.8, 0.79 + SETTINGS.max_frame_age_s, SETTINGS).why \
        is Why.APPROACH
