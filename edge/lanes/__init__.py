"""Lanes: one per gate (entry or exit).

``machine``: the pure, event-driven state machine (``step(config, state, event, now_ms)``); the daemon's
:class:`edge.daemon.lane.LaneShell` feeds it events and carries out its commands.
"""
