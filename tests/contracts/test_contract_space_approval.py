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
    admitted and checked in), and once the listing has ended a second removal frees the location, which
    can then be registered again, by another owner."""
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
    assert world.admin.space_at(world.lot, "L-1/B17") == world.space_id  # its listing has not ended
    world.advance(5 * HOUR)  # past the listing's end
    assert len(world.admin.remove_space(world.space_id).named("SpaceRemoved")) == 1  # frees the bay
    assert world.admin.space_at(world.lot, "L-1/B17") == 0
    world.admin.verify_owner(world.stranger.sender, b"\x02" * 32)
    again = world.stranger.register_space(world.lot, "L-1/B17").return_value
    assert world.admin.space_at(world.lot, "L-1/B17") == again != world.space_id
    with reverts("AccessControlUnauthorizedAccount"):  # re-approval of the removed space is the admin's
        world.owner.approve_space(world.space_id)


def test_remove_approve_remove_leaves_the_space_unapproved(world: World) -> None:
    """Review: removeSpace tested "removed already" on the location, not on the approval, and approveSpace
    re-approved a removed space without claiming its location back; so remove, approve, remove left the
    space approved (no event, the owner kept listing) and its bay free for a second owner to register."""
    bay = "L-1/B17"
    assert len(world.admin.remove_space(world.space_id).named("SpaceRemoved")) == 1
    assert world.admin.space_at(world.lot, bay) == 0  # no listing: the bay is freed at once
    assert len(world.admin.approve_space(world.space_id).named("SpaceApproved")) == 1
    assert world.admin.space_at(world.lot, bay) == world.space_id  # re-approval claims the bay back
    world.admin.verify_owner(world.stranger.sender, b"\x02" * 32)
    with reverts("SpaceExists") as info:  # while it is approved nobody else registers its bay
        world.stranger.register_space(world.lot, bay)
    assert info.value.args_ == (world.lot, bay, world.space_id)
    events = world.admin.remove_space(world.space_id).named("SpaceRemoved")
    assert [(e.args["spaceId"], e.args["lotId"]) for e in events] == [(world.space_id, world.lot)]
    assert world.admin.get_space(world.space_id).approved is False
    assert world.admin.space_at(world.lot, bay) == 0
    start = world.now() + 600
    with reverts("SpaceNotApproved"):
        world.owner.create_rental_event(world.space_id, start, start + 4 * HOUR, PRICE_PER_HOUR)
    assert world.admin.remove_space(world.space_id).named("SpaceRemoved") == []  # nothing left to change


def test_a_removed_space_keeps_its_bay_while_its_listings_stand(world: World) -> None:
    """Review: removeSpace freed the bay while the removed space's bookings stood; a second owner
    registered the same bay, had it approved, listed the same hours and a second renter booked them: two
    cars admitted to one bay. Now the bay stays bound to the removed space until its listings have ended;
    removeSpace again then frees it."""
    bay = "L-1/B17"
    rental_id, start = listing(world)
    world.renter.request_rental(rental_id, start, start + 2 * HOUR, world.commitment())
    assert len(world.admin.remove_space(world.space_id).named("SpaceRemoved")) == 1
    assert world.admin.get_space(world.space_id).approved is False  # revoked at once
    assert world.admin.space_at(world.lot, bay) == world.space_id
    world.admin.verify_owner(world.stranger.sender, b"\x02" * 32)
    with reverts("SpaceExists") as info:
        world.stranger.register_space(world.lot, bay)
    assert info.value.args_ == (world.lot, bay, world.space_id)
    assert world.admin.remove_space(world.space_id).named("SpaceRemoved") == []  # the listing still stands
    assert world.admin.space_at(world.lot, bay) == world.space_id
    world.advance(4 * HOUR + 600)  # the listing has ended
    assert len(world.admin.remove_space(world.space_id).named("SpaceRemoved")) == 1
    assert world.admin.space_at(world.lot, bay) == 0
    again = world.stranger.register_space(world.lot, bay).return_value
    assert world.admin.space_at(world.lot, bay) == again


def test_reapproving_a_removed_space_whose_bay_was_taken_reverts(world: World) -> None:
    """Once a removed space's bay is registered by another space, re-approving the removed one would
    approve two spaces at one bay: it reverts SpaceExists naming the space that holds the bay."""
    bay = "L-1/B17"
    world.admin.remove_space(world.space_id)
    world.admin.verify_owner(world.stranger.sender, b"\x02" * 32)
    taken = world.stranger.register_space(world.lot, bay).return_value
    with reverts("SpaceExists") as info:
        world.admin.approve_space(world.space_id)
    assert info.value.args_ == (world.lot, bay, taken)
    assert world.admin.get_space(world.space_id).approved is False
    assert world.admin.space_at(world.lot, bay) == taken
