"""Emulators of the field hardware, run as separate processes on pseudo-terminals.

- :mod:`.controller`: the gate-controller firmware logic (pure state machines over time).
- :mod:`.relayboard`: a Waveshare-style Modbus RTU relay board model.
- :mod:`.server`: the imperative shell: ptys, pacing at the baud rate, cable pulls, pymodbus server,
  and the line-based control channel tests and the demo/chaos harness use.
"""
