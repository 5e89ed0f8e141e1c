"""Real full and read-only file systems for tests: a small tmpfs mounted for the test, filled to the last
byte. Mounting needs root with CAP_SYS_ADMIN; where that is missing the test is skipped and says so."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root with CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        for chunk in (65536, 512):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * chunk)
    return filler
