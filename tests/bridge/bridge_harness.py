"""Bridge test helpers: emulators with fast barrier motion, started through the shared launcher."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.tools.emulator import launch
from edge.tools.emulator.launch import EmulatorHandle as Emulator

__all__ = ["Emulator", "running_emulator"]


@contextmanager
def running_emulator(tmp_path: Path, *extra: str, name: str = "gate") -> Iterator[Emulator]:
    with launch.running_emulator(tmp_path, "--open-time", "0.2", "--close-time", "0.2", *extra,
                                 name=name) as emulator:
        yield emulator
