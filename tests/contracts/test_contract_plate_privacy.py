"""No plaintext plate in any event, storage slot or transaction of a full booking lifecycle.

The scan is checked against a positive control: the bay location string, which *is* stored and
emitted, must be found by the same scanner, so the test cannot pass by scanning nothing.
"""

from __future__ import annotations

import gzip
import json

from rental_world import PLATE, World, book, gate_record
from web3 import Web3

from edge.chain.commitment import normalise_plate
from edge.chain.contract import RecordKind


def _needles(text: str) -> list[str]:
    """Hex encodings of ``text`` as ASCII (case variants included) for searching hex blobs."""
    return sorted({variant.encode().hex() for variant in (text, text.upper(), text.lower())})


def _contract_storage_hex(world: World) -> str:
    dump = world.w3.provider.make_request("anvil_dumpState", [])["result"]
    state = json.loads(gzip.decompress(bytes.fromhex(dump[2:])))
    accounts = {address.lower(): account for address, account in state["accounts"].items()}
    storage = accounts[world.admin.address.lower()]["storage"]
    assert storage, "contract storage is empty: the scan would prove nothing"
    return "".join(value[2:] for value in storage.values()).lower()


def _logs_hex(world: World) -> str:
    query = {"fromBlock": world.admin.deploy_receipt["blockNumber"], "address": world.admin.address}
    logs = world.w3.eth.get_logs(query)
    assert logs
    return "".join(bytes(t).hex() for log in logs for t in log["topics"]) + "".join(
        bytes(log["data"]).hex() for log in logs)


def _transactions_hex(world: World) -> str:
    inputs = []
    for number in range(world.admin.deploy_receipt["blockNumber"], world.w3.eth.block_number + 1):
        for tx in world.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["to"] and Web3.to_checksum_address(tx["to"]) == world.admin.address:
                inputs.append(bytes(tx["input"]).hex())
    assert inputs
    return "".join(inputs)


def _run_full_lifecycle(world: World) -> None:
    _, booking_id, _ = book(world)
    world.advance(600)
    now = world.now()
    world.gateway.record_gate_events([
        gate_record(world, RecordKind.CHECK_IN, booking_id, 1, now),
        gate_record(world, RecordKind.CHECK_OUT, booking_id, 2, now + 60),
        gate_record(world, RecordKind.DENIED, 0, 3, now, world.commitment("ZZ 999")),
    ])
    world.owner.settle([booking_id])
    world.owner.withdraw()


def test_no_plaintext_plate_in_events_storage_or_calldata(world: World) -> None:
    _run_full_lifecycle(world)
    blobs = {"storage": _contract_storage_hex(world), "events": _logs_hex(world),
             "calldata": _transactions_hex(world)}
    control = b"L-1/B17".hex()
    assert control in blobs["storage"] and control in blobs["events"], "positive control not found"
    for plate in (PLATE, normalise_plate(PLATE), "ZZ 999", "ZZ999"):
        for where, blob in blobs.items():
            for needle in _needles(plate):
                assert needle not in blob, f"plate {plate!r} found in {where}"


def test_commitment_on_chain_is_the_keyed_hash(world: World) -> None:
    _, booking_id, _ = book(world)
    stored = world.admin.get_booking(booking_id).vehicle_commitment
    assert stored == world.commitment(PLATE) == world.commitment("bab1234")
    assert stored != world.commitment("B-AB 1235")
