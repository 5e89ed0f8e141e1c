"""Per-lane exit policies and anti-passback (edge.access.exits): nobody known is trapped at an exit.

A car with no entry record (tailgated, misread at the entry, parked before the installation) is let
out under ``known`` when booked, and under ``open`` when not even that; ``booked_only`` keeps the
strict rule (hard anti-passback refuses it, a stranger is refused)."""

from dataclasses import replace

import pytest

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
    commitment_function,
    decide,
)
from edge.access.exits import LOT_RULES, ExitPolicy, LaneRules, lane_rules
from edge.config import ConfigError, PolicyConfig, parse_config

LOT = "LOT-7"
NOW = 1_790_000_000_000
H = 3_600_000
POLICY = Policy(LOT, PolicyConfig())  # hard anti-passback, the lot default
commit = commitment_function(b"test-lot-secret-32-bytes-long...", LOT)

BOOKED = "AB123CD"


def booking(plate: str) -> BookingView:
    return BookingView("b1", LOT, commit(plate), NOW - H, NOW + H, BookingStatus.VERIFIED, "S12")


def read(text: str, conf: float) -> PlateRead:
    return PlateRead(text, conf, (conf,) * len(text))

STRANGER = "KX904LM"


def leave(text: str, rules: LaneRules, bookings=(), policy=POLICY, conf: float = 0.95,
          direction: Direction = Direction.EXIT) -> Decision:
    return decide(read(text, conf), NOW, bookings, Presence(), policy, direction=direction, commit=commit,
                  rules=rules)


def test_booked_car_without_entry_record_leaves_under_known_flagged() -> None:
    d = leave(BOOKED, LaneRules(ExitPolicy.KNOWN), [booking(BOOKED)])
    assert (d.allow, d.reason, d.booking_id) == (True, Reason.BOOKING_VALID, "b1")
    assert Flag.PASSBACK_VIOLATION in d.flags  # hard anti-passback flags it, does not trap it


def test_booked_car_without_entry_record_refused_under_booked_only_with_hard_passback() -> None:
    d = leave(BOOKED, LaneRules(ExitPolicy.BOOKED_ONLY), [booking(BOOKED)])
    assert (d.allow, d.reason) == (False, Reason.ANTI_PASSBACK)


@pytest.mark.parametrize("policy, allow, reason", [
    (ExitPolicy.OPEN, True, Reason.EXIT_OPEN),
    (ExitPolicy.KNOWN, False, Reason.NO_BOOKING),
    (ExitPolicy.BOOKED_ONLY, False, Reason.NO_BOOKING),
])
def test_unknown_car_without_entry_record(policy: ExitPolicy, allow: bool, reason: Reason) -> None:
    d = leave(STRANGER, LaneRules(policy), [booking(BOOKED)])
    assert (d.allow, d.reason) == (allow, reason)
    assert d.evidence is not None and d.evidence.plate == STRANGER  # the read stays as evidence


@pytest.mark.parametrize("text, conf", [("", 0.0), ("AB123CD", 0.1)])
def test_open_exit_lets_out_unreadable_plates(text: str, conf: float) -> None:
    assert leave(text, LaneRules(ExitPolicy.OPEN), conf=conf).reason is Reason.EXIT_OPEN
    assert not leave(text, LaneRules(ExitPolicy.KNOWN), conf=conf).allow


def test_open_exit_keeps_the_operators_closed_override_and_entries_untouched() -> None:
    closed = replace(POLICY, override=Override.CLOSED)
    assert leave(STRANGER, LaneRules(ExitPolicy.OPEN), policy=closed).reason is Reason.MANUAL_CLOSED
    entry = leave(STRANGER, LaneRules(ExitPolicy.OPEN), direction=Direction.ENTRY)
    assert (entry.allow, entry.reason) == (False, Reason.NO_BOOKING)


def test_lane_anti_passback_overrides_the_lots() -> None:
    soft = LaneRules(ExitPolicy.BOOKED_ONLY, AntiPassback.SOFT)
    d = leave(BOOKED, soft, [booking(BOOKED)])
    assert d.allow and Flag.PASSBACK_VIOLATION in d.flags
    off = leave(BOOKED, LaneRules(ExitPolicy.BOOKED_ONLY, AntiPassback.OFF), [booking(BOOKED)])
    assert off.allow and off.flags == ()
    hard = leave(BOOKED, LaneRules(ExitPolicy.BOOKED_ONLY, AntiPassback.HARD), [booking(BOOKED)],
                 policy=Policy(LOT, PolicyConfig(anti_passback="off")))
    assert hard.reason is Reason.ANTI_PASSBACK


def test_lane_rules_from_config_values() -> None:
    assert lane_rules("exit", None, None) == LaneRules(ExitPolicy.KNOWN)  # the safe default of exits
    assert lane_rules("exit", "open", "soft") == LaneRules(ExitPolicy.OPEN, AntiPassback.SOFT)
    assert lane_rules("entry", None, "off") == LaneRules(ExitPolicy.BOOKED_ONLY, AntiPassback.OFF)
    assert LaneRules() == LOT_RULES


def test_config_keys_and_their_errors() -> None:
    cfg = parse_config('[[lanes]]\nname = "x"\ndirection = "exit"\nexit_policy = "open"\n'
                       'anti_passback = "soft"')
    assert (cfg.lanes[0].exit_policy, cfg.lanes[0].anti_passback) == ("open", "soft")
    with pytest.raises(ConfigError) as err:
        parse_config('[[lanes]]\nname = "x"\ndirection = "exit"\nexit_policy = "everyone"', "t.toml")
    assert "lanes[0].exit_policy" in str(err.value) and "booked_only" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config('[[lanes]]\nname = "x"\nexit_policy = "open"', "t.toml")
    assert "lanes[0].exit_policy" in str(err.value) and "only on lanes with direction" in str(err.value)
