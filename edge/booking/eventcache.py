"""The booking service's cache of the contract events it read (per event name, lot and first block).

Without it every owner or renter page rescans the lot's whole history: several eth_getLogs windows per
event name per request. Here the confirmed part (blocks with at least ``confirmations`` blocks on top) is
read once and then extended with only the blocks that are new; the unconfirmed tail is read fresh on
every call and never kept, so a reorg of the tail never leaves a stale event behind. A reorg deeper than
``confirmations`` is not undone (as with the gateway's ``chain.confirmations``): choose it for the chain.

Memory: the events of this lot only (the service filters by its indexed ``lotId``), of the few event
names the service reads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from edge.chain.blocks import DEFAULT_CONFIRMATIONS
from edge.chain.contract import DecodedEvent, RentalClient


@dataclass(frozen=True)
class _Scanned:
    """The confirmed events of ``from_block..last`` (immutable: readers use it without the lock)."""

    last: int
    events: tuple[DecodedEvent, ...]


class EventCache:
    """:meth:`RentalClient.events` for ``to_block="latest"``, reading each confirmed block once.

    Thread-safe without holding a lock over RPC calls: a call reads the blocks after the cached part as
    it found it, answers from that, and extends the cache only if no other call extended it meanwhile
    (a lost race costs a read, never a wrong answer)."""

    def __init__(self, client: RentalClient, confirmations: int = DEFAULT_CONFIRMATIONS) -> None:
        if confirmations < 0:
            raise ValueError(f"confirmations must be >= 0, got {confirmations}")
        self.client = client
        self.confirmations = confirmations
        self._scanned: dict[tuple[str, bytes | None, int], _Scanned] = {}
        self._lock = threading.Lock()

    def events(self, name: str, from_block: int = 0, to_block: int | str = "latest",
               lot_id: bytes | None = None) -> list[DecodedEvent]:
        """The ``name`` events of ``from_block`` up to the head, as :meth:`RentalClient.events` (only
        ``to_block="latest"`` is cached; another end is read from the chain as it is)."""
        if to_block != "latest":
            return self.client.events(name, from_block, to_block, lot_id)
        key = (name, lot_id, from_block)
        with self._lock:
            known = self._scanned.get(key, _Scanned(from_block - 1, ()))
        head = int(self.client.w3.eth.block_number)
        fresh = self.client.events(name, known.last + 1, head, lot_id) if known.last < head else []
        confirmed = head - self.confirmations
        if confirmed > known.last:
            more = tuple(e for e in fresh if e.block_number <= confirmed)
            with self._lock:
                if self._scanned.get(key, known) is known:  # nobody extended it meanwhile
                    self._scanned[key] = _Scanned(confirmed, known.events + more)
        return [*known.events, *fresh]
