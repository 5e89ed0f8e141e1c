"""A Modbus RTU relay board (relays as coils, "flash on" timer registers, inputs) driving one barrier,
or several: a board shared by lanes wires each gate to its own relay and inputs (:func:`gate_map`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge.tools.emulator.controller import Barrier
from firmware_bridge.messages import Position
from firmware_bridge.relaymap import RelayMap

COILS, INPUTS, HOLDING = 1, 2, 3
FUNCTION_TABLE = {1: COILS, 5: COILS, 15: COILS, 2: INPUTS, 3: HOLDING, 6: HOLDING, 16: HOLDING}
INPUTS_PER_GATE = 4  # presence, safety, open limit, closed limit


def gate_map(board: RelayMap, gate: int) -> RelayMap:
    """The wiring of gate ``gate`` (0, 1, ...) on a shared board: relay ``gate``, inputs 4*gate..4*gate+3
    (gate 0 is the board's default map). The lanes' config uses the same numbers."""
    if gate == 0:
        return board
    first = INPUTS_PER_GATE * gate
    return replace(board, open_relay=gate, presence_input=first, safety_input=first + 1,
                   open_limit_input=first + 2, closed_limit_input=first + 3)


@dataclass
class BoardGate:
    """One barrier wired to the board: its relay and inputs, its loops and its open counters."""

    relay_map: RelayMap
    barrier: Barrier = field(default_factory=Barrier)
    presence: bool = False
    safety: bool = False
    opens: int = 0  # open relay off -> on transitions
    open_commands: int = 0  # writes that switch or flash the open relay on, also when already on


@dataclass
class RelayBoard:
    relay_map: RelayMap = field(default_factory=RelayMap)
    gate_count: int = 1
    gates: list[BoardGate] = field(default_factory=list)
    coils: list[bool] = field(default_factory=list)
    flash_until: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        max_gates = min(self.relay_map.relay_count, self.relay_map.input_count // INPUTS_PER_GATE)
        if not 1 <= self.gate_count <= max_gates:
            raise ValueError(f"gates={self.gate_count}: allowed 1..{max_gates} on this board")
        self.coils = [False] * self.relay_map.relay_count
        self.gates = [BoardGate(gate_map(self.relay_map, g)) for g in range(self.gate_count)]

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
        for gate in self.gates:
            if on and relay == gate.relay_map.open_relay:
                gate.open_commands += 1
                if not self.coils[relay]:
                    gate.opens += 1
        self.coils[relay] = on

    def inputs(self) -> list[bool]:
        values = [False] * self.relay_map.input_count
        for gate in self.gates:
            m = gate.relay_map
            values[m.presence_input] = gate.presence
            values[m.safety_input] = gate.safety
            values[m.open_limit_input] = gate.barrier.position is Position.OPEN
            values[m.closed_limit_input] = gate.barrier.position is Position.CLOSED
        return values

    def flash_registers(self, now: float) -> list[int]:
        unit_s = self.relay_map.flash_unit_ms / 1000
        return [max(0, round((self.flash_until.get(r, now) - now) / unit_s)) for r in range(len(self.coils))]

    def tick(self, now: float) -> None:
        for relay, until in list(self.flash_until.items()):
            if now >= until:
                del self.flash_until[relay]
                self.coils[relay] = False
        for gate in self.gates:
            gate.barrier.step(self.coils[gate.relay_map.open_relay], gate.safety, False, now)
