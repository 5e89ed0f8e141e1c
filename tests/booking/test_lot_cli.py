"""`parkgate lot` on a real anvil: an operator deploys, registers a lot, adds and funds a gateway,
verifies an owner; the owner registers a space and lists it; refusals are sentences, not error codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from lot_world import ATTESTATION, HOUR, LOT, PLATE, PRICE_PER_HOUR, LotWorld, lot_cli

from edge.chain.contract import ContractRevert, GateRecord, RecordKind, RentalClient, load_artifact
from edge.chain.reverts import SENTENCES, RevertContext, explain
from edge.chain.windows import MAX_ADVANCE_S, booking_window_problem, parse_chain_time, rental_window_problem
from edge.identity import plate_commitment
from edge.tools.anvil import dev_account

NOW = 1_800_000_000


def test_every_contract_error_has_a_sentence() -> None:
    errors = {e["name"] for e in load_artifact()["abi"] if e["type"] == "error"}
    assert errors - set(SENTENCES) == set()


def test_window_errors_say_what_is_wrong_in_words() -> None:
    past = rental_window_problem(NOW - 60, NOW + HOUR, NOW)
    assert past is not None and "starts in the past" in past
    assert rental_window_problem(NOW + 60, NOW + HOUR, NOW) is None
    booking = booking_window_problem(NOW - 3 * HOUR, NOW - HOUR, NOW, NOW - 9 * HOUR, NOW + HOUR)
    assert booking is not None and "in the past" in booking
    short = booking_window_problem(NOW, NOW + 600, NOW, NOW, NOW + HOUR)
    assert short is not None and "shortest booking is 60 minutes" in short
    ahead = NOW + MAX_ADVANCE_S + 60
    far = booking_window_problem(ahead, ahead + HOUR, NOW, NOW, NOW + 400 * 24 * HOUR)
    assert far is not None and "more than 14 days ahead" in far
    assert booking_window_problem(ahead - 60, ahead + HOUR, NOW, NOW, NOW + 400 * 24 * HOUR) is None
    assert "more than 14 days ahead" in explain(ContractRevert("TooFarAhead", (ahead, ahead - 60), "0x"))
    revert = ContractRevert("InvalidWindow", (NOW - 60, NOW + HOUR), "0x")
    assert "starts in the past" in explain(revert, RevertContext(now=NOW))
    assert "InvalidWindow" not in explain(revert)
    with pytest.raises(ValueError, match="neither unix seconds nor ISO 8601"):
        parse_chain_time("¹")
    assert parse_chain_time("2027-01-15T08:00:00Z") == parse_chain_time("2027-01-15 08:00") == 1_800_000_000


def test_operator_sets_up_a_lot_with_a_funded_gateway(lot_world: LotWorld) -> None:
    w, common = lot_world, lot_world.common()
    gateway = Account.create()  # a fresh gateway key: no ether until the operator funds it
    code, out, err = lot_cli("gateway", "add", "--lot", LOT, "--address", gateway.address, "--fund", "0.05",
                             *common, *w.keys.flags("operator"))
    assert code == 0, err
    assert out["gateway"] == gateway.address and out["funded_wei"] == 5 * 10**16
    assert w.w3.eth.get_balance(gateway.address) == 5 * 10**16
    client_gateway = w.w3.eth.contract(address=w.contract, abi=load_artifact()["abi"])
    assert client_gateway.functions.gatewayOf(b"LOT-NORD-1".ljust(32, b"\0"), gateway.address).call()

    code, spaces, err = lot_cli("spaces", "--lot", LOT, *common)
    assert code == 0, err
    assert {"space_id": w.space_id, "owner": dev_account(1).address, "location": "L-1/B17",
            "approved": True} in spaces
    code, rentals, err = lot_cli("rentals", "--lot", LOT, *common)
    assert code == 0, err
    listed = next(r for r in rentals if r["rental_id"] == w.rental_id)
    assert (listed["start"], listed["end"], listed["price_per_hour_wei"], listed["cancelled"]) == (
        w.rental_start, w.rental_end, PRICE_PER_HOUR, False)

    code, out, err = lot_cli("gateway", "remove", "--lot", LOT, "--address", gateway.address, *common,
                             *w.keys.flags("operator"))
    assert code == 0, err
    assert not client_gateway.functions.gatewayOf(b"LOT-NORD-1".ljust(32, b"\0"), gateway.address).call()


def test_refusals_are_sentences_naming_what_to_change(lot_world: LotWorld) -> None:
    w, common = lot_world, lot_world.common()
    start = w.now() - HOUR
    code, out, err = lot_cli("rental", "add", "--space", str(w.space_id), "--start", str(start), "--end",
                             str(start + 4 * HOUR), "--price-per-hour-wei", "1", *common,
                             *w.keys.flags("owner"))
    assert (code, out) == (1, None)
    assert "starts in the past" in err and "InvalidWindow" not in err, err

    code, _, err = lot_cli("register", "--lot", LOT, "--geohash", "u33dc0", *common,
                           *w.keys.flags("operator"))
    assert code == 1 and "already registered" in err, err

    code, _, err = lot_cli("space", "add", "--lot", LOT, "--location", "B2", *common, *w.keys.flags("renter"))
    assert code == 1 and "is not a verified owner" in err and "owner verify" in err, err

    code, _, err = lot_cli("owner", "verify", "--address", dev_account(3).address, "--attestation",
                           ATTESTATION, *common, *w.keys.flags("renter"))
    assert code == 1 and "lacks the contract role" in err, err

    code, _, err = lot_cli("expire", "--booking", "999", *common, *w.keys.flags("operator"))
    assert code == 1 and "booking 999 does not exist" in err, err

    bad_password = w.keys.directory / "wrong-password"
    bad_password.write_text("not it\n")
    code, _, err = lot_cli("register", "--lot", "LOT-X", "--geohash", "u3", *common, "--keystore",
                           str(w.keys.files["operator"]), "--password-file", str(bad_password))
    assert code == 1 and "wrong password" in err and "not it" not in err, err

    code, _, err = lot_cli("spaces", "--lot", LOT, "--rpc", w.rpc, "--contract", "0x" + "00" * 20)
    assert code == 1 and "has no code" in err, err


def test_owner_revoked_cannot_list_any_more(lot_world: LotWorld) -> None:
    """A revoked owner lists no more, its listing takes no more bookings, and the verifier (the operator)
    cancels the listing: the renter's booking is refunded."""
    w, common = lot_world, lot_world.common()
    owner = dev_account(4)
    w.keys.add("owner4", owner)
    code, _, err = lot_cli("owner", "verify", "--address", owner.address, "--attestation", ATTESTATION,
                           *common, *w.keys.flags("operator"))
    assert code == 0, err
    code, space, err = lot_cli("space", "add", "--lot", LOT, "--location", "L-2/B1", *common,
                               *w.keys.flags("owner4"))
    assert code == 0, err
    start = w.now() + 3 * HOUR
    listing = ("rental", "add", "--space", str(space["space_id"]), "--start", str(start), "--end",
               str(start + 4 * HOUR), "--price-per-hour-wei", "5", *common, *w.keys.flags("owner4"))
    code, _, err = lot_cli(*listing)  # registered, not yet approved by the lot
    assert code == 1 and f"space {space['space_id']} is not approved by the lot" in err, err
    code, _, err = lot_cli("space", "approve", "--space", str(space["space_id"]), *common,
                           *w.keys.flags("owner4"))
    assert code == 1 and "lacks the contract role" in err, err
    code, approved, err = lot_cli("space", "approve", "--space", str(space["space_id"]), *common,
                                  *w.keys.flags("operator"))
    assert code == 0 and approved["approved"] is True, err
    code, spaces, err = lot_cli("spaces", "--lot", LOT, "--rpc", w.rpc, "--contract", w.contract)
    assert code == 0 and {s["space_id"]: s["approved"] for s in spaces}[space["space_id"]] is True, err
    code, rental, err = lot_cli(*listing)
    assert code == 0, err
    commitment = "0x" + plate_commitment(w.plate_key, LOT, PLATE).hex()

    def book(at: int) -> tuple[int, dict | list | None, str]:
        return lot_cli("book", "--rental", str(rental["rental_id"]), "--start", str(at), "--end",
                       str(at + HOUR), "--commitment", commitment, *common, *w.keys.flags("renter"))

    code, booked, err = book(start)
    assert code == 0, err
    code, _, err = lot_cli("owner", "revoke", "--address", owner.address, *common, *w.keys.flags("operator"))
    assert code == 0, err
    code, _, err = lot_cli("rental", "add", "--space", str(space["space_id"]), "--start",
                           str(start + 5 * HOUR), "--end", str(start + 6 * HOUR), "--price-per-hour-wei", "5",
                           *common, *w.keys.flags("owner4"))
    assert code == 1 and "is not a verified owner" in err, err
    code, _, err = book(start + 2 * HOUR)
    assert code == 1 and f"account {owner.address} is not a verified owner" in err, err
    code, _, err = lot_cli("rental", "cancel", "--rental", str(rental["rental_id"]), *common,
                           *w.keys.flags("operator"))
    assert code == 0, err
    code, rows, err = lot_cli("bookings", "--lot", LOT, *common)
    assert code == 0, err
    assert next(r for r in rows if r["booking_id"] == booked["booking_id"])["status"] == "cancelled"


def test_console_script_deploys(lot_world: LotWorld, tmp_path: Path) -> None:
    """The installed entry point (`python -m edge.cli`, as `parkgate`) deploys and prints JSON."""
    result = subprocess.run([sys.executable, "-m", "edge.cli", "lot", "deploy", "--rpc", lot_world.rpc,
                             *lot_world.keys.flags("operator"), "--json"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert lot_world.w3.eth.get_code(out["contract"]) and out["chain_id"] == 31337
    key_hex = dev_account(0).key.hex()
    assert key_hex not in result.stdout + result.stderr


def test_unreachable_node_is_named(lot_world: LotWorld, tmp_path: Path) -> None:
    """A closed loopback port: `parkgate lot` and `parkgate booking-service` say which node failed."""
    from edge.tools.net import free_tcp_port

    closed = f"http://127.0.0.1:{free_tcp_port('127.0.0.1')}"
    code, _, err = lot_cli("spaces", "--lot", LOT, "--rpc", closed, "--contract", lot_world.contract)
    assert code == 1 and f"cannot reach the chain node at {closed}" in err, err
    for rpc, regions, says in ((closed, "de", f"the chain node at {closed} failed"),
                               (lot_world.rpc, "any", "plate-guessing oracle")):
        result = subprocess.run([sys.executable, "-m", "edge.cli", "booking-service", "--rpc", rpc,
                                 "--contract", lot_world.contract, "--lot", LOT, "--plate-key-file",
                                 str(lot_world.plate_key_file), "--plate-regions", regions],
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 1 and says in result.stderr, result.stderr


def test_bookings_move_through_their_states_and_settle(lot_world: LotWorld) -> None:
    """A funded gateway checks a booking in and out; `parkgate lot` shows the states, settles it,
    refuses to expire the no-show early (a sentence with the time), expires it after the deadline, and
    the owner withdraws."""
    w, common = lot_world, lot_world.common()
    snapshot = w.w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        gateway = Account.create()
        code, _, err = lot_cli("gateway", "add", "--lot", LOT, "--address", gateway.address, "--fund", "0.01",
                               *common, *w.keys.flags("operator"))
        assert code == 0, err
        commitment = plate_commitment(w.plate_key, LOT, PLATE)
        booked = []
        for start in (w.rental_start, w.rental_start + 3 * HOUR):
            code, out, err = lot_cli("book", "--rental", str(w.rental_id), "--start", str(start), "--end",
                                     str(start + 2 * HOUR), "--commitment", "0x" + commitment.hex(), *common,
                                     *w.keys.flags("renter"))
            assert code == 0, err
            booked.append(out["booking_id"])
        visit, no_show = booked
        gate = RentalClient(w.w3, w.contract, gateway)  # pays its gas from the --fund above
        gate.record_gate_events([GateRecord(1, RecordKind.CHECK_IN, visit, commitment, w.now())])
        w.w3.provider.make_request("evm_increaseTime", [w.rental_start + HOUR - w.now()])
        w.w3.provider.make_request("evm_mine", [])
        now = w.now()
        gate.record_gate_events([GateRecord(2, RecordKind.CHECK_OUT, visit, commitment, now)])

        def states() -> dict[int, str]:
            code, rows, err = lot_cli("bookings", "--lot", LOT, *common)
            assert code == 0, err
            return {row["booking_id"]: row["status"] for row in rows if row["booking_id"] in booked}

        assert states() == {visit: "checked_out", no_show: "requested"}
        code, _, err = lot_cli("expire", "--booking", str(no_show), *common, *w.keys.flags("operator"))
        assert code == 1 and f"booking {no_show} can only be expired or settled as overdue after" in err, err
        code, _, err = lot_cli("settle", "--booking", str(no_show), "999", *common, *w.keys.flags("operator"))
        assert code == 1 and "nothing settled" in err, err  # and no transaction sent
        assert f"booking {no_show} is requested" in err and "booking 999 is unknown" in err, err
        code, out, err = lot_cli("settle", "--booking", str(visit), str(no_show), *common,
                                 *w.keys.flags("operator"))
        assert code == 0 and out["settled"] == [visit], err
        assert out["skipped"] == [{"booking_id": no_show, "status": "requested"}]
        w.w3.provider.make_request("evm_increaseTime", [w.rental_start + 5 * HOUR + 24 * HOUR - now + 60])
        w.w3.provider.make_request("evm_mine", [])
        code, _, err = lot_cli("expire", "--booking", str(no_show), *common, *w.keys.flags("operator"))
        assert code == 0, err
        assert states() == {visit: "settled", no_show: "expired"}
        code, credit, err = lot_cli("credit", "--address", dev_account(1).address, *common)
        assert code == 0, err
        code, out, err = lot_cli("withdraw", *common, *w.keys.flags("owner"))
        # about one hour parked of two booked (the chain clock may add a few seconds)
        assert code == 0 and PRICE_PER_HOUR <= out["amount_wei"] <= PRICE_PER_HOUR * 61 // 60, err
        assert out["amount_wei"] == credit["credit_wei"]
        code, _, err = lot_cli("withdraw", *common, *w.keys.flags("owner"))
        assert code == 1 and "has nothing to withdraw" in err, err
    finally:
        assert w.w3.provider.make_request("evm_revert", [snapshot])["result"] is True


def test_unfunded_sender_and_bad_amounts_are_named(lot_world: LotWorld) -> None:
    w = lot_world
    w.keys.add("pauper", Account.create())  # a key with no ether
    code, _, err = lot_cli("deploy", "--rpc", w.rpc, *w.keys.flags("pauper"))
    assert code == 1 and "Insufficient funds for gas" in err and "fund the sender" in err, err
    for amount in ("NaN", "-1", "lots", "Infinity"):
        code, _, err = lot_cli("gateway", "fund", "--address", dev_account(7).address, "--fund", amount,
                               *w.common(), *w.keys.flags("operator"))
        assert code == 2 and "argument --fund" in err, (amount, err)
    code, _, err = lot_cli("gateway", "add", "--lot", "lot nord", "--address", dev_account(7).address,
                           *w.common(), *w.keys.flags("operator"))
    assert code == 1 and "invalid lot code" in err, err
    code, _, err = lot_cli("owner", "verify", "--address", "0x123", "--attestation", ATTESTATION, *w.common(),
                           *w.keys.flags("operator"))
    assert code == 1 and "is not an address" in err, err


def _nonce(w: LotWorld) -> int:
    return w.w3.eth.get_transaction_count(dev_account(0).address)


def test_sub_wei_fund_is_refused_before_any_transaction(lot_world: LotWorld) -> None:
    """Review s13 (5): `gateway add --fund 1e-19` authorised the gateway, then died with a traceback."""
    w, gateway = lot_world, Account.create()
    nonce = _nonce(w)
    for action in (["add", "--lot", LOT], ["fund"]):
        for amount in ("1e-19", "0.0000000000000000001"):
            code, out, err = lot_cli("gateway", *action, "--address", gateway.address, "--fund", amount,
                                     *w.common(), *w.keys.flags("operator"))
            assert (code, out) == (2, None), err
            assert "argument --fund" in err and "less than 1 wei" in err and "Traceback" not in err, err
    assert _nonce(w) == nonce  # nothing sent: the gateway was not authorised
    assert not RentalClient(w.w3, w.contract).is_gateway(b"LOT-NORD-1".ljust(32, b"\0"), gateway.address)
    code, out, err = lot_cli("gateway", "fund", "--address", gateway.address, "--fund", "1e-18", *w.common(),
                             *w.keys.flags("operator"))
    assert code == 0 and out["funded_wei"] == 1, err


@pytest.mark.parametrize(("args", "option", "allowed"), [
    (["rental", "add", "--space", "1", "--start", "2030-01-01T00:00Z", "--end", "2030-01-02T00:00Z",
      "--price-per-hour-wei", "-5"], "--price-per-hour-wei", "1 to 2**96 - 1"),
    (["rental", "add", "--space", "1", "--start", "2030-01-01T00:00Z", "--end", "2030-01-02T00:00Z",
      "--price-per-hour-wei", str(2**256)], "--price-per-hour-wei", "1 to 2**96 - 1"),
    (["rental", "add", "--space", "1", "--start", str(2**64), "--end", str(2**64 + 10),
      "--price-per-hour-wei", "1000"], "--start", "unix seconds, 0 to 2**64 - 1"),
    (["rental", "add", "--space", "-1", "--start", "2030-01-01T00:00Z", "--end", "2030-01-02T00:00Z",
      "--price-per-hour-wei", "1000"], "--space", "1 to 2**256 - 1"),
    (["rental", "cancel", "--rental", str(2**256)], "--rental", "1 to 2**256 - 1"),
    (["book", "--rental", "-1", "--start", "2030-01-01T00:00Z", "--end", "2030-01-01T02:00Z",
      "--commitment", "0x" + "11" * 32], "--rental", "1 to 2**256 - 1"),
    (["settle", "--booking", "-3"], "--booking", "1 to 2**256 - 1"),
    (["expire", "--booking", "1.5"], "--booking", "1 to 2**256 - 1"),
    (["bookings", "--lot", LOT, "--from-block", "-1"], "--from-block", "0 to 2**64 - 1"),
])
def test_out_of_range_numbers_name_the_option(lot_world: LotWorld, args: list[str], option: str,
                                              allowed: str) -> None:
    """Review s13 (6): a number out of range was blamed on the chain node; now the parser names it."""
    w = lot_world
    writes = [] if args[0] == "bookings" else w.keys.flags("owner")
    nonce = w.w3.eth.get_transaction_count(dev_account(1).address)
    code, out, err = lot_cli(*args, *w.common(), *writes)
    assert (code, out) == (2, None), err
    assert f"argument {option}" in err and f"allowed: {allowed}" in err and "chain node" not in err, err
    assert w.w3.eth.get_transaction_count(dev_account(1).address) == nonce


def test_owner_verify_requires_an_attestation(lot_world: LotWorld) -> None:
    """Review s13 (6): without --attestation a placeholder 0x00..01 was recorded."""
    w, owner = lot_world, dev_account(8).address
    nonce = _nonce(w)
    for extra, says in (([], "the following arguments are required: --attestation"),
                        (["--attestation", "0x" + "00" * 32], "is not a hash"),
                        (["--attestation", "0x12"], "is not 0x + 64 hex digits")):
        code, _, err = lot_cli("owner", "verify", "--address", owner, *extra, *w.common(),
                               *w.keys.flags("operator"))
        assert code == 2 and says in err, err
    assert _nonce(w) == nonce
    assert not RentalClient(w.w3, w.contract).is_verified_owner(owner)


def test_an_integer_where_bytes_belong_allocates_nothing() -> None:
    """A node answering an integer where the ABI says bytes32 (``bytes(2**40)`` would be 1 TiB of zeros)."""
    revert = ContractRevert("AccessControlUnauthorizedAccount", ("0xabc", 2**40), "0x")
    assert "0x?..." in explain(revert)
    role = ContractRevert("AccessControlUnauthorizedAccount", ("0xabc", bytes.fromhex("deadbeef" * 8)), "0x")
    assert "0xdeadbeef..." in explain(role)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["unknown", "Panic", "Error", "InvalidWindow", "BookingNotActive", "UnknownLot",
                        "NotYetExpired", "AccessControlUnauthorizedAccount", "WrongPayment", "TooManyLive"]),
       st.lists(st.one_of(st.integers(-2**70, 2**70), st.binary(max_size=40), st.text(max_size=600),
                          st.none()), max_size=3),
       st.one_of(st.none(), st.integers(0, 2**40)))
def test_any_revert_is_explained_in_one_sentence(name: str, args: list, now: int | None) -> None:
    """Whatever a node returns as error arguments, the explanation is a sentence, never an exception."""
    text = explain(ContractRevert(name, tuple(args), "0x" + "ab" * 40), RevertContext(now=now))
    assert isinstance(text, str) and text and "\n" not in text and len(text) <= 400


def test_space_approve_and_remove_print_what_the_chain_holds(lot_world: LotWorld) -> None:
    """`lot space approve|remove` print the approval and the location read back from the chain after the
    transaction (they printed approved true/false whatever it did): a removal of a space with a listing
    that has not ended revokes the approval at once but keeps the bay, and says to run remove again."""
    w, common = lot_world, lot_world.common()
    space_id, approved = w.approved_space("L-4/B1")
    assert (approved["approved"], approved["location"], approved["location_held"]) == (True, "L-4/B1", True)
    w.listing(space_id)
    for _ in range(2):  # the second removal changes nothing: the listing still stands
        code, removed, err = lot_cli("space", "remove", "--space", space_id, *common,
                                     *w.keys.flags("operator"))
        assert code == 0, err
        assert (removed["approved"], removed["location_held"]) == (False, True)
        assert f"note: space {space_id} keeps its location L-4/B1" in err
        assert "run `parkgate lot space remove` again once its listings have ended" in err
    code, again, err = lot_cli("space", "approve", "--space", space_id, *common, *w.keys.flags("operator"))
    assert code == 0 and (again["approved"], again["location_held"]) == (True, True), err
    code, removed, err = lot_cli("space", "remove", "--space", space_id, *common, *w.keys.flags("operator"))
    assert code == 0 and removed["approved"] is False, err
