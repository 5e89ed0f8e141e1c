"""Lanes: one per gate (entry or exit).

``machine``: the pure, event-driven state machine (``step(config, state, event, now_ms)``).
``runner``: the imperative shell that carries its commands out through injected ports.
"""
