"""Block windows for eth_getLogs (pure; no I/O): hosted RPC providers refuse a wide block range (typically
2,000 to 10,000 blocks per call), so every log read goes in windows. The chain sync
(:mod:`edge.chain.sync`) and :meth:`edge.chain.contract.RentalClient.events` both plan them here.
"""

from __future__ import annotations

from collections.abc import Iterator

# The defaults of ``chain.log_window_blocks`` and ``chain.confirmations`` (edge.config, which sits below
# edge.chain and cannot import them), of RentalClient's window and of the booking service's cache.
DEFAULT_LOG_WINDOW_BLOCKS = 2000
DEFAULT_CONFIRMATIONS = 2


def plan_windows(first: int, last: int, size: int, limit: int | None = None) -> Iterator[tuple[int, int]]:
    """Inclusive ``[from, to]`` block ranges of at most ``size`` blocks covering ``first..last``, the first
    ``limit`` of them when given. Lazy: a huge ``last`` (a lying node's head) costs nothing until iterated."""
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    starts = range(first, last + 1, size)
    if limit is not None:
        starts = starts[:max(limit, 0)]  # a range slice: still lazy
    return ((start, min(start + size - 1, last)) for start in starts)


def windows_left(first: int, last: int, size: int) -> int:
    """How many windows of ``size`` blocks ``first..last`` still needs (0 when caught up)."""
    return len(range(first, last + 1, size))
