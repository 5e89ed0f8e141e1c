"""The access decision: one pure function from a plate read and the local cache to allow/deny.

Offline first: everything it needs is passed in (bookings from the local SQLite cache, presence
from the store, the policy from config, the commitment function keyed with the lot secret); the
network is never between a vehicle and the gate.

Order of checks: manual override, unreadable/low-confidence read, deny list (exact only), then the
vehicle's identity (allow list, open session on exits, bookings; fuzzy over OCR confusions,
lowest distance wins, a tie between different vehicles is refused as ambiguous), then booking
validity (lot, status, window with grace), anti-passback, capacity. Exits never need a valid
window (nobody is trapped inside); an overstay is flagged for settlement instead.

Time: ``now_ms`` is the gateway's best time (``edge.clock``). While the wall clock is behind the sanity
floor (``time_trusted`` False) the best time is only a lower bound of the true time: a window that has
ended by it has surely ended, but one that has not started by it may well have. Policy
``untrusted_time = "lenient"`` then judges only the end of the window; ``"floor"`` and ``"strict"`` judge
both ends against the floor (a car may be refused ``too_early`` until the clock is fixed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from edge.access.exits import LOT_RULES, LaneRules, open_exit
from edge.access.plates import Candidate, candidates
from edge.access.policy import AntiPassback, Override, Policy
from edge.access.sessions import Presence
from edge.access.types import (
    ENTRY_STATUSES,
    EXIT_STATUSES,
    BookingStatus,
    BookingView,
    Decision,
    Direction,
    Evidence,
    Flag,
    Reason,
)
from edge.identity import Commit, commitment_function, normalise_plate
from edge.vision.types import PlateRead

__all__ = ["Commit", "Match", "best_booking", "commitment_function", "committed_candidates", "decide"]


@dataclass(frozen=True, slots=True)
class Match:
    """A candidate plate, its commitment and how far it is from the read."""

    plate: str
    commitment: str
    distance: float


def committed_candidates(text: str, policy: Policy, commit: Commit) -> tuple[Match, ...]:
    """The read ``text`` (normalised here, the one place a read is) and its confusable plates (cheapest
    first), each with its commitment; ``()`` when the text holds no plate.

    The daemon uses the commitments to fetch only the relevant bookings from the cache.
    """
    try:
        plate = normalise_plate(text)
    except ValueError:
        return ()
    found: Iterable[Candidate] = candidates(plate, policy.confusions, policy.config.max_plate_distance,
                                            policy.config.max_candidates)
    return tuple(Match(c.plate, commit(c.plate), c.distance) for c in found)


def _evidence(read: PlateRead, plate: str, tried: int) -> Evidence:
    return Evidence(plate, read.confidence, read.char_confidences, tried)


def _nearest(matches: Sequence[Match], hit: Callable[[Match], bool]) -> list[Match]:
    """All matches at the lowest distance for which ``hit`` holds (more than one = ambiguous)."""
    hits = [m for m in matches if hit(m)]
    return [m for m in hits if m.distance == hits[0].distance] if hits else []


def _distinct_vehicles(found: list[Match]) -> int:
    return len({m.commitment for m in found})


def _window_reason(booking: BookingView, now_ms: int, policy: Policy, start_known: bool = True) -> Reason:
    if booking.lot_id != policy.lot_id:
        return Reason.WRONG_LOT
    if booking.status not in ENTRY_STATUSES:
        return Reason.BOOKING_INACTIVE
    if start_known and now_ms < booking.window_start_ms - policy.config.grace_before_s * 1000:
        return Reason.TOO_EARLY
    if now_ms > booking.window_end_ms + policy.config.grace_after_s * 1000:
        return Reason.EXPIRED
    return Reason.BOOKING_VALID


# When no booking of the vehicle is valid, report the most useful reason.
_REASON_RANK = (Reason.BOOKING_VALID, Reason.TOO_EARLY, Reason.EXPIRED, Reason.BOOKING_INACTIVE,
                Reason.WRONG_LOT)


def best_booking(bookings: Sequence[BookingView], now_ms: int, policy: Policy,
                 start_known: bool = True) -> tuple[BookingView, Reason]:
    """The vehicle's most relevant booking and its verdict (valid ones first, then earliest start).
    ``start_known`` False: ``now_ms`` is only a lower bound, a window's start is not judged."""
    def verdict(b: BookingView) -> Reason:
        return _window_reason(b, now_ms, policy, start_known)

    ranked = sorted(bookings, key=lambda b: (_REASON_RANK.index(verdict(b)), b.window_start_ms, b.booking_id))
    return ranked[0], verdict(ranked[0])


def _overstayed(bookings: Sequence[BookingView], booking_id: str | None, now_ms: int, policy: Policy) -> bool:
    ends = [b.window_end_ms for b in bookings if booking_id is None or b.booking_id == booking_id]
    return bool(ends) and now_ms > max(ends) + policy.config.grace_after_s * 1000


def _passback(mode: AntiPassback, violated: bool) -> tuple[bool, tuple[Flag, ...]]:
    """(refuse, flags) for an anti-passback check."""
    if not violated or mode is AntiPassback.OFF:
        return False, ()
    return mode is AntiPassback.HARD, (Flag.PASSBACK_VIOLATION,)


def decide(read: PlateRead, now_ms: int, bookings: Iterable[BookingView], presence: Presence, policy: Policy,
           *, direction: Direction, commit: Commit, matches: tuple[Match, ...] | None = None,
           time_trusted: bool = True, rules: LaneRules = LOT_RULES) -> Decision:
    """Allow or deny one vehicle at one lane; the Decision carries the reason and the evidence.

    ``matches``: the read's :func:`committed_candidates` when the caller already computed them (to fetch
    ``bookings`` from the cache), so neither they nor the normalised plate are computed twice.
    ``now_ms``/``time_trusted``: the best time and whether the wall clock agrees with the sanity floor
    (module docstring, "Time"). ``rules``: the lane's own exit policy and anti-passback
    (:mod:`edge.access.exits`)."""
    decision = _decide(read, now_ms, bookings, presence, policy, direction, commit, matches, rules,
                       time_trusted)
    return open_exit(decision, rules) if direction is Direction.EXIT else decision


def _decide(read: PlateRead, now_ms: int, bookings: Iterable[BookingView], presence: Presence, policy: Policy,
            direction: Direction, commit: Commit, matches: tuple[Match, ...] | None,
            rules: LaneRules, time_trusted: bool) -> Decision:
    if policy.override is Override.OPEN:
        return Decision(True, Reason.MANUAL_OPEN, None)
    if policy.override is Override.CLOSED:
        return Decision(False, Reason.MANUAL_CLOSED, None)
    if matches is None:
        matches = committed_candidates(read.text, policy, commit)
    if not matches:
        return Decision(False, Reason.NO_READ, _evidence(read, read.text, 0))
    plate = matches[0].plate
    if not read.confidence >= policy.min_confidence:
        return Decision(False, Reason.LOW_CONFIDENCE, _evidence(read, plate, 0))
    evidence = _evidence(read, plate, len(matches))
    exact = matches[0]
    if plate in policy.deny or exact.commitment in policy.deny:
        return Decision(False, Reason.DENY_LISTED, evidence, matched_plate=plate, commitment=exact.commitment)
    by_commitment: dict[str, list[BookingView]] = {}
    for booking in bookings:
        by_commitment.setdefault(booking.commitment, []).append(booking)
    start_known = time_trusted or policy.untrusted_time != "lenient"
    ctx = _Context(matches, evidence, by_commitment, presence, policy, now_ms, rules, start_known)
    return ctx.entry() if direction is Direction.ENTRY else ctx.exit()


@dataclass(frozen=True, slots=True)
class _Context:
    """The inputs of one decision once the read is known to be usable.

    Identity: the candidate nearest to the read that is known at all (inside the lot on exits, on
    the allow list, or holding a booking here) is the vehicle; its bookings' validity is judged only
    afterwards, so an exact read with an expired booking is not let in on a neighbour's booking.
    """

    matches: tuple[Match, ...]
    evidence: Evidence
    bookings: dict[str, list[BookingView]]
    presence: Presence
    policy: Policy
    now_ms: int
    rules: LaneRules
    start_known: bool = True

    @property
    def _passback_mode(self) -> AntiPassback:
        return self.rules.passback(self.policy.anti_passback)

    def _result(self, allow: bool, reason: Reason, match: Match, booking_id: str | None = None,
                flags: tuple[Flag, ...] = ()) -> Decision:
        fuzzy = (Flag.FUZZY_MATCH,) if match.distance > 0 else ()
        return Decision(allow, reason, self.evidence, booking_id, match.plate, match.commitment,
                        match.distance, fuzzy + flags)

    def _allow_listed(self, match: Match) -> bool:
        return match.plate in self.policy.allow or match.commitment in self.policy.allow

    def _booked(self, match: Match, statuses: frozenset[BookingStatus] | None) -> bool:
        return any(statuses is None or (b.status in statuses and b.lot_id == self.policy.lot_id)
                   for b in self.bookings.get(match.commitment, ()))

    def _identify(self, known: Callable[[Match], bool]) -> Match | Decision:
        found = _nearest(self.matches, known)
        if not found:
            exact = self.matches[0]
            return Decision(False, Reason.NO_BOOKING, self.evidence, matched_plate=exact.plate,
                            commitment=exact.commitment)
        if _distinct_vehicles(found) > 1:
            return Decision(False, Reason.AMBIGUOUS_MATCH, self.evidence, distance=found[0].distance)
        return found[0]

    def entry(self) -> Decision:
        match = self._identify(lambda m: self._allow_listed(m) or self._booked(m, None))
        if isinstance(match, Decision):
            return match
        if self._allow_listed(match):
            return self._admit(match, Reason.ALLOW_LISTED, None, capacity=False)
        booking, verdict = best_booking(self.bookings[match.commitment], self.now_ms, self.policy,
                                        self.start_known)
        if verdict is not Reason.BOOKING_VALID:
            return self._result(False, verdict, match, booking.booking_id)
        return self._admit(match, Reason.BOOKING_VALID, booking.booking_id, capacity=True)

    def _admit(self, match: Match, reason: Reason, booking_id: str | None, *, capacity: bool) -> Decision:
        session = self.presence.inside.get(match.commitment)
        # Inside under another booking means its exit was missed (manual open, misread at the exit): a
        # new booking is a new visit, so it is flagged, never locked out for good by hard anti-passback.
        stale = session is not None and booking_id is not None and session.booking_id != booking_id
        refuse, flags = _passback(self._passback_mode, session is not None and not stale)
        if stale:
            flags = (*flags, Flag.STALE_SESSION)
        if refuse:
            return self._result(False, Reason.ANTI_PASSBACK, match, booking_id, flags)
        limit = self.policy.config.capacity
        full = limit is not None and self.presence.occupancy >= limit
        if capacity and full:
            return self._result(False, Reason.CAPACITY_FULL, match, booking_id, flags)
        return self._result(True, reason, match, booking_id, flags)

    def exit(self) -> Decision:
        inside = self.presence.inside
        match = self._identify(lambda m: m.commitment in inside or self._allow_listed(m)
                               or self._booked(m, EXIT_STATUSES))
        if isinstance(match, Decision):
            return match
        if match.commitment in inside:
            booking_id = inside[match.commitment].booking_id
            flags = self._overstay(match, booking_id)
            return self._result(True, Reason.SESSION_EXIT, match, booking_id, flags)
        # Known, but no recorded entry (tailgated, misread at the entry, parked before installation).
        refuse, flags = _passback(self._passback_mode, violated=True)
        refuse = refuse and self.rules.refuses_unrecorded_exit()
        reason, booking_id = Reason.ALLOW_LISTED, None
        if not self._allow_listed(match):
            reason = Reason.BOOKING_VALID
            booking_id = best_booking(self.bookings[match.commitment], self.now_ms, self.policy,
                                      self.start_known)[0].booking_id
            flags += self._overstay(match, booking_id)
        if refuse:
            return self._result(False, Reason.ANTI_PASSBACK, match, booking_id, flags)
        return self._result(True, reason, match, booking_id, flags)

    def _overstay(self, match: Match, booking_id: str | None) -> tuple[Flag, ...]:
        over = _overstayed(self.bookings.get(match.commitment, []), booking_id, self.now_ms, self.policy)
        return (Flag.OVERSTAY,) if over else ()
