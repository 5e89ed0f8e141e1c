"""The booking service as a real uvicorn subprocess against a real anvil: a renter gets the vehicle
commitment of their plate with a signed request and books on chain with it; unsigned, tampered and
replayed requests, plates outside the lot's layouts, rate-limited clients and bookings in the past are
refused with a sentence."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from lot_world import HOUR, LOT, PLATE, LotWorld, lot_cli, service_process, signed_request

from edge.booking.client import signed_body
from edge.booking.requests import request_message
from edge.booking.service import address_key, address_keys
from edge.chain.contract import RentalClient
from edge.identity import plate_commitment
from edge.throttle import Throttle
from edge.tools.anvil import dev_account
from edge.tools.booking import BookingServiceProcess


@pytest.fixture(scope="module")
def service(lot_world: LotWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BookingServiceProcess]:
    log = tmp_path_factory.mktemp("booking") / "service.log"
    with service_process(lot_world, log, "--per-account-per-hour", "50", "--rentals-cache-s", "0.5",
                         "--log-window-blocks", "100") as running:  # windows and the event cache in use
        yield running


def test_renter_gets_a_commitment_and_books_with_it(lot_world: LotWorld,
                                                    service: BookingServiceProcess) -> None:
    w, renter = lot_world, dev_account(2)
    status, lot = service.get("/api/lot")
    assert status == 200 and lot["contract"] == w.contract and lot["lot"] == LOT and lot["plate_layouts"]
    status, rentals = service.get("/api/rentals")
    assert status == 200 and w.rental_id in [r["rental_id"] for r in rentals]

    start, end = w.rental_start, w.rental_start + 2 * HOUR
    status, answer = service.post("/api/commitment",
                                  signed_request(w, renter, window=(w.rental_id, start, end)))
    assert status == 200, answer
    assert answer["account"] == renter.address
    assert answer["commitment"] == "0x" + plate_commitment(w.plate_key, LOT, PLATE).hex()
    assert answer["quote_wei"] == 2 * 10**15

    code, booked, err = lot_cli("book", "--rental", str(w.rental_id), "--start", str(start), "--end",
                                str(end), "--commitment", answer["commitment"], *w.common(),
                                *w.keys.flags("renter"))
    assert code == 0, err
    status, booking = service.get(f"/api/bookings/{booked['booking_id']}")
    assert status == 200, booking
    assert (booking["status"], booking["renter"], booking["vehicle_commitment"], booking["escrow_wei"]) == (
        "requested", renter.address, answer["commitment"], answer["quote_wei"])
    code, rows, err = lot_cli("bookings", "--lot", LOT, *w.common())
    assert code == 0 and booking in rows, err
    assert service.get("/api/bookings/99999")[0] == 404
    assert service.get("/api/bookings/%C2%B9")[0] == 400  # a superscript one is a digit to str.isdigit


def test_request_without_a_valid_signature_is_refused(lot_world: LotWorld,
                                                      service: BookingServiceProcess) -> None:
    body = signed_request(lot_world, dev_account(2))
    unsigned = {**body, "signature": "0x" + "00" * 65}
    status, answer = service.post("/api/commitment", unsigned)
    assert status == 401 and "signature" in answer["error"] and "commitment" not in answer
    tampered = {**body, "message": body["message"].replace(PLATE, "M-XY 99")}
    status, answer = service.post("/api/commitment", tampered)
    assert status == 401 and "not " + dev_account(2).address in answer["error"] and "commitment" not in answer
    stranger = Account.create()  # signs, but claims to be the renter
    forged = {**body, "signature": "0x" + bytes(Account.sign_message(
        encode_defunct(text=body["message"]), stranger.key).signature).hex()}
    assert service.post("/api/commitment", forged)[0] == 401
    for bad in (b"not json", b"[]", json.dumps({"message": 1}).encode(), b"{" + b" " * 5000 + b"}"):
        status, answer = service.post("/api/commitment", bad)
        assert status in (400, 413) and answer["error"], answer
    assert service.post("/api/commitment", body)[0] == 200  # the service still answers a good request


def test_an_account_that_is_no_address_is_refused_naming_it_escaped(lot_world: LotWorld,
                                                                   service: BookingServiceProcess) -> None:
    """The claimed account is checked (as the account pages check theirs) before it goes into any answer:
    a lone surrogate, which no answer could even encode, and markup come back escaped in a 400."""
    renter = dev_account(2)
    body = signed_request(lot_world, renter)
    for account, shown in (("\ud800", "'\\ud800'"), ("<b>0x12</b>", "'<b>0x12</b>'")):
        status, answer = service.post("/api/commitment", {**body, "account": account})
        assert status == 400 and answer["error"] == f"account {shown} must be 0x and 40 hex digits", answer
    status, answer = service.post("/api/commitment", {**body, "account": renter.address.lower()})
    assert status == 200 and answer["account"] == renter.address  # any letter case, as before


def test_replay_other_lot_expiry_and_plate_layout_refused(lot_world: LotWorld,
                                                          service: BookingServiceProcess) -> None:
    w, renter = lot_world, dev_account(2)
    body = signed_request(w, renter)
    assert service.post("/api/commitment", body)[0] == 200
    status, answer = service.post("/api/commitment", body)
    assert status == 409 and "already answered" in answer["error"]

    now = int(time.time())
    other_lot = request_message("LOT-SUED-2", w.contract, 31337, PLATE, secrets.token_hex(16), now + 60)
    status, answer = service.post("/api/commitment", signed_body(renter, other_lot))
    assert status == 400 and "this service serves lot LOT-NORD-1" in answer["error"]
    expired = request_message(LOT, w.contract, 31337, PLATE, secrets.token_hex(16), now - 1)
    assert "expired" in service.post("/api/commitment", signed_body(renter, expired))[1]["error"]
    status, answer = service.post("/api/commitment", signed_request(w, renter, plate="ABC 12345 XYZ"))
    assert status == 422 and "plate" in answer["error"] and "ABC" not in answer["error"]
    status, answer = service.post("/api/commitment", signed_request(w, renter, plate="1234567"))
    assert status == 422 and "fits none of this lot's plate layouts" in answer["error"]


def test_booking_in_the_past_is_refused_with_a_sentence(lot_world: LotWorld,
                                                        service: BookingServiceProcess) -> None:
    w, renter = lot_world, dev_account(2)
    now = w.now()
    past = (w.rental_id, now - 3 * HOUR, now - HOUR)
    status, answer = service.post("/api/commitment", signed_request(w, renter, window=past))
    assert status == 422 and "the booking is in the past" in answer["error"], answer
    assert "commitment" not in answer

    commitment = "0x" + plate_commitment(w.plate_key, LOT, PLATE).hex()
    code, out, err = lot_cli("book", "--rental", str(w.rental_id), "--start", str(now - 3 * HOUR), "--end",
                             str(now - HOUR), "--commitment", commitment, *w.common(),
                             *w.keys.flags("renter"))
    assert (code, out) == (1, None)
    assert "the booking is in the past" in err and "InvalidWindow" not in err, err
    code, _, err = lot_cli("book", "--rental", str(w.rental_id), "--start", str(w.rental_start), "--end",
                           str(w.rental_start + 600), "--commitment", commitment, *w.common(),
                           *w.keys.flags("renter"))
    assert code == 1 and "shortest booking is 60 minutes" in err, err


def test_rate_limits_per_account_and_per_address(lot_world: LotWorld, tmp_path: Path) -> None:
    w = lot_world
    first, second, third = dev_account(2), dev_account(3), dev_account(4)
    # reads refill one a minute here: the 61 reads below take far less, even on a loaded machine
    with service_process(w, tmp_path / "service.log", "--per-account-per-hour", "2",
                         "--per-address-per-hour", "5", "--reads-per-address-per-hour", "60") as limited:
        assert [limited.post("/api/commitment", signed_request(w, first))[0] for _ in range(2)] == [200, 200]
        status, answer = limited.post("/api/commitment", signed_request(w, first))
        assert status == 429 and f"for account {first.address}" in answer["error"]
        assert limited.post("/api/commitment", signed_request(w, second))[0] == 200
        assert limited.post("/api/commitment", signed_request(w, second))[0] == 200
        status, answer = limited.post("/api/commitment", signed_request(w, third))
        assert status == 429 and "from this address" in answer["error"]
        # chain reads: a burst of 60 per address, then refused (a polling page cannot flood the node)
        statuses = [limited.get(f"/api/bookings/{n}")[0] for n in range(1, 62)]
        assert set(statuses[:60]) <= {200, 404} and statuses[60] == 429
        assert limited.get("/healthz")[0] == 200


def test_address_key_groups_ipv6_by_prefix() -> None:
    assert address_key("127.0.0.1") == "127.0.0.1"
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "2001:db8::/64"
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert address_keys("2001:db8:1:2::5") == ["2001:db8:1:2::/64", "2001:db8:1::/48", "2001:db8::/32"]
    assert address_keys("::ffff:10.0.0.1") == address_keys("10.0.0.1") == ["10.0.0.1", "10.0.0.0/24"]


def post_as(service: BookingServiceProcess, client: str, body: dict[str, str], path: str = "/api/commitment",
            content_type: str = "application/json") -> tuple[int, dict]:
    """POST a commitment request as ``client``: the service trusts X-Forwarded-For from its proxy
    (here the test, on loopback, passed as --forwarded-allow-ips 127.0.0.1)."""
    request = urllib.request.Request(service.url + path, data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": content_type,
                                                             "X-Forwarded-For": client})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_many_addresses_of_one_network_share_its_budget_and_the_instance_has_a_cap(
        lot_world: LotWorld, tmp_path: Path) -> None:
    """One holder of many /64s (a tunnel broker's free /48 is 65,536 of them) gets its /48's budget (4
    times an address's), its /32's (16 times), an IPv4 /24 4 times an address's, and all clients
    together the instance's cap, logged as an ALERT."""
    w, renter = lot_world, dev_account(2)
    log = tmp_path / "service.log"
    with service_process(w, log, "--per-account-per-hour", "100", "--per-address-per-hour", "1",
                         "--per-instance-per-hour", "20", "--forwarded-allow-ips", "127.0.0.1") as limited:
        def ask(client: str) -> tuple[int, dict]:
            return post_as(limited, client, signed_request(w, renter))

        statuses = [ask(f"2001:db8:1:{n:x}::1")[0] for n in range(6)]  # six /64s of one /48
        assert statuses == [200] * 4 + [429] * 2, statuses
        status, answer = ask("2001:db8:1:99::1")
        assert status == 429 and "from this network (2001:db8:1::/48): at most 4 per hour" in answer["error"]
        # more /48s of the same /32: 16 in all for the /32
        statuses = [ask(f"2001:db8:{net:x}:{n:x}::1")[0] for net in range(2, 6) for n in range(4)]
        assert statuses.count(200) == 12 and statuses[-4:] == [429] * 4, statuses
        status, answer = ask("2001:db8:77::1")
        assert status == 429 and "(2001:db8::/32): at most 16 per hour" in answer["error"]
        assert [ask(f"10.0.0.{n}")[0] for n in range(1, 7)] == [200] * 4 + [429] * 2  # an IPv4 /24
        status, answer = ask("10.0.1.1")  # 20 answered in all: the instance's cap
        assert status == 429 and "at most 20 per hour in all" in answer["error"], answer
    assert "ALERT booking service: the instance-wide limit of 20" in log.read_text()


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_named(lot_world: LotWorld, tmp_path: Path) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: a client on this host, or behind a proxy
    passing the header on, would pick the address the limits count. Without --forwarded-allow-ips the
    header is ignored; '*' is refused at start, naming the option."""
    w, renter = lot_world, dev_account(2)
    with service_process(w, tmp_path / "service.log", "--per-account-per-hour", "100",
                         "--per-address-per-hour", "2") as service:
        statuses = [post_as(service, client, signed_request(w, renter))[0]
                    for client in ("192.0.2.1", "198.51.100.1", "203.0.113.1")]
        assert statuses == [200, 200, 429], statuses
    for allowed in ("*", "127.0.0.1, *", "proxy.example"):
        result = subprocess.run([sys.executable, "-m", "edge.cli", "booking-service", "--rpc", w.rpc,
                                 "--contract", w.contract, "--lot", LOT, "--plate-key-file",
                                 str(w.plate_key_file), "--plate-regions", "de", "--port", "1",
                                 "--forwarded-allow-ips", allowed], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 1 and "--forwarded-allow-ips" in result.stderr, result.stderr
        assert "e.g. 127.0.0.1 or 10.0.0.0/24" in result.stderr, result.stderr


@pytest.mark.parametrize(("option", "value"), [("--from-block", "-5"), ("--log-window-blocks", "0"),
                                              ("--confirmations", "-1")])
def test_a_block_option_out_of_range_is_refused_naming_it(option: str, value: str) -> None:
    """A negative first block was taken and scanned from; each block option names its range."""
    result = subprocess.run([sys.executable, "-m", "edge.cli", "booking-service", "--contract", "0x0",
                             "--lot", LOT, option, value], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2 and f"argument {option}: {value} is out of range" in result.stderr, \
        result.stderr


def test_a_post_that_is_not_json_is_refused_before_it_spends_the_budget(lot_world: LotWorld,
                                                                        tmp_path: Path) -> None:
    """A cross-site page can POST text/plain (or a form) with no CORS preflight: any website a renter
    visits could spend the renter's address budget. POSTs need Content-Type: application/json (415
    otherwise, naming it) and a refused one costs nothing."""
    w, renter = lot_world, dev_account(2)
    with service_process(w, tmp_path / "service.log", "--per-account-per-hour", "100",
                         "--per-address-per-hour", "2", "--reads-per-address-per-hour", "60") as service:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"):
            status, answer = post_as(service, "-", signed_request(w, renter), content_type=content_type)
            assert status == 415 and "Content-Type must be application/json" in answer["error"], answer
        preflight = {"from": renter.address, "data": "0xdeadbeef"}
        for _ in range(61):  # more than the read burst: a refused pre-flight takes no read either
            status, answer = post_as(service, "-", preflight, "/api/preflight", "text/plain;charset=UTF-8")
            assert status == 415, answer
        assert post_as(service, "-", preflight, "/api/preflight")[0] == 400
        assert [post_as(service, "-", signed_request(w, renter), content_type=ct)[0]
                for ct in ("application/json", "Application/JSON; charset=utf-8", "application/json")] == [
            200, 200, 429]


def test_a_full_throttle_never_forgets_a_key_still_limited() -> None:
    """A key forgotten while its bucket is spent would come back full: a client with more keys than the
    table holds would never be limited. A full table refuses new keys until one refills."""
    now = [0.0]
    throttle = Throttle(rate_per_s=1 / 3600, burst=1, max_keys=2, clock=lambda: now[0])
    assert throttle.allow("a") and throttle.allow("b")
    assert not throttle.allow("c") and throttle.refused_new == 1  # a and b are spent: no room
    assert not throttle.allow("a")  # a was not forgotten: still spent
    now[0] = 3600.0  # a and b refilled: the same as never seen, so either may make room
    assert throttle.allow("c") and not throttle.allow("c")
    assert len(throttle._buckets) == 2


def test_cancelled_listing_leaves_the_offer_and_is_refused(lot_world: LotWorld,
                                                           service: BookingServiceProcess) -> None:
    w, common = lot_world, lot_world.common()
    start = w.rental_end + HOUR  # after the module's listing: no overlap on the space
    code, listed, err = lot_cli("rental", "add", "--space", str(w.space_id), "--start", str(start), "--end",
                                str(start + 4 * HOUR), "--price-per-hour-wei", "7", *common,
                                *w.keys.flags("owner"))
    assert code == 0, err
    rental = listed["rental_id"]
    time.sleep(0.6)  # the service caches the rental list (here for 0.5 s)
    assert rental in [r["rental_id"] for r in service.get("/api/rentals")[1]]
    code, _, err = lot_cli("rental", "cancel", "--rental", str(rental), *common, *w.keys.flags("owner"))
    assert code == 0, err
    code, rows, err = lot_cli("rentals", "--lot", LOT, *common)
    assert code == 0 and next(r for r in rows if r["rental_id"] == rental)["cancelled"] is True, err
    time.sleep(0.6)
    assert rental not in [r["rental_id"] for r in service.get("/api/rentals")[1]]
    status, answer = service.post("/api/commitment", signed_request(
        w, dev_account(2), window=(rental, start, start + 2 * HOUR)))
    assert status == 422 and f"rental event {rental} is cancelled" in answer["error"]
    code, _, err = lot_cli("rental", "cancel", "--rental", str(rental), *common, *w.keys.flags("owner"))
    assert code == 1 and "is cancelled" in err, err


def test_a_removed_space_leaves_the_offer_and_is_refused(lot_world: LotWorld,
                                                         service: BookingServiceProcess) -> None:
    """A space the operator removed (`parkgate lot space remove`) takes no more bookings: its listing leaves
    /api/rentals and a commitment for it is refused in words, before the renter pays gas."""
    w, common = lot_world, lot_world.common()
    space_id, _ = w.approved_space("L-3/B9")
    rental, start = w.listing(space_id)
    time.sleep(0.6)  # the service caches the rental list (here for 0.5 s)
    assert rental in [r["rental_id"] for r in service.get("/api/rentals")[1]]
    code, removed, err = lot_cli("space", "remove", "--space", space_id, *common, *w.keys.flags("operator"))
    assert code == 0 and removed["approved"] is False, err
    time.sleep(0.6)
    assert rental not in [r["rental_id"] for r in service.get("/api/rentals")[1]]
    status, answer = service.post("/api/commitment", signed_request(
        w, dev_account(2), window=(rental, start, start + 2 * HOUR)))
    assert status == 422 and "a space the lot no longer approves" in answer["error"], answer


def test_preflight_explains_a_refused_call_in_words(lot_world: LotWorld,
                                                    service: BookingServiceProcess) -> None:
    """The pages run each call through POST /api/preflight before the wallet sends it: a call the contract
    would refuse comes back as the sentence `parkgate lot` prints; bad bodies are named."""
    w = lot_world
    contract = RentalClient(w.w3, w.contract).contract
    stranger = dev_account(4).address  # never verified as an owner
    data = contract.encode_abi("registerSpace", [bytes.fromhex(service.get("/api/lot")[1]["lot_id"][2:]),
                                                 "L-9/B99"])
    status, answer = service.post("/api/preflight", {"from": stranger, "data": data, "value": "0x0"})
    assert status == 422 and answer["error"].startswith(f"account {stranger} is not a verified owner"), answer
    owner = dev_account(1).address
    assert service.post("/api/preflight", {"from": owner, "data": data}) == (
        200, {"ok": True, "function": "registerSpace"})
    now = w.now()
    past = contract.encode_abi("requestRental", [w.rental_id, now - 3 * HOUR, now - HOUR, b"\x01" * 32])
    status, answer = service.post("/api/preflight", {"from": dev_account(2).address, "data": past})
    assert status == 422 and "the booking is in the past" in answer["error"], answer
    for body, says in (({"from": owner, "data": "0xdeadbeef"}, "ParkgateRental function call"),
                       ({"from": "0x12", "data": data}, "must be 0x and 40 hex digits"),
                       ({"from": owner, "data": data, "value": "12"}, "value must be a 0x hex number"),
                       ({"from": owner, "data": "0x" + "ab" * 1500}, "at most"),
                       ([], '{"from": "0x...", "data": "0x...", "value": "0x..."}')):
        status, answer = service.post("/api/preflight", body)
        assert status in (400, 413) and says in answer["error"], (body, answer)


def test_owner_and_renter_views_read_the_chain(lot_world: LotWorld, service: BookingServiceProcess) -> None:
    w = lot_world
    status, owner = service.get(f"/api/owners/{dev_account(1).address}")
    assert status == 200 and owner["verified"] is True, owner
    assert w.space_id in [s["space_id"] for s in owner["spaces"]]
    assert w.rental_id in [r["rental_id"] for r in owner["rentals"]]
    assert owner["chain_time"] >= w.now() - 5 and owner["pending_wei"] >= 0
    status, stranger = service.get(f"/api/owners/{dev_account(4).address}")
    assert status == 200 and not stranger["verified"] and stranger["spaces"] == stranger["rentals"] == []
    status, renter = service.get(f"/api/renters/{dev_account(2).address}")
    assert status == 200 and all(b["renter"] == dev_account(2).address for b in renter["bookings"])
    for path in ("/api/owners/0x12", "/api/renters/not-an-address", "/api/owners/0x" + "g" * 40):
        status, answer = service.get(path)
        assert status == 400 and "must be 0x and 40 hex digits" in answer["error"], (path, answer)
    status, abi = service.get("/api/abi")
    assert status == 200 and {"requestRental", "withdraw"} <= {e.get("name") for e in abi["abi"]}
