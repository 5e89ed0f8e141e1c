"""Gate controllers over serial: the parkgate gate protocol and Modbus RTU relay boards.

Layers, each replaceable (docs/gate-protocol.md has the wire protocol):

- ``framer``    bytes <-> frames (COBS, CRC-16/CCITT-FALSE, resync, drop counters)
- ``messages``  frames <-> typed messages
- ``transport`` pyserial on asyncio, reconnect when the device vanishes
- ``client``    request/ack, retries, heartbeats, input events
- ``gate``      ``GateDriver``: the one interface the daemon uses
- ``driver``    our controller's driver, and ``connect_driver`` by configuration name
- ``modbus``    the same interface for Modbus RTU relay boards (pymodbus)
- ``emulator``  our controller and a relay board on ptys, with a control channel
"""
