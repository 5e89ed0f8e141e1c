"""Spaces are approved by a lot admin before they are listed, replayed on a real anvil.

The attack it stops: owner verification is global, so an owner verified for a bay in one lot registered
a made-up bay in another lot, listed it, booked it for its own car and was let into a garage it holds no
bay in (the gateway admits any booking of its lot). Now a space is listed and booked only once a lot
admin has approved it, and an admin can withdraw a space (a wrong or squatted registration).
"""

from __future__ import annotations

from rental_world import HOUR, PRICE_PER_HOUR, World, gate_record, listing, reverts

from edge.chain.contract import ChainBookingStatus, RecordKind


def test_an_owner_cannot_sell_entry_to_a_lot_it_holds_no_bay_in(world: World) -> None:
    """The replay: the verified owner registers a bay in the other lot; until that lot's admin approves
    it, it cannot be listed, so no booking of it reaches the other lot's gateway."""
    fake = world.owner.register_space(world.other_lot, "L-0/FAKE").return_value
    assert world.admin.get_space(fake).approved is False
    start = world.now() + 600
    with reverts("SpaceNotApproved") as info:
        world.owner.create_rental_event(fake, start, start + 4 * HOUR, PRICE_PER_HOUR)
    assert info.value.args_ == (fake,)
    assert world.admin.counts()[1] == 0  # no rental event, so nothing to book


def test_only_a_lot_admin_approves_and_an_approved_space_lists(world: World) -> None:
    space = world.owner.register_space(world.lot, "L-1/B18").return_value
    for outsider in (world.owner, world.stranger):  # its own owner cannot approve it either
        with reverts("AccessControlUnauthorizedAccount"):
            outsider.approve_space(space)
    with reverts("UnknownSpace"):
        world.admin.approve_space(999)
    approved = world.admin.approve_space(space)
    events = approved.named("SpaceApproved")
    assert [(e.args["spaceId"], e.args["lotId"]) for e in events] == [(space, world.lot)]
    assert world.admin.approve_space(space).named("SpaceApproved") == []  # approving twice changes nothing
    start = world.now() + 600
    rental = world.owner.create_rental_event(space, start, start + 4 * HOUR, PRICE_PER_HOUR).return_value
    booking = world.renter.request_rental(rental, start, start + HOUR, world.commitment()).return_value
    assert world.admin.get_booking(booking).status == ChainBookingStatus.REQUESTED


def test_a_removed_space_takes_no_new_bookings_and_frees_its_location(world: World) -> None:
    """Removal: new bookings of its listing are refused, the booking made before stands (its car is
    admitted and checked in), and the location can be registered again, by another owner."""
    rental_id, start = listing(world)
    booked = world.renter.request_rental(rental_id, start, start + HOUR, world.commitment()).return_value
    with reverts("AccessControlUnauthorizedAccount"):
        world.owner.remove_space(world.space_id)
    removed = world.admin.remove_space(world.space_id)
    assert len(removed.named("SpaceRemoved")) == 1
    assert world.admin.remove_space(world.space_id).named("SpaceRemoved") == []  # once
    assert world.admin.get_space(world.space_id).approved is False
    with reverts("SpaceNotApproved"):
        world.renter.request_rental(rental_id, start + 2 * HOUR, start + 3 * HOUR, world.commitment())
    with reverts("SpaceNotApproved"):
        world.owner.create_rental_event(world.space_id, start + 5 * HOUR, start + 6 * HOUR, PRICE_PER_HOUR)
    check_in = gate_record(world, RecordKind.CHECK_IN, booked, 1, world.now())
    result = world.gateway.record_gate_events([check_in])
    assert len(result.named("SecondAssociation")) == 1
    assert world.admin.space_at(world.lot, "L-1/B17") == 0
    world.admin.verify_owner(world.stranger.sender, b"\x02" * 32)
    again = world.stranger.register_space(world.lot, "L-1/B17").return_value
    assert world.admin.space_at(world.lot, "L-1/B17") == again != world.space_id
    with reverts("AccessControlUnauthorizedAccount"):  # re-approval of the removed space is the admin's
        world.owner.approve_space(world.space_id)
