"""The access decision over bookings, lists, presence, capacity and overrides."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.access import (
    AntiPassback,
    BookingStatus,
    BookingView,
    Decision,
    Direction,
    Flag,
    Override,
    PlateRead,
    Policy,
    Presence,
    Reason,
    apply_pass,
    commitment_function,
    committed_candidates,
    decide,
)
from edge.config import PolicyConfig
from edge.identity import plate_commitment
from edge.tools.access_bench import main as bench_main

LOT = "LOT-7"
SECRET = b"test-lot-secret-32-bytes-long..."
H = 3_600_000
NOW = 1_790_000_000_000


commit = commitment_function(SECRET, LOT)


def booking(plate: str, bid: str = "b1", start: int = NOW - H, end: int = NOW + H,
            status: BookingStatus = BookingStatus.VERIFIED, lot: str = LOT) -> BookingView:
    return BookingView(bid, lot, commit(plate), start, end, status, "S12")


def read(text: str, conf: float = 0.95) -> PlateRead:
    return PlateRead(text, conf, (conf,) * len(text))


POLICY = Policy(LOT, PolicyConfig(grace_before_s=600, grace_after_s=600))


def configured(**keys: object) -> Policy:
    """POLICY with some ``[policy]`` keys changed."""
    return replace(POLICY, config=POLICY.config.model_copy(update=keys))
EMPTY = Presence()


def entry(text: str, bookings=(), presence: Presence = EMPTY, policy: Policy = POLICY,
          now: int = NOW, conf: float = 0.95) -> Decision:
    return decide(read(text, conf), now, bookings, presence, policy, direction=Direction.ENTRY, commit=commit)


def exit_(text: str, bookings=(), presence: Presence = EMPTY, policy: Policy = POLICY,
          now: int = NOW) -> Decision:
    return decide(read(text), now, bookings, presence, policy, direction=Direction.EXIT, commit=commit)


def test_valid_booking_opens_with_evidence() -> None:
    d = entry("ab-123-cd", [booking("AB123CD")])
    assert (d.allow, d.reason, d.booking_id) == (True, Reason.BOOKING_VALID, "b1")
    assert (d.matched_plate, d.distance) == ("AB123CD", 0.0)
    assert d.commitment == commit("AB123CD") and d.flags == ()
    assert d.evidence is not None
    assert (d.evidence.plate, d.evidence.confidence, d.evidence.char_confidences) == (
        "AB123CD", 0.95, (0.95,) * len("ab-123-cd"))
    assert d.evidence.candidates_tried >= 1


def test_no_booking_denies() -> None:
    d = entry("AB123CD", [booking("XY999ZZ")])
    assert (d.allow, d.reason) == (False, Reason.NO_BOOKING)


def test_fuzzy_match_through_commitments() -> None:
    d = entry("A8123CD", [booking("AB123CD")])  # camera read 8 for B
    assert (d.allow, d.reason, d.matched_plate, d.distance) == (True, Reason.BOOKING_VALID, "AB123CD", 0.5)
    assert Flag.FUZZY_MATCH in d.flags


def test_fuzzy_match_respects_max_distance() -> None:
    assert not entry("A8I23CD", [booking("AB123CD")], policy=configured(max_plate_distance=0.5)).allow
    assert entry("A8I23CD", [booking("AB123CD")], policy=configured(max_plate_distance=1.0)).allow


def test_exact_read_wins_over_fuzzy_neighbour() -> None:
    # The exact plate has an expired booking; a confusable neighbour has a valid one: the vehicle is
    # most likely the exact plate, so its expiry decides.
    bookings = [booking("AB123CD", "old", NOW - 9 * H, NOW - 8 * H), booking("A8123CD", "other")]
    d = entry("AB123CD", bookings)
    assert (d.allow, d.reason, d.booking_id) == (False, Reason.EXPIRED, "old")


def test_two_vehicles_at_same_distance_is_ambiguous() -> None:
    d = entry("S0", [booking("SO", "b1"), booking("50", "b2")])
    assert (d.allow, d.reason) == (False, Reason.AMBIGUOUS_MATCH)


@pytest.mark.parametrize("now, allow, reason", [
    (NOW - H - 600_000, True, Reason.BOOKING_VALID),      # exactly at start - grace
    (NOW - H - 600_001, False, Reason.TOO_EARLY),
    (NOW + H + 600_000, True, Reason.BOOKING_VALID),      # exactly at end + grace
    (NOW + H + 600_001, False, Reason.EXPIRED),
])
def test_window_and_grace(now: int, allow: bool, reason: Reason) -> None:
    d = entry("AB123CD", [booking("AB123CD")], now=now)
    assert (d.allow, d.reason) == (allow, reason)


def test_best_of_several_bookings_is_chosen() -> None:
    bookings = [booking("AB123CD", "yesterday", NOW - 30 * H, NOW - 28 * H),
                booking("AB123CD", "now"), booking("AB123CD", "tomorrow", NOW + 20 * H, NOW + 22 * H)]
    assert entry("AB123CD", bookings).booking_id == "now"


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.EXPIRED,
                                    BookingStatus.CHECKED_OUT])
def test_inactive_booking_denies(status: BookingStatus) -> None:
    d = entry("AB123CD", [booking("AB123CD", status=status)])
    assert (d.allow, d.reason) == (False, Reason.BOOKING_INACTIVE)


def test_pending_booking_opens_first_time() -> None:
    assert entry("AB123CD", [booking("AB123CD", status=BookingStatus.REQUESTED)]).allow


def test_other_lot_booking_denies() -> None:
    d = entry("AB123CD", [booking("AB123CD", lot="elsewhere")])
    assert (d.allow, d.reason) == (False, Reason.WRONG_LOT)


def test_deny_list_is_exact_and_beats_booking() -> None:
    policy = configured(deny_list=("AB123CD",))
    assert entry("AB123CD", [booking("AB123CD")], policy=policy).reason is Reason.DENY_LISTED
    # A confusable read of a denied plate is not denied by the list (exact only), it needs its own booking.
    d = entry("A8123CD", [booking("AB123CD")], policy=policy)
    assert d.reason is Reason.BOOKING_VALID


def test_deny_list_by_commitment() -> None:
    policy = configured(deny_list=(commit("AB123CD"),))
    assert entry("AB123CD", [booking("AB123CD")], policy=policy).reason is Reason.DENY_LISTED


def test_allow_list_without_booking_fuzzy_and_beats_capacity() -> None:
    policy = configured(allow_list=("STAFF1",), capacity=0)
    d = entry("5TAFF1", policy=policy)
    assert (d.allow, d.reason, d.matched_plate, d.commitment) == (True, Reason.ALLOW_LISTED, "STAFF1",
                                                                   commit("STAFF1"))
    assert entry("STAFF1", policy=configured(allow_list=(commit("STAFF1"),))).allow


def test_capacity_inhibit() -> None:
    full = Presence(anonymous=3)
    d = entry("AB123CD", [booking("AB123CD")], presence=full, policy=configured(capacity=3))
    assert (d.allow, d.reason) == (False, Reason.CAPACITY_FULL)
    assert entry("AB123CD", [booking("AB123CD")], presence=full, policy=configured(capacity=4)).allow


def _inside(plate: str) -> Presence:
    first = entry(plate, [booking(plate)])
    return apply_pass(Presence(), first, Direction.ENTRY, NOW, "entry-1")[0]


@pytest.mark.parametrize("mode, allow, flags", [
    (AntiPassback.HARD, False, (Flag.PASSBACK_VIOLATION,)),
    (AntiPassback.SOFT, True, (Flag.PASSBACK_VIOLATION,)),
    (AntiPassback.OFF, True, ()),
])
def test_anti_passback_on_entry(mode: AntiPassback, allow: bool, flags: tuple) -> None:
    d = entry("AB123CD", [booking("AB123CD", status=BookingStatus.CHECKED_IN)], presence=_inside("AB123CD"),
              policy=configured(anti_passback=mode))
    assert (d.allow, d.flags) == (allow, flags)
    assert d.reason is (Reason.BOOKING_VALID if allow else Reason.ANTI_PASSBACK)


def test_a_session_left_over_from_an_earlier_booking_does_not_lock_the_car_out() -> None:
    """The exit was missed (manual open): the next booking still admits, flagged for the operator."""
    d = entry("AB123CD", [booking("AB123CD", bid="b2")], presence=_inside("AB123CD"),
              policy=configured(anti_passback=AntiPassback.HARD))
    assert (d.allow, d.reason, d.booking_id) == (True, Reason.BOOKING_VALID, "b2")
    assert d.flags == (Flag.STALE_SESSION,)


def test_exit_with_session_even_after_expiry_flags_overstay() -> None:
    presence = _inside("AB123CD")
    d = exit_("A8123CD", [booking("AB123CD")], presence=presence, now=NOW + 5 * H)
    assert (d.allow, d.reason, d.booking_id) == (True, Reason.SESSION_EXIT, "b1")
    assert Flag.OVERSTAY in d.flags and Flag.FUZZY_MATCH in d.flags
    assert exit_("AB123CD", [booking("AB123CD")], presence=presence).flags == ()


@pytest.mark.parametrize("mode, allow", [(AntiPassback.HARD, False), (AntiPassback.SOFT, True),
                                         (AntiPassback.OFF, True)])
def test_exit_without_session(mode: AntiPassback, allow: bool) -> None:
    d = exit_("AB123CD", [booking("AB123CD")], policy=configured(anti_passback=mode))
    assert d.allow is allow
    assert d.booking_id == "b1"


def test_exit_of_unknown_vehicle_denied() -> None:
    d = exit_("AB123CD", [], policy=configured(anti_passback=AntiPassback.OFF))
    assert (d.allow, d.reason) == (False, Reason.NO_BOOKING)


@pytest.mark.parametrize("text, conf, reason", [("", 0.9, Reason.NO_READ), ("??", 0.9, Reason.NO_READ),
                                                ("AB123CD", 0.2, Reason.LOW_CONFIDENCE),
                                                ("AB123CD", float("nan"), Reason.LOW_CONFIDENCE)])
def test_unusable_reads_deny(text: str, conf: float, reason: Reason) -> None:
    d = entry(text, [booking("AB123CD")], conf=conf)
    assert (d.allow, d.reason) == (False, reason)


def test_manual_override() -> None:
    assert entry("", policy=replace(POLICY, override=Override.OPEN)).reason is Reason.MANUAL_OPEN
    d = entry("AB123CD", [booking("AB123CD")], policy=replace(POLICY, override=Override.CLOSED))
    assert (d.allow, d.reason) == (False, Reason.MANUAL_CLOSED)


def test_commitment_is_the_chain_commitment() -> None:
    assert commit("ab-123 cd") == "0x" + plate_commitment(SECRET, LOT, "AB123CD").hex()


def test_candidate_commitments_are_usable_for_a_cache_query() -> None:
    matches = committed_candidates("B0", POLICY, commit)
    assert matches[0].commitment == commit("B0") and len({m.commitment for m in matches}) == len(matches)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=12), conf=st.floats(allow_nan=True), now=st.integers(0, 2 * NOW),
       direction=st.sampled_from(Direction))
def test_decide_never_crashes_and_allows_only_with_reason(text: str, conf: float, now: int,
                                                         direction: Direction) -> None:
    bookings = [booking("AB123CD"), booking("SO8", "b2", status=BookingStatus.CANCELLED)]
    presence = _inside("SO8")
    d = decide(PlateRead(text, conf), now, bookings, presence, POLICY, direction=direction, commit=commit)
    allowed_reasons = {Reason.BOOKING_VALID, Reason.ALLOW_LISTED, Reason.SESSION_EXIT}
    assert d.allow == (d.reason in allowed_reasons)
    if d.allow:
        assert d.commitment is not None and d.distance <= POLICY.max_plate_distance


def test_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench_main(bookings_count=50, repeats=1)
    assert "prefiltered bookings" in capsys.readouterr().out


def test_nearest_identity_wins_across_allow_list_and_bookings() -> None:
    policy = configured(allow_list=("A8123CD",), capacity=0)
    d = entry("AB123CD", [booking("AB123CD")], policy=policy)  # exact booking beats a fuzzy staff plate
    assert (d.reason, d.matched_plate) == (Reason.CAPACITY_FULL, "AB123CD")


def test_exit_does_not_close_a_neighbours_session() -> None:
    presence = _inside("A8123CD")  # a confusable vehicle is inside; the exact read is not
    d = exit_("AB123CD", [booking("AB123CD"), booking("A8123CD", "b2")], presence=presence)
    assert (d.allow, d.reason, d.matched_plate) == (False, Reason.ANTI_PASSBACK, "AB123CD")


def test_matches_computed_by_the_caller_give_the_same_decision() -> None:
    """The daemon computes the candidates once to fetch the bookings and hands them to decide()."""
    bookings = [booking("AB123CD"), booking("XY999ZZ", bid="b2")]
    for text in ("AB123CD", "A8123CD", "XY 999 ZZ", "QQ111QQ"):
        matches = committed_candidates(text.replace(" ", ""), POLICY, commit)
        given = decide(read(text), NOW, bookings, EMPTY, POLICY, direction=Direction.ENTRY, commit=commit,
                       matches=matches)
        assert given == entry(text, bookings), text
