"""A lane's region of interest written into the config file from the console's live view.

The file is edited with tomlkit, so its other keys, its order and its comments stay as they were; the
new text is validated exactly as `parkgate config check` validates a file (``edge.config.parse_config``
with the file's own directory for relative paths) before anything is written; the write is atomic (a
temporary file in the same directory, fsync, rename, fsync of the directory), keeping the file's mode.
The daemon reads its config at start: it applies the new ROI when restarted."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from edge.config import Config, ConfigError, ConfigIssue, parse_config

Point = tuple[float, float]


class NotWritable(Exception):
    """The console cannot write the config file (a read-only /etc, no permission): the message says why
    and ``line`` is what to paste by hand."""

    def __init__(self, message: str, line: str) -> None:
        super().__init__(message)
        self.line = line


def roi_line(points: Sequence[Point]) -> str:
    """The ``roi = [...]`` line for a lane's ``[lanes.camera]``."""
    return "roi = [" + ", ".join(f"[{x:g}, {y:g}]" for x, y in points) + "]"


def _number(value: float) -> float | int:
    """A pixel stays an integer where it is one; a fraction keeps 4 decimals."""
    return int(value) if float(value).is_integer() and value > 1 else round(float(value), 4)


def config_with_roi(text: str, lane_index: int, points: Sequence[Point]) -> str:
    """``text`` (a config file) with ``roi`` of its ``lane_index``-th ``[[lanes]]`` entry set to
    ``points``, everything else kept (pure); ValueError when the file has no such lane entry."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    lanes = doc.get("lanes")
    if not isinstance(lanes, list) or not 0 <= lane_index < len(lanes):
        raise ValueError(f"the file has no [[lanes]] entry number {lane_index + 1}")
    lane = lanes[lane_index]
    camera = lane.get("camera")
    if camera is None:
        camera = tomlkit.table()
        lane["camera"] = camera
    roi = tomlkit.array()
    roi.extend([_number(x), _number(y)] for x, y in points)
    camera["roi"] = roi
    return tomlkit.dumps(doc)


def save_roi(path: Path, lane: str, points: Sequence[Point]) -> Config:
    """Write ``points`` as lane ``lane``'s ROI into the config file ``path``; the config as it now is.
    ConfigError (naming the keys, as `config check` does) when the file or the result is not valid;
    NotWritable when the file cannot be written."""
    line = roi_line(points)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotWritable(f"cannot read the config file {path}: {exc}", line) from None
    base = path.resolve().parent
    current = parse_config(text, str(path), base)
    names = [x.name for x in current.lanes]
    if lane not in names:
        raise ConfigError(str(path), [ConfigIssue("lanes", f"no lane {lane!r} in the file now; lanes: "
                                              f"{', '.join(names)}")])
    try:
        new_text = config_with_roi(text, names.index(lane), points)
    except ValueError as exc:
        raise NotWritable(f"cannot edit {path}: {exc}", line) from None
    cfg = parse_config(new_text, str(path), base)
    try:
        write_atomically(path.resolve(), new_text)
    except OSError as exc:
        raise NotWritable(f"cannot write the config file {path} ({exc.strerror or exc})", line) from None
    return cfg


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a reader (or a power cut) sees the old file or the new one, never
    half of one; the file keeps its mode (and its owner, where this process may set it)."""
    st = path.stat()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), st.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):
                os.fchown(out.fileno(), st.st_uid, st.st_gid)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
