"""Register map of a Modbus RTU relay/IO board, shared by the driver and the board emulator."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class RelayMap:
    """Where the gate's signals live on the board (Waveshare-style defaults).

    ``flash_register + relay`` is a holding register; writing N closes that relay for N x
    ``flash_unit_ms`` and the board's own timer opens it again ("flash on"). The open output is only
    ever driven this way, so the gate cannot stay open if the daemon dies.
    """

    device_id: int = 1
    relay_count: int = 8
    open_relay: int = 0
    flash_register: int = 0x0200
    flash_unit_ms: int = 100
    presence_input: int = 0
    safety_input: int = 1
    open_limit_input: int = 2
    closed_limit_input: int = 3
    input_count: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.device_id <= 247:
            raise ValueError(f"relay map device_id={self.device_id} out of range 1..247")
        if not 0 <= self.open_relay < self.relay_count:
            raise ValueError(f"relay map open_relay={self.open_relay} must be in 0..{self.relay_count - 1}")
        for name in ("presence_input", "safety_input", "open_limit_input", "closed_limit_input"):
            value = getattr(self, name)
            if not 0 <= value < self.input_count:
                raise ValueError(f"relay map {name}={value} must be in 0..{self.input_count - 1}")
        wired = {name: getattr(self, name) for name in
                 ("presence_input", "safety_input", "open_limit_input", "closed_limit_input")}
        if len(set(wired.values())) < len(wired):
            raise ValueError(f"relay map inputs must be distinct, got {wired}")
        if not 10 <= self.flash_unit_ms <= 1000:
            raise ValueError(f"relay map flash_unit_ms={self.flash_unit_ms} out of range 10..1000")

    @classmethod
    def from_dict(cls, values: dict[str, int]) -> RelayMap:
        """From config; unknown keys are an error that lists the allowed ones."""
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"relay map keys {unknown} unknown; allowed: {sorted(allowed)}")
        return cls(**values)
