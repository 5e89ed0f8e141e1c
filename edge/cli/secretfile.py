"""New secret files for the CLI: created mode 0600, never overwriting one that exists."""

from __future__ import annotations

import os
from pathlib import Path


def create_secret_file(path: Path, text: str) -> None:
    """Write ``text`` and a newline to a new file ``path`` (mode 0600); OSError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
