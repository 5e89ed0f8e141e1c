"""Gas report of the rental contract: ``python -m edge.tools.gas [--out FILE]`` (``make gas``).

Starts a fresh anvil, deploys ParkgateRental, runs the lifecycle once and gate-record batches of
sizes 1, 10 and 100 (CheckIn = verification + check-in, CheckOut, a replay of the same batch, which is
skipped, and the owner's ``settle`` of the checked-out bookings), and prints gas per transaction and per
record, the calldata bytes per record and the gas of one vehicle visit (entry + exit records). Gas counts
include the 21000 base cost and calldata of each transaction, as the receipts report them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3
from web3.types import RPCEndpoint

from edge.chain.commitment import lot_id, plate_commitment
from edge.chain.contract import GateRecord, RecordKind, TxResult, deploy, record_words
from edge.tools.anvil import Anvil, AnvilConfig, dev_account

BATCH_SIZES: tuple[int, ...] = (1, 10, 100)
VISIT_BATCH = 100
# Contract v1 (2026-12-01, same command): VehicleVerified 49,137 + CheckIn 42,914 + CheckOut 55,668
# gas per record in batches of 100.
V1_GAS_PER_VISIT = 147_719
LOT_CODE = "LOT-GAS-1"
SECRET = b"gas-report-lot-secret-32-bytes!!"
PRICE_PER_HOUR = 10**15
HOUR = 3600


@dataclass(frozen=True)
class BatchGas:
    kind: str
    size: int
    gas: int
    calldata_bytes: int = 0

    @property
    def per_record(self) -> float:
        return self.gas / self.size

    @property
    def bytes_per_record(self) -> float:
        return self.calldata_bytes / self.size


@dataclass(frozen=True)
class GasReport:
    lifecycle: list[tuple[str, int]]
    batches: list[BatchGas]

    def render(self) -> str:
        lines = ["ParkgateRental gas report (anvil, hardfork cancun, solc 0.8.37 optimizer 200 runs)", "",
                 "Lifecycle calls (gas used per transaction):"]
        lines += [f"  {name:<34} {gas:>10,}" for name, gas in self.lifecycle]
        lines += ["", "recordGateEvents batches (settle: settle(bookingIds) of the checked-out batch):",
                  f"  {'record kind':<20} {'batch':>6} {'tx gas':>12} {'gas/record':>12} "
                  f"{'calldata B/record':>18}"]
        lines += [f"  {b.kind:<20} {b.size:>6} {b.gas:>12,} {b.per_record:>12,.0f} "
                  f"{b.bytes_per_record:>18,.0f}" for b in self.batches]
        lines += [""] + self.visit_lines()
        return "\n".join(lines) + "\n"

    def per_record(self, kind: str, size: int) -> float:
        return next(b.per_record for b in self.batches if b.kind == kind and b.size == size)

    def visit_lines(self) -> list[str]:
        if not any(b.size == VISIT_BATCH for b in self.batches):
            return [f"(no batch of {VISIT_BATCH}: no per-visit figure)"]
        visit = round(self.per_record(RecordKind.CHECK_IN.name, VISIT_BATCH)
                      + self.per_record(RecordKind.CHECK_OUT.name, VISIT_BATCH))
        settle = round(self.per_record("settle", VISIT_BATCH))
        return [f"gas per vehicle visit (entry + exit, batch {VISIT_BATCH}): {visit:,}",
                f"  contract v1 for comparison (verified + check-in + check-out): {V1_GAS_PER_VISIT:,}",
                f"  settlement, paid by whoever calls settle (the owner), per booking: {settle:,}"]


class Scenario:
    """A deployed contract with one lot, one gateway, a verified owner and a renter (anvil dev accounts)."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        accounts = list(w3.eth.accounts)
        self.lifecycle: list[tuple[str, int]] = []
        self.admin = deploy(w3, accounts[0])
        self.lifecycle.append(("deploy", self.admin.deploy_receipt["gasUsed"]))
        self.lot = lot_id(LOT_CODE)
        self.gateway_account = dev_account(5)
        self._track("registerLot", self.admin.register_lot(self.lot, "u33dc0"))
        self._track("setGateway", self.admin.set_gateway(self.lot, self.gateway_account.address))
        self._track("verifyOwner", self.admin.verify_owner(accounts[1], b"\x01" * 32))
        self.owner = self.admin.with_sender(accounts[1])
        self.renter = self.admin.with_sender(accounts[2])
        self.gateway = self.admin.with_sender(self.gateway_account)
        self.commitment = plate_commitment(SECRET, LOT_CODE, "GAS 0001")
        self._sequence = 0
        self._spaces = 0  # spaces registered by new_bookings

    def _track(self, name: str, result: TxResult) -> TxResult:
        if name not in dict(self.lifecycle):
            self.lifecycle.append((name, result.gas_used))
        return result

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
        self.w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    def new_bookings(self, count: int, lead_s: int = 60) -> list[int]:
        """``count`` bookings on fresh spaces, each starting ``lead_s`` after it is made, for two hours."""
        bookings = []
        for _ in range(count):
            start = self.now() + lead_s  # per booking: a slow machine must not start one in the past
            location = f"L-1/B{self._spaces + 1:02d}"  # a location is registered once per lot
            self._spaces += 1
            space = self._track("registerSpace", self.owner.register_space(self.lot, location)).return_value
            self._track("approveSpace", self.admin.approve_space(space))
            listed = self.owner.create_rental_event(space, start, start + 8 * HOUR, PRICE_PER_HOUR)
            rental = self._track("createRentalEvent", listed)
            booked = self.renter.request_rental(rental.return_value, start, start + 2 * HOUR, self.commitment)
            bookings.append(self._track("requestRental", booked).return_value)
        return bookings

    def records(self, kind: RecordKind, bookings: Sequence[int], timestamp: int) -> list[GateRecord]:
        out = []
        for booking in bookings:
            self._sequence += 1
            out.append(GateRecord(self._sequence, kind, booking, self.commitment, timestamp))
        return out

    def _batch(self, name: str, records: Sequence[GateRecord]) -> BatchGas:
        calldata = 4 + 64 + 32 * len(record_words(records))  # selector, offset + length, the words
        return BatchGas(name, len(records), self.gateway.record_gate_events(records).gas_used, calldata)

    def run_batches(self, size: int) -> list[BatchGas]:
        bookings = self.new_bookings(size)
        self.advance(120)
        results = []
        for kind in (RecordKind.CHECK_IN, RecordKind.CHECK_OUT):
            batch = self.records(kind, bookings, self.now())
            results.append(self._batch(kind.name, batch))
            self.advance(600)
        results.append(self._batch("replay (skipped)", batch))
        results.append(BatchGas("settle", size, self.owner.settle(bookings).gas_used))
        return results

    def run_lifecycle_tail(self) -> None:
        """The calls not on the batch path: cancellations, expiry, overdue settlement, withdrawal."""
        (cancelled,) = self.new_bookings(1, lead_s=2 * HOUR)  # cancelled before its cancel cutoff (1 h)
        self._track("cancelBooking", self.renter.cancel_booking(cancelled))
        expired, overdue = self.new_bookings(2)
        self.advance(60)
        self.gateway.record_gate_events(self.records(RecordKind.CHECK_IN, [overdue], self.now()))
        self.advance(3 * HOUR + 24 * HOUR)  # past end + RECORD_DEADLINE
        self._track("expireBooking", self.renter.expire_booking(expired))
        self._track("settleOverdue", self.renter.settle_overdue(overdue))
        self._track("withdraw", self.renter.withdraw())
        space = self.owner.register_space(self.lot, "L-2/B02").return_value
        self.admin.approve_space(space)
        start = self.now() + 2 * HOUR  # before the booking's cancel cutoff (start - 1 h)
        rental = self.owner.create_rental_event(space, start, start + HOUR, PRICE_PER_HOUR).return_value
        self.renter.request_rental(rental, start, start + HOUR, self.commitment)
        self._track("cancelRentalEvent (1 booking)", self.owner.cancel_rental_event(rental))
        self._track("removeSpace", self.admin.remove_space(space))  # no live listing: approval and bay freed


def measure(sizes: Sequence[int] = BATCH_SIZES, log_dir: Path | None = None) -> GasReport:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="parkgate-gas-"))
    with Anvil(AnvilConfig(), log_path=log_dir / "anvil.log") as node:
        scenario = Scenario(node.web3())
        batches = [gas for size in sizes for gas in scenario.run_batches(size)]
        scenario.run_lifecycle_tail()
        return GasReport(lifecycle=scenario.lifecycle, batches=batches)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.tools.gas", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(BATCH_SIZES), help="batch sizes")
    args = parser.parse_args(argv)
    if any(size < 1 or size > 200 for size in args.sizes):
        parser.error("batch sizes must be between 1 and 200")
    text = measure(args.sizes).render()
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
