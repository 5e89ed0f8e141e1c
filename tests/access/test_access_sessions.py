"""Parking sessions: entry/exit pairing, occupancy and the persisted shape."""

import json

import pytest

from edge.access import Decision, Direction, Flag, Presence, Reason, apply_pass
from edge.access.sessions import presence_from_dict, presence_to_dict

C1, C2 = "0x" + "11" * 32, "0x" + "22" * 32


def allowed(commitment: str | None, booking_id: str | None = "b1", flags: tuple = ()) -> Decision:
    return Decision(True, Reason.BOOKING_VALID, None, booking_id, None, commitment, 0.0, flags)


def test_entry_then_exit_pairs_a_session() -> None:
    p, none = apply_pass(Presence(), allowed(C1), Direction.ENTRY, 1000, "in-1")
    assert none is None and p.occupancy == 1 and p.is_inside(C1)
    p, done = apply_pass(p, allowed(C1, None, (Flag.OVERSTAY,)), Direction.EXIT, 61_000, "out-1")
    assert done is not None
    assert (done.commitment, done.booking_id, done.entry_lane, done.exit_lane, done.duration_ms) == (
        C1, "b1", "in-1", "out-1", 60_000)
    assert done.flags == (Flag.OVERSTAY,)
    assert p.occupancy == 0


def test_reentry_does_not_double_count() -> None:
    p = Presence()
    for t in (1, 2):
        p, _ = apply_pass(p, allowed(C1, flags=(Flag.PASSBACK_VIOLATION,)), Direction.ENTRY, t, "in")
    assert p.occupancy == 1 and p.inside[C1].entered_ms == 2


def test_anonymous_entries_count_and_unknown_exits_uncount() -> None:
    p, _ = apply_pass(Presence(), allowed(None, None), Direction.ENTRY, 1, "in")
    p, _ = apply_pass(p, allowed(C2), Direction.ENTRY, 2, "in")
    assert p.occupancy == 2
    p, done = apply_pass(p, allowed(C1), Direction.EXIT, 3, "out")
    assert done is None and p.occupancy == 1 and p.anonymous == 0
    p, _ = apply_pass(p, allowed(C1), Direction.EXIT, 4, "out")
    assert p.anonymous == 0 and p.occupancy == 1


def test_persisted_shape_round_trips_through_json() -> None:
    flagged = allowed(C1, flags=(Flag.PASSBACK_VIOLATION,))
    p, _ = apply_pass(Presence(anonymous=2), flagged, Direction.ENTRY, 5, "in")
    data = json.loads(json.dumps(presence_to_dict(p)))
    assert data["version"] == 1 and data["anonymous"] == 2
    assert data["inside"][C1] == {"booking_id": "b1", "entered_ms": 5, "entry_lane": "in",
                                  "flags": ["passback_violation"]}
    assert presence_from_dict(data) == p


@pytest.mark.parametrize("data, fragment", [
    ({"version": 2}, "version 2"),
    ({"version": 1, "anonymous": -1}, "anonymous"),
    ({"version": 1, "inside": {C1: {"booking_id": None}}}, "malformed"),
    ({"version": 1, "inside": {C1: {"booking_id": None, "entered_ms": 1, "entry_lane": "x", "flags": ["?"]}}},
     "malformed"),
])
def test_bad_persisted_state_is_named(data: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        presence_from_dict(data)
