"""The booking service's cache of the contract events it read (per event name, lot and first block).

Without it every owner or renter page rescans the lot's whole history: several eth_getLogs windows per
event name per request. Here the confirmed part (blocks with at least ``confirmations`` blocks on top) is
read once and then extended with only the blocks that are new; the unconfirmed tail is read fresh on
every call and never kept, so a reorg of the tail never leaves a stale event behind.

A reorg deeper than ``confirmations`` is undone too: each cached entry keeps the hash of the last block
it holds (read before its events), and every call checks that this block still has it. If the hash
changed, or the block is gone (the head is now below it: a node behind, another fork, another
provider), every cached event is dropped and read again from its first block (a full rescan: a deep
reorg is rare), with one WARNING naming the block and both hashes. Cost: the head is read as a block
(``eth_getBlockByNumber("latest")``, in place of ``eth_blockNumber``); when it moved since the cache
last looked, one ``eth_getBlockByNumber`` checks the last block held and one reads the hash of the new
last block. The hashes are remembered per head (the same head block is the same chain below it), so the
event names one page reads at the same head share them: at most two extra calls per page request, none
while the head stands still.

Memory: the events of this lot only (the service filters by its indexed ``lotId``), of the few event
names the service reads, and the few block hashes read at the current head.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from web3.exceptions import BlockNotFound

from edge.chain.blocks import DEFAULT_CONFIRMATIONS
from edge.chain.contract import DecodedEvent, RentalClient

log = logging.getLogger(__name__)

Key = tuple[str, bytes | None, int]  # event name, lot id, first block


@dataclass(frozen=True)
class _Scanned:
    """The confirmed events of ``from_block..last`` (immutable: readers use it without the lock), and the
    hash block ``last`` had before they were read (None while nothing is held)."""

    last: int
    events: tuple[DecodedEvent, ...]
    last_hash: bytes | None = None


@dataclass(frozen=True)
class _Tip:
    """The head one call saw: block ``number`` with ``hash``."""

    number: int
    hash: bytes


def _short(block_hash: bytes | None) -> str:
    return "0x" + block_hash.hex()[:8] if block_hash is not None else "none"


class EventCache:
    """:meth:`RentalClient.events` for ``to_block="latest"``, reading each confirmed block once.

    Thread-safe without holding a lock over RPC calls: a call reads the blocks after the cached part as
    it found it, answers from that, and extends the cache only if no other call extended or dropped it
    meanwhile (a lost race costs a read, never a wrong answer)."""

    def __init__(self, client: RentalClient, confirmations: int = DEFAULT_CONFIRMATIONS) -> None:
        if confirmations < 0:
            raise ValueError(f"confirmations must be >= 0, got {confirmations}")
        self.client = client
        self.confirmations = confirmations
        self._scanned: dict[Key, _Scanned] = {}
        self._generation = 0  # counts the drops: an entry read before one is never stored after it
        self._hashes: tuple[bytes, dict[int, bytes | None]] = (b"", {})  # block hashes read at this head
        self._lock = threading.Lock()

    def events(self, name: str, from_block: int = 0, to_block: int | str = "latest",
               lot_id: bytes | None = None) -> list[DecodedEvent]:
        """The ``name`` events of ``from_block`` up to the head, as :meth:`RentalClient.events` (only
        ``to_block="latest"`` is cached; another end is read from the chain as it is)."""
        if to_block != "latest":
            return self.client.events(name, from_block, to_block, lot_id)
        key = (name, lot_id, from_block)
        with self._lock:
            known, generation = self._scanned.get(key, _Scanned(from_block - 1, ())), self._generation
        tip = self._tip()
        confirmed = tip.number - self.confirmations
        frontier = self._hash(confirmed, tip) if confirmed > known.last else None  # before the check
        known, generation = self._checked(known, generation, tip, from_block)
        if frontier is None and confirmed > known.last:  # dropped: read from the first block
            frontier = self._hash(confirmed, tip)
        head = tip.number
        fresh = self.client.events(name, known.last + 1, head, lot_id) if known.last < head else []
        if frontier is not None:
            more = tuple(e for e in fresh if e.block_number <= confirmed)
            self._extend(key, known, generation, _Scanned(confirmed, more, frontier))
        return [*known.events, *fresh]

    def _tip(self) -> _Tip:
        """The head block; the hashes remembered of another head are forgotten."""
        block = self.client.w3.eth.get_block("latest")
        tip = _Tip(int(block["number"]), bytes(block["hash"]))
        with self._lock:
            if self._hashes[0] != tip.hash:
                self._hashes = (tip.hash, {tip.number: tip.hash})
        return tip

    def _hash(self, number: int, tip: _Tip) -> bytes | None:
        """The hash of block ``number`` below ``tip`` (None: there is none), read once per head."""
        with self._lock:
            seen, hashes = self._hashes
            if seen == tip.hash and number in hashes:
                return hashes[number]
        try:
            found: bytes | None = bytes(self.client.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            found = None
        with self._lock:
            if self._hashes[0] == tip.hash:
                self._hashes[1][number] = found
        return found

    def _checked(self, known: _Scanned, generation: int, tip: _Tip, from_block: int) -> tuple[_Scanned, int]:
        """``known`` and its generation if the last block it holds still has its hash; else nothing (every
        entry dropped: a reorg deeper than the confirmations) and the generation after the drop."""
        current = self._current(known, tip)
        if current == known.last_hash:
            return known, generation
        return _Scanned(from_block - 1, ()), self._drop(known, current, generation, tip)

    def _current(self, known: _Scanned, tip: _Tip) -> bytes | None:
        """The hash the last block ``known`` holds has now (None: it is gone); when ``known`` holds
        nothing, the hash it keeps (so nothing is asked)."""
        if known.last_hash is None:
            return None
        return self._hash(known.last, tip) if known.last <= tip.number else None

    def _drop(self, known: _Scanned, current: bytes | None, generation: int, tip: _Tip) -> int:
        """Forget every cached event; the generation to store under now. Logged once per reorg: by the
        call that drops, not by the calls that read the cache before the drop."""
        with self._lock:
            first = self._generation == generation
            if first:
                self._scanned.clear()
                self._generation += 1
            generation = self._generation
        if first:
            now = f"gone (the head is block {tip.number})" if current is None else f"hash {_short(current)}"
            log.warning("booking event cache: block %d, the last it held as confirmed, had hash %s and is "
                        "now %s: a reorg deeper than %d confirmations; every cached event dropped and "
                        "read again", known.last, _short(known.last_hash), now, self.confirmations)
        return generation

    def _extend(self, key: Key, known: _Scanned, generation: int, more: _Scanned) -> None:
        """Store ``known`` extended by ``more`` unless another call extended or dropped it meanwhile."""
        with self._lock:
            if self._generation == generation and self._scanned.get(key, known) is known:
                self._scanned[key] = _Scanned(more.last, known.events + more.events, more.last_hash)
