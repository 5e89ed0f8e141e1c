"""The root of the gate-controller library's errors: :class:`GateError`.

Framing, codec, transport, client and driver errors derive from it (each keeping its standard base,
e.g. ``ValueError`` for a bad frame, ``ConnectionError`` for a missing port), so a caller catches one
type for "the gate controller could not be talked to or refused".
"""


class GateError(Exception):
    """The gate controller, its link or its protocol failed or refused."""
