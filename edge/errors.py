"""The root of parkgate's own errors.

Every error the gateway raises on bad input or a failed part derives from :class:`ParkgateError`
(and keeps its standard base, e.g. ``ValueError`` for bad values), so the daemon and the CLI catch
one type; the message names the bad input and what is allowed. The gate-controller library has its
own root, ``firmware_bridge.errors.GateError`` (it never imports ``edge``).
"""


class ParkgateError(Exception):
    """Something parkgate refuses or could not do; the message says what and why."""
