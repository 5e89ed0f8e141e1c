"""The owner's and the renter's pages in a browser (Playwright driving Debian's chromium), against a real
anvil, the booking service as a real uvicorn subprocess and a real gateway daemon with pty gate emulators
and recorded cameras. The operator sets the lot up with `parkgate lot`; the owner lists a space and a
rental event in the owner's page; the renter books it in the renter's page, both through a wallet
injected into the page (EIP-1193) that signs with anvil's dev accounts; the gateway admits the renter's
rendered car and the renter's page shows it verified and checked in (the operator approves the owner's space
with `parkgate lot space approve`); after check-out the owner settles
and withdraws in the page. A booking in the past is refused in the page with a sentence."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from browser_wallet import install_wallet
from eth_account import Account
from lot_world import HOUR, Keys, lot_cli, lot_process, make_keys
from web3 import Web3

from edge.booking.pages import BUNDLE, SECURITY_HEADERS
from edge.chain.contract import RentalClient
from edge.tools.anvil import Anvil, dev_account
from edge.tools.booking import BookingServiceProcess
from edge.tools.demo import harness as h
from edge.tools.demo.world import chain_section, write_secrets
from edge.tools.emulator.launch import running_emulator

LOT = "LOT-PAGES-1"
ENTRY, EXIT = "entry-1", "exit-1"
# The render the daemon's own tests admit (tests/daemon: BOOKED), kept readable with the bundled models.
CAR = h.Vehicle("renter-car", "AB 123-CD", seed=721)
ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 90_000
ACCOUNTS = {"operator": 0, "owner": 1, "renter": 2}  # lot_world.make_keys


@dataclass
class PagesLot:
    """A lot set up by the operator with `parkgate lot` (subprocesses, keystores), its secrets (the
    gateway's keystore, the lot secret) and its booking service."""

    anvil: Anvil
    w3: Web3
    contract: str
    keys: Keys
    secrets: dict[str, Path]
    service: BookingServiceProcess

    def now(self) -> int:
        self.w3.provider.make_request("evm_mine", [])  # "latest" is now, not the last transaction's time
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def address(self, name: str) -> str:
        """The address of a keystore of make_keys (anvil's dev accounts, unlocked: the test wallet)."""
        return dev_account(ACCOUNTS[name]).address


@pytest.fixture(scope="module")
def pages_lot(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PagesLot]:
    work = tmp_path_factory.mktemp("pages")
    keys = make_keys(work / "keys")
    gateway = Account.create()
    code, out, err = lot_process("deploy", "--rpc", anvil.url, *keys.flags("operator"))
    assert code == 0, err
    common = ["--rpc", anvil.url, "--contract", out["contract"]]
    owner = dev_account(ACCOUNTS["owner"]).address
    for args in (["register", "--lot", LOT, "--geohash", "u33dc1"],
                 ["gateway", "add", "--lot", LOT, "--address", gateway.address, "--fund", "0.5"],
                 ["owner", "verify", "--address", owner, "--attestation", "0x" + "ab" * 32]):
        code, _, err = lot_process(*args, *common, *keys.flags("operator"))
        assert code == 0, err
    secrets = write_secrets(work / "secrets", gateway)
    polling = ("--reads-per-address-per-hour", "100000", "--rentals-cache-s", "0")  # two pages poll
    service = BookingServiceProcess(anvil.url, out["contract"], LOT, secrets["plate_key"],
                                    work / "service.log", "eu", polling)
    with service:
        yield PagesLot(anvil, anvil.web3(), out["contract"], keys, secrets, service)


def utc_input(ts: int) -> str:
    """A datetime-local value, read as UTC by the pages."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def ether(wei: int) -> str:
    """An amount as the pages show it (viem's formatEther: no exponent, no trailing zeros)."""
    text = f"{Decimal(wei).scaleb(-18):f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " ETH"


def connect(browser: Any, lot: PagesLot, who: str, path: str) -> tuple[Any, Any, list[str]]:
    """A browser context whose wallet holds ``who``'s account, its page at ``path``, connected."""
    context = browser.new_context(timezone_id="UTC")
    calls = install_wallet(context, lot.anvil.url, lot.address(who))
    page = context.new_page()
    page.goto(lot.service.url + path)
    page.wait_for_selector("body[data-ready=true]")
    page.click("#connect")
    page.wait_for_selector("body[data-connected=true]")
    return context, page, calls


def message(page: Any) -> str:
    return str(page.inner_text("#message"))


def said_id(page: Any, pattern: str) -> int:
    """The number the page's message gives once it says ``pattern`` (a regex with one number group)."""
    try:
        page.wait_for_function("p => new RegExp(p).test(document.querySelector('#message').textContent)",
                               arg=pattern, timeout=WAIT_MS)
    except Exception as exc:  # noqa: BLE001 - say what the page said instead
        raise AssertionError(f"the page never said {pattern!r}; it says {message(page)!r}") from exc
    found = re.search(pattern, message(page))
    assert found, message(page)
    return int(found.group(1))


def choose_and_book(page: Any, rental_id: int, plate: str, start: int, end: int) -> None:
    page.click(f"#rentals tr[data-rental-id='{rental_id}'] button.choose")
    page.fill("#plate", plate)
    page.fill("#start", utc_input(start))
    page.fill("#end", utc_input(end))
    page.click("#book-submit")


def drive(visit: h.Visit, emulator: Any, camera: h.LaneCamera, store: Path, approaches: int = 3
          ) -> tuple[h.VisitResult, list[tuple[Any, ...]]]:
    """The renter's car at a gate; refused on a misread, it backs off and comes again (another render,
    as a driver who backed up: ``take``), at most ``approaches`` times. This test is about the booking
    reaching the gate, not about OCR accuracy (tests/vision and tests/daemon measure that); every read
    is returned for the failure message."""
    seen: list[tuple[Any, ...]] = []
    for take in range(approaches):
        result = h.play_visit(visit, emulator, camera, store, take=take)
        seen += [(take, r["kind"], r["reason"], r["plate_masked"], r["confidence"]) for r in result.rows]
        if result.opened:
            break
    return result, seen


def start_gateway(stack: ExitStack, lot: PagesLot, work: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Two gate emulators on ptys, two recorded cameras and the daemon synced with the lot's contract."""
    emulators = {lane: stack.enter_context(running_emulator(work, name=lane)) for lane in (ENTRY, EXIT)}
    cameras = {lane: h.LaneCamera(work / "camera", lane) for lane in (ENTRY, EXIT)}
    config = work / "parkgate.toml"
    config.write_text(h.toml_text(
        {"gateway": {"id": "pages-gw", "lot_id": LOT, "state_dir": str(work / "state")},
         "vision": {"threads": 2},
         "chain": chain_section(lot.anvil.url, lot.contract, lot.secrets)},
        [{"name": lane, "direction": lane.split("-")[0],
          "gate": {"port": str(emulators[lane].link), "baudrate": 115200, "pulse_ms": 3000},
          "camera": {"source": str(cameras[lane].manifest), "fps": 10, "burst_frames": 3}}
         for lane in (ENTRY, EXIT)]))
    daemon = h.start_daemon(config, work / "daemon.log")
    stack.callback(daemon.stop)
    return emulators, cameras, work / "state" / "parkgate.sqlite"


def test_owner_lists_renter_books_the_gate_admits_and_the_owner_withdraws(pages_lot: PagesLot, browser: Any,
                                                                           tmp_path: Path) -> None:
    lot = pages_lot
    client = RentalClient(lot.w3, lot.contract)
    with ExitStack() as stack:
        emulators, cameras, store = start_gateway(stack, lot, tmp_path)

        owner_context, owner, owner_calls = connect(browser, lot, "owner", "/owner")
        stack.callback(owner_context.close)
        owner.wait_for_selector("#owner-forms", state="visible")
        owner.fill("#location", "P-1/B07")
        owner.click("#add-space-submit")
        space_id = str(said_id(owner, r"space (\d+) registered at P-1/B07"))  # other tests' spaces are listed
        owner.wait_for_selector(f"#spaces tr[data-space-id='{space_id}'][data-approved=false]")
        assert owner.query_selector(f"#space option[value='{space_id}']") is None  # not offered unapproved
        code, _, err = lot_process("space", "approve", "--space", space_id, "--rpc", lot.anvil.url,
                                   "--contract", lot.contract, *lot.keys.flags("operator"))
        assert code == 0, err
        approved = f"#spaces tr[data-space-id='{space_id}'][data-approved=true]"
        owner.wait_for_selector(approved, timeout=WAIT_MS)
        owner.wait_for_selector(f"#space option[value='{space_id}']", state="attached")
        owner.select_option("#space", space_id)
        start = lot.now() + 5  # the car arrives as the booking starts
        owner.fill("#start", utc_input(start))
        owner.fill("#end", utc_input(start + 6 * HOUR))
        owner.fill("#price", "1")
        owner.click("#add-rental-submit")
        rental_id = said_id(owner, r"rental event (\d+) offered")  # not the first row: another test's may be
        owner.wait_for_selector(f"#my-rentals tr[data-rental-id='{rental_id}']")
        assert client.get_rental_event(rental_id).price_per_hour == 10**18
        assert owner_calls.count("eth_sendTransaction") == 2, owner_calls

        renter_context, renter, renter_calls = connect(browser, lot, "renter", "/")
        stack.callback(renter_context.close)
        renter.wait_for_selector(f"#rentals tr[data-rental-id='{rental_id}']")
        choose_and_book(renter, rental_id, CAR.plate, start, start + 2 * HOUR)
        booking_id = said_id(renter, r"booked: booking (\d+)")
        renter.wait_for_selector(f"#bookings tr[data-booking-id='{booking_id}'][data-status=requested]",
                                 timeout=WAIT_MS)
        assert renter_calls.count("personal_sign") == 1 and renter_calls.count("eth_sendTransaction") == 1
        booking = client.get_booking(booking_id)
        assert (booking.renter, booking.start, booking.escrow) == (lot.address("renter"), start, 2 * 10**18)

        # The gateway syncs the booking, admits the rendered car: verified at the gate and checked in.
        synced = h.wait_until(lambda: h.cached_bookings(store) >= 1, 60, 0.2)
        assert synced, "booking never reached the gateway"
        entered, seen = drive(h.Visit(CAR, ENTRY, True, "booking_valid"), emulators[ENTRY], cameras[ENTRY],
                              store)
        assert entered.held, seen  # opened, and the recorded reason is booking_valid
        done = f"#bookings tr[data-booking-id='{booking_id}'] li.done"
        renter.wait_for_selector(f"{done}[data-step=checked_in]", timeout=WAIT_MS)
        assert renter.is_visible(f"{done}[data-step=verified]")

        # The car leaves after its booking started (the owner is paid from the start to the check-out,
        # at 1 ETH per hour: more than the gas of the withdrawal); the owner settles and withdraws.
        time.sleep(min(30, max(0, start + 3 - client.get_booking(booking_id).check_in_at)))
        left, seen = drive(h.Visit(CAR, EXIT, True, "session_exit"), emulators[EXIT], cameras[EXIT], store)
        assert left.held, seen
        owner.click(f"#my-bookings tr[data-booking-id='{booking_id}'][data-status=checked_out] button.settle",
                    timeout=WAIT_MS)
        owner.wait_for_selector(f"#my-bookings tr[data-booking-id='{booking_id}'][data-status=settled]")
        earned = client.pending_withdrawal(lot.address("owner"))
        assert earned > 0 and ether(earned) in owner.inner_text("#earned")
        balance = lot.w3.eth.get_balance(lot.address("owner"))
        owner.click("#withdraw")
        owner.wait_for_selector("#message.ok >> text=withdrawn")
        assert client.pending_withdrawal(lot.address("owner")) == 0
        assert lot.w3.eth.get_balance(lot.address("owner")) > balance  # earnings > the gas of withdraw
        renter.wait_for_selector(f"{done}[data-step=settled]", timeout=WAIT_MS)


def test_the_renter_page_refuses_in_sentences_and_cancels_before_admission(pages_lot: PagesLot,
                                                                            browser: Any) -> None:
    """A booking in the past is refused by the service (no wallet payment asked); a window already
    booked is refused by the contract's pre-flight in the same words as `parkgate lot`; a booking not
    yet in its admission window is cancelled in the page, and the renter withdraws the refund."""
    lot = pages_lot
    now = lot.now()
    common = ["--rpc", lot.anvil.url, "--contract", lot.contract]
    code, space, err = lot_cli("space", "add", "--lot", LOT, "--location", "P-2/B01", *common,
                               *lot.keys.flags("owner"))
    assert code == 0, err
    code, _, err = lot_cli("space", "approve", "--space", str(space["space_id"]), *common,
                           *lot.keys.flags("operator"))
    assert code == 0, err
    code, rental, err = lot_cli("rental", "add", "--space", str(space["space_id"]),
                                "--start", str(now + HOUR), "--end", str(now + 9 * HOUR),
                                "--price-per-hour-wei", str(10**15), *common, *lot.keys.flags("owner"))
    assert code == 0, err
    rental_id = rental["rental_id"]
    context, page, calls = connect(browser, lot, "renter", "/")
    try:
        page.wait_for_selector(f"#rentals tr[data-rental-id='{rental_id}']")
        assert "P-2/B01" in page.inner_text(f"#rentals tr[data-rental-id='{rental_id}']")
        choose_and_book(page, rental_id, CAR.plate, now - 3 * HOUR, now - HOUR)
        page.wait_for_selector("#message.error", timeout=WAIT_MS)
        text = message(page)
        assert "the booking is in the past" in text and "InvalidWindow" not in text, text
        assert "eth_sendTransaction" not in calls  # refused before the wallet was asked to pay

        window = (now + 2 * HOUR, now + 4 * HOUR)
        choose_and_book(page, rental_id, CAR.plate, *window)
        booked = page.wait_for_selector("#message.ok >> text=booked: booking", timeout=WAIT_MS).inner_text()
        booking_id = int(booked.split("booked: booking ")[1].split(",")[0])
        assert calls.count("eth_sendTransaction") == 1
        choose_and_book(page, rental_id, CAR.plate, window[0] + 1800, window[1] + 1800)
        refused = page.wait_for_selector("#message.error", timeout=WAIT_MS).inner_text()
        assert f"is already booked in this window (booking {booking_id})" in refused, refused
        assert calls.count("eth_sendTransaction") == 1  # the pre-flight refused it: nothing sent

        client, renter = RentalClient(lot.w3, lot.contract), lot.address("renter")
        credit = client.pending_withdrawal(renter) + client.get_booking(booking_id).escrow
        page.click(f"#bookings tr[data-booking-id='{booking_id}'] button.cancel")
        page.wait_for_selector(f"#bookings tr[data-booking-id='{booking_id}'][data-status=cancelled]",
                               timeout=WAIT_MS)
        assert "cancelled" in message(page) and client.pending_withdrawal(renter) == credit
        page.wait_for_selector(f"#credit >> text={ether(credit)}")
        page.click("#withdraw")
        page.wait_for_selector("#message.ok >> text=withdrawn", timeout=WAIT_MS)
        assert client.pending_withdrawal(renter) == 0

        # A booking that starts within the contract's cancel cutoff (1 h) offers no Cancel button.
        choose_and_book(page, rental_id, CAR.plate, now + HOUR, now + 2 * HOUR)
        booked = page.wait_for_selector("#message.ok >> text=booked: booking", timeout=WAIT_MS).inner_text()
        near_id = int(booked.split("booked: booking ")[1].split(",")[0])
        row = f"#bookings tr[data-booking-id='{near_id}'][data-status=requested]"
        page.wait_for_selector(row, timeout=WAIT_MS)
        assert page.query_selector(f"{row} button.cancel") is None
    finally:
        context.close()


def test_without_a_wallet_the_pages_say_so_and_nothing_breaks_their_policy(pages_lot: PagesLot,
                                                                            browser: Any) -> None:
    context = browser.new_context(timezone_id="UTC")
    try:
        for path in ("/", "/owner"):
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda m, p=problems: p.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, p=problems: p.append(str(e)))
            page.goto(pages_lot.service.url + path)
            page.wait_for_selector("body[data-ready=true]")
            assert page.inner_text(".lot-name") == LOT
            page.click("#connect")
            page.wait_for_selector("#message.error >> text=no wallet found")
            assert not problems, problems  # no script, style or request blocked by the CSP, no error
    finally:
        context.close()


def test_pages_are_served_with_a_strict_policy_and_the_bundle_is_current(pages_lot: PagesLot) -> None:
    import urllib.request

    for path, kind in (("/", "text/html"), ("/owner", "text/html"), ("/static/app.js", "javascript"),
                       ("/api/lot", "application/json")):
        with urllib.request.urlopen(pages_lot.service.url + path, timeout=10) as response:
            assert kind in response.headers["Content-Type"], (path, response.headers["Content-Type"])
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value, (path, name)
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    sources = (ROOT / "web" / "package-lock.json").read_bytes() + b"".join(
        p.read_bytes() for p in sorted((ROOT / "web" / "src").glob("*.js")))
    recorded = BUNDLE.with_name("app.js.sources").read_text().strip()
    assert recorded == hashlib.sha256(sources).hexdigest(), "the bundle is older than web/: run make web"


def test_a_stale_rentals_answer_never_switches_the_renter_to_another_rental(pages_lot: PagesLot,
                                                                           browser: Any) -> None:
    """Found 2026-12-03 (a random order of the suite): the page rebuilt its rental list from an answer that
    lacked the renter's choice (read before it was offered) and lost it; the next answer then selected the
    first rental, which the renter booked and paid for. An older answer is never shown over a newer one,
    and a choice missing from an answer is kept."""
    lot = pages_lot
    common = ["--rpc", lot.anvil.url, "--contract", lot.contract]
    chosen = 0
    for location in ("P-3/B01", "P-3/B02"):
        code, space, err = lot_cli("space", "add", "--lot", LOT, "--location", location, *common,
                                   *lot.keys.flags("owner"))
        assert code == 0, err
        code, _, err = lot_cli("space", "approve", "--space", str(space["space_id"]), *common,
                               *lot.keys.flags("operator"))
        assert code == 0, err
        now = lot.now()
        code, rental, err = lot_cli("rental", "add", "--space", str(space["space_id"]), "--start",
                                    str(now + HOUR), "--end", str(now + 9 * HOUR), "--price-per-hour-wei",
                                    str(10**15), *common, *lot.keys.flags("owner"))
        assert code == 0, err
        chosen = rental["rental_id"]  # the last one offered: never the list's first
    context = browser.new_context(timezone_id="UTC")
    context.clock.install()  # the page's polls run when the test moves its clock
    install_wallet(context, lot.anvil.url, lot.address("renter"))
    page = context.new_page()
    try:
        page.goto(lot.service.url + "/")
        page.wait_for_selector(f"#rentals tr[data-rental-id='{chosen}']", timeout=WAIT_MS)
        page.click(f"#rentals tr[data-rental-id='{chosen}'] button.choose")
        assert page.eval_on_selector("#rental", "e => e.value") == str(chosen)
        stale: list[int] = []

        def without_the_choice(route: Any) -> None:
            answer = route.fetch()
            rentals = [r for r in answer.json() if r["rental_id"] != chosen]
            stale.append(len(rentals))
            route.fulfill(response=answer, json=rentals)

        page.route("**/api/rentals", without_the_choice)
        page.clock.run_for(35_000)  # past RENTALS_EVERY polls of POLL_MS: the offers are read again
        page.wait_for_function("id => !document.querySelector(`#rentals tr[data-rental-id='${id}']`)",
                               arg=chosen, timeout=WAIT_MS)
        assert stale and stale[-1] >= 1  # the stale answer had other rentals to fall back to
        assert page.eval_on_selector("#rental", "e => e.value") == str(chosen)
    finally:
        context.close()
