"""Time the gateway can trust (issue #17): the sanity floor, booking windows against the best time, and
signed commands that cannot be replayed across a clock step. Injected wall and monotonic clocks; the
nonce store is a real SQLite file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from edge.access import BookingView, Direction, Policy, Presence, commitment_function, decide
from edge.access.types import BookingStatus, Reason
from edge.clock import BUILD_FLOOR_MS, ClockReading, TrustedClock, describe_behind, parse_local_time
from edge.config import PolicyConfig
from edge.mqtt.commands import Command, CommandPolicy, Freshness, Rejection, sign_command, verify_command
from edge.mqtt.nonces import NonceStore
from edge.store import Booking, GateEventRow, RentalEvent, Store
from edge.vision.types import PlateRead

DAY, HOUR = 86_400_000, 3_600_000
REAL = BUILD_FLOOR_MS + 30 * DAY  # "now" in these tests: the true time
LOT = "LOT-CLK"
commit = commitment_function(b"clock-test-secret-32-bytes-long!", LOT)
KEY = bytes(range(32))
CMD_POLICY = CommandPolicy("gw-1", frozenset({"in-1"}), max_age_ms=30_000, max_skew_ms=5_000)


class FakeClocks:
    """A wall clock that an "NTP step" moves, and a monotonic clock that only moves forward."""

    def __init__(self, wall_ms: int) -> None:
        self.wall_ms, self.mono_ms = wall_ms, 1_000

    def wall(self) -> int:
        return self.wall_ms

    def mono(self) -> int:
        return self.mono_ms

    def advance(self, ms: int) -> None:
        self.wall_ms += ms
        self.mono_ms += ms

    def step(self, ms: int) -> None:
        self.wall_ms += ms


def test_a_step_back_leaves_the_best_time_on_the_floor_carried_forward() -> None:
    clocks = FakeClocks(REAL)
    clock = TrustedClock(wall=clocks.wall, mono=clocks.mono)
    assert clock.now_ms() == REAL and clock.reading().trusted
    clocks.step(-3_600_000)  # NTP steps the clock back one hour
    clocks.advance(10_000)
    reading = clock.reading()
    assert reading.best_ms == REAL + 10_000, "the floor is carried forward on the monotonic clock"
    assert reading.behind_ms == 3_600_000 and not reading.trusted
    clocks.step(3_600_000)  # fixed again: the wall clock is the best time once more
    assert clock.reading().trusted and clock.now_ms() == REAL + 10_000


def test_booted_days_behind_the_store_floor_decides_with_the_floor(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite", clock=lambda: REAL) as store:  # a write stamped before the reboot
        store.upsert_rental_event(RentalEvent("1", "1", LOT, "0x" + "11" * 20, REAL - DAY, REAL + DAY, 1,
                                              "open", 1, "0x" + "00" * 32, 0))
        floor = store.clock_floor()
    assert floor == REAL
    clocks = FakeClocks(REAL - 3 * DAY)  # fake-hwclock: three days behind
    clock = TrustedClock(wall=clocks.wall, mono=clocks.mono)
    clock.observe(floor)
    reading = clock.reading()
    assert reading.best_ms == REAL and reading.behind_ms == 3 * DAY
    assert describe_behind(reading.behind_ms) == "3 d"
    clock.observe(REAL - HOUR)  # an older time never lowers the floor
    assert clock.now_ms() >= REAL


def test_the_floor_never_drops_below_the_build_date() -> None:
    reading = TrustedClock(wall=lambda: 0, mono=lambda: 0).reading()  # booted in 1970
    assert reading.best_ms == BUILD_FLOOR_MS and not reading.trusted


def test_store_writes_raise_the_floor_through_triggers(tmp_path: Path) -> None:
    stamps = iter([REAL, REAL - DAY])
    with Store(tmp_path / "s.sqlite", clock=lambda: next(stamps)) as store:
        store.record_gate_event(GateEventRow("evt-00000001", "in-1", "entry", "denied", "no_read", REAL))
        assert store.clock_floor() == REAL
        store.raise_clock_floor(REAL + 5)
        store.raise_clock_floor(REAL - 5)
        assert store.clock_floor() == REAL + 5


def _booking(start: int, end: int) -> BookingView:
    return BookingView("b1", LOT, commit("AB123CD"), start, end, BookingStatus.REQUESTED, "S1")


def _entry(now: ClockReading, booking: BookingView, untrusted_time: str) -> Reason:
    policy = Policy(LOT, PolicyConfig(grace_before_s=0, grace_after_s=0), untrusted_time=untrusted_time)
    decision = decide(PlateRead("AB123CD", 0.95), now.best_ms, [booking], Presence(), policy,
                      direction=Direction.ENTRY, commit=commit, time_trusted=now.trusted)
    return decision.reason


def test_booking_windows_against_the_floor_and_the_lenient_policy() -> None:
    behind = ClockReading(wall_ms=REAL - 3 * DAY, floor_ms=REAL)  # booted three days behind the floor
    current = _booking(REAL - HOUR, REAL + HOUR)
    started_since = _booking(REAL + HOUR, REAL + 3 * HOUR)  # the floor is a lower bound: maybe started
    ended = _booking(REAL - 3 * HOUR, REAL - HOUR)
    for policy in ("floor", "lenient", "strict"):
        assert _entry(behind, current, policy) is Reason.BOOKING_VALID, policy
        assert _entry(behind, ended, policy) is Reason.EXPIRED, policy
    assert _entry(behind, started_since, "floor") is Reason.TOO_EARLY
    assert _entry(behind, started_since, "lenient") is Reason.BOOKING_VALID
    trusted = ClockReading(wall_ms=REAL, floor_ms=REAL)
    assert _entry(trusted, started_since, "lenient") is Reason.TOO_EARLY, "lenient only while untrusted"


def test_exits_never_depend_on_the_clock() -> None:
    behind = ClockReading(wall_ms=REAL - 3 * DAY, floor_ms=REAL)
    policy = Policy(LOT, PolicyConfig(anti_passback="off"), untrusted_time="strict")
    for booking in (_booking(REAL + DAY, REAL + 2 * DAY), _booking(REAL - 2 * DAY, REAL - DAY)):
        decision = decide(PlateRead("AB123CD", 0.95), behind.best_ms, [booking], Presence(), policy,
                          direction=Direction.EXIT, commit=commit, time_trusted=False)
        assert decision.allow, decision


# -- signed commands across clock steps ------------------------------------------------------------------

def _nonces(path: Path, clocks: FakeClocks) -> NonceStore:
    return NonceStore(path, CMD_POLICY.replay_window_ms, mono_s=lambda: clocks.mono_ms / 1000)


def _verify(raw: bytes, clock: TrustedClock, nonces: NonceStore,
            policy: CommandPolicy = CMD_POLICY) -> Command | Rejection:
    """What the MQTT bridge does with one message (edge.mqtt.bridge._process_message)."""
    now = clock.reading()
    verdict = verify_command(raw, KEY, Freshness(now.best_ms, now.trusted, nonces.min_ts_ms), nonces, policy)
    cmd = verdict if isinstance(verdict, Command) else verdict.command
    if cmd is not None and getattr(verdict, "reason", None) != "replayed":
        nonces.remember(cmd.nonce, cmd.ts_ms, now.best_ms)
    return verdict


def test_a_captured_open_refused_as_stale_stays_refused_after_a_step_back(tmp_path: Path) -> None:
    clocks = FakeClocks(REAL)
    clock = TrustedClock(wall=clocks.wall, mono=clocks.mono)
    nonces = _nonces(tmp_path / "nonces.sqlite", clocks)
    captured = sign_command(KEY, "gw-1", "in-1", "open", REAL - 35_000)  # withheld 35 s by an attacker
    first = _verify(captured, clock, nonces)
    assert isinstance(first, Rejection) and first.reason == "stale"
    clocks.step(-40_000)  # NTP steps the clock back 40 s: the command's time is "fresh" by the wall clock
    clocks.advance(1_000)
    replay = _verify(captured, clock, nonces)
    assert isinstance(replay, Rejection) and replay.reason in ("stale", "replayed"), replay
    # Without the floor (a restart: a new process whose clock is the stepped-back wall clock) the kept
    # nonce still refuses it.
    nonces.close()
    reopened = NonceStore(tmp_path / "nonces.sqlite", CMD_POLICY.replay_window_ms)
    naive = TrustedClock(floor_ms=0, wall=clocks.wall, mono=clocks.mono)
    assert naive.reading().trusted
    again = _verify(captured, naive, reopened)
    assert isinstance(again, Rejection) and again.reason == "replayed", again
    reopened.close()


def test_a_forgotten_command_time_is_refused_whatever_the_clock_says(tmp_path: Path) -> None:
    clocks = FakeClocks(REAL)
    clock = TrustedClock(wall=clocks.wall, mono=clocks.mono)
    nonces = _nonces(tmp_path / "n.sqlite", clocks)
    accepted = sign_command(KEY, "gw-1", "in-1", "open", REAL)
    assert isinstance(_verify(accepted, clock, nonces), Command)
    clocks.advance(36_000)  # a window later on both clocks: the next command lets the old nonce go
    later = sign_command(KEY, "gw-1", "in-1", "open", REAL + 36_000)
    assert isinstance(_verify(later, clock, nonces), Command)
    assert nonces.min_ts_ms == REAL and len(nonces) == 1
    nonces.close()
    clocks.step(-36_000)  # a restart with the clock stepped back to when the first command was fresh
    naive = TrustedClock(floor_ms=0, wall=clocks.wall, mono=clocks.mono)
    reopened = NonceStore(tmp_path / "n.sqlite", CMD_POLICY.replay_window_ms)
    verdict = _verify(accepted, naive, reopened)
    assert isinstance(verdict, Rejection) and verdict.reason == "stale" and "forgotten" in verdict.detail
    reopened.close()


def test_a_step_forward_does_not_forget_nonces_early(tmp_path: Path) -> None:
    clocks = FakeClocks(REAL)
    clock = TrustedClock(wall=clocks.wall, mono=clocks.mono)
    nonces = _nonces(tmp_path / "n.sqlite", clocks)
    accepted = sign_command(KEY, "gw-1", "in-1", "open", REAL)
    assert isinstance(_verify(accepted, clock, nonces), Command)
    clocks.step(3_600_000)  # a wrong step forward, then another command: the first nonce stays
    _verify(sign_command(KEY, "gw-1", "in-1", "open", REAL + 3_600_000), clock, nonces)
    assert accepted and len(nonces) == 2
    nonces.close()


def test_operator_commands_while_the_clock_is_days_behind(tmp_path: Path) -> None:
    clocks = FakeClocks(REAL - 3 * DAY)
    clock = TrustedClock(floor_ms=REAL - HOUR, wall=clocks.wall, mono=clocks.mono)  # floor: an hour old
    nonces = NonceStore(tmp_path / "n.sqlite", CMD_POLICY.replay_window_ms)
    command = sign_command(KEY, "gw-1", "in-1", "open", REAL)  # the operator's clock is right
    assert isinstance(_verify(command, clock, nonces), Command), "accepted: the floor is only a lower bound"
    replay = _verify(command, clock, nonces)
    assert isinstance(replay, Rejection) and replay.reason == "replayed"
    strict = CommandPolicy("gw-1", frozenset({"in-1"}), future_when_untrusted=False)
    other = sign_command(KEY, "gw-1", "in-1", "open", REAL)
    refused = _verify(other, clock, nonces, strict)
    assert isinstance(refused, Rejection) and refused.reason == "future"
    old = sign_command(KEY, "gw-1", "in-1", "open", REAL - 2 * HOUR)
    stale = _verify(old, clock, nonces)
    assert isinstance(stale, Rejection) and stale.reason == "stale", "stale against the floor: certain"
    nonces.close()


def test_a_booking_row_keeps_its_own_times(tmp_path: Path) -> None:
    """The floor triggers only read the stamps; they change no row."""
    with Store(tmp_path / "s.sqlite", clock=lambda: REAL) as store:
        store.upsert_rental_event(RentalEvent("1", "1", LOT, "0x" + "11" * 20, REAL - DAY, REAL + DAY, 1,
                                              "open", 1, "0x" + "00" * 32, 0))
        store.upsert_booking(Booking("1", "1", "1", LOT, "0x" + "11" * 20, commit("AB123CD"), REAL,
                                     REAL + HOUR, "requested", 1, "0x" + "00" * 32, 1))
        booking = store.booking("1")
    assert booking is not None and (booking.window_start_ms, booking.window_end_ms) == (REAL, REAL + HOUR)


def test_a_typed_time_is_local_unless_it_carries_an_offset_and_a_bad_one_names_the_input() -> None:
    local = datetime(2026, 12, 24, 18, 0).timestamp() * 1000  # the test machine's local zone
    assert parse_local_time(" 2026-12-24T18:00 ", "since") == local
    assert parse_local_time("2026-12-24", "since") == datetime(2026, 12, 24).timestamp() * 1000
    assert parse_local_time("2026-12-24T18:00+01:00", "since") == 1_798_131_600_000
    assert parse_local_time(None, "since") is None
    for bad in ("yesterday", "24.12.2026", "99999-01-01", "", "  "):
        with pytest.raises(ValueError, match=rf"until {bad!r} is not a time; allowed: ISO 8601"):
            parse_local_time(bad, "until")
