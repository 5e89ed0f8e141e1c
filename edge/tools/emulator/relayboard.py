"""A Modbus RTU relay board (relays as coils, "flash on" timer registers, inputs) driving a barrier."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.tools.emulator.controller import Barrier
from firmware_bridge.messages import Position
from firmware_bridge.relaymap import RelayMap

COILS, INPUTS, HOLDING = 1, 2, 3
FUNCTION_TABLE = {1: COILS, 5: COILS, 15: COILS, 2: INPUTS, 3: HOLDING, 6: HOLDING, 16: HOLDING}


@dataclass
class RelayBoard:
    relay_map: RelayMap = field(default_factory=RelayMap)
    barrier: Barrier = field(default_factory=Barrier)
    presence: bool = False
    safety: bool = False
    opens: int = 0  # open relay off -> on transitions
    open_commands: int = 0  # writes that switch or flash the open relay on, also when already on
    coils: list[bool] = field(default_factory=list)
    flash_until: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.coils = [False] * self.relay_map.relay_count

    def read(self, table: int, address: int, count: int, now: float) -> list[int] | list[bool] | None:
        """Values at address..address+count, or None if any address is not on the board."""
        self.tick(now)
        tables: dict[int, list[int] | list[bool]] = {COILS: self.coils, INPUTS: self.inputs(),
                                                     HOLDING: self.flash_registers(now)}
        values = tables[table]
        base = self.relay_map.flash_register if table == HOLDING else 0
        start = address - base
        if start < 0 or start + count > len(values):
            return None
        return values[start:start + count]

    def write(self, table: int, address: int, values: list[int] | list[bool], now: float) -> bool:
        """Apply a write; False if an address is not writable on the board."""
        self.tick(now)
        base = self.relay_map.flash_register if table == HOLDING else 0
        start = address - base
        if table == INPUTS or start < 0 or start + len(values) > self.relay_map.relay_count:
            return False
        for offset, value in enumerate(values):
            relay = start + offset
            if table == COILS:
                self.flash_until.pop(relay, None)
                self._set_relay(relay, bool(value))
            elif value:
                self.flash_until[relay] = now + int(value) * self.relay_map.flash_unit_ms / 1000
                self._set_relay(relay, True)
        self.tick(now)
        return True

    def _set_relay(self, relay: int, on: bool) -> None:
        if on and relay == self.relay_map.open_relay:
            self.open_commands += 1
            if not self.coils[relay]:
                self.opens += 1
        self.coils[relay] = on

    def inputs(self) -> list[bool]:
        m = self.relay_map
        values = [False] * m.input_count
        values[m.presence_input] = self.presence
        values[m.safety_input] = self.safety
        values[m.open_limit_input] = self.barrier.position is Position.OPEN
        values[m.closed_limit_input] = self.barrier.position is Position.CLOSED
        return values

    def flash_registers(self, now: float) -> list[int]:
        unit_s = self.relay_map.flash_unit_ms / 1000
        return [max(0, round((self.flash_until.get(r, now) - now) / unit_s)) for r in range(len(self.coils))]

    def tick(self, now: float) -> None:
        for relay, until in list(self.flash_until.items()):
            if now >= until:
                del self.flash_until[relay]
                self.coils[relay] = False
        self.barrier.step(self.coils[self.relay_map.open_relay], self.safety, False, now)
