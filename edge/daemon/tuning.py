"""Process-wide settings of the daemon's native libraries, made once at start (``tune_process``).

- OpenCV's own thread pool is off: the daemon's OpenCV work is small (JPEG decode, resizes, the motion
  gate's thumbnail) and the pool's workers spin after each job, stealing the cores onnxruntime reads plates
  on (an idle lane with approach reading: 2.9 -> 1.8 % of a core without the pool, 2026-12-01, with other
  jobs loading the 2-core box).
- glibc malloc gives big blocks back: frames (1.5 MB at 960x540) and tensors are allocated and freed many
  times a second; with glibc's default the mmap threshold grows after the first big free, later frames
  come from the heap and the heap never shrinks, and every thread gets an arena of its own. A fixed 1 MiB
  threshold (big blocks mmapped, unmapped when freed) and two arenas: README "Figures" (`make bench`
  rss_after_cars_mb, and the daemon that grew to 309 MiB without them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import cv2

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3  # mallopt parameters (glibc malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20
ARENAS = 2


def tune_process() -> None:
    """OpenCV single-threaded; glibc malloc returning big freed blocks (skipped, logged, elsewhere)."""
    cv2.setNumThreads(1)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and libc.mallopt(M_ARENA_MAX, ARENAS)
    except (OSError, AttributeError):  # not glibc (musl, macOS): its defaults stay
        ok = False
    if not ok:
        log.info("malloc tuning not applied (not glibc); memory use may grow with frames")
