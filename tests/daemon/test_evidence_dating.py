"""Evidence crops dated with the daemon's best time, not the kernel's clock: a Pi without a real-time clock
boots with a clock days (fake-hwclock) or decades (1970) behind; a crop written then carried the kernel's
date, so the first retention pass after NTP stepped the clock forward deleted it as older than
``retention_days``. The bundled models read a rendered car; the crops are real files."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from edge.config import EvidenceConfig
from edge.daemon.camera import LaneCamera
from edge.daemon.retention import prune_evidence
from edge.tools.demo import harness as h
from edge.vision.camera import Frame
from edge.vision.reader import PlateReader

CAR = h.Vehicle("booked", "AB 123-CD", seed=721)
DAY_MS = 86_400_000


class Frames:
    """The frame queue a burst reads (``FrameSource.get``): nothing queued before the burst (it drops stale
    frames with ``timeout=0``), then the rendered car's frames as they come, then none."""

    def __init__(self, images: list) -> None:
        self.frames = [Frame(image, time.monotonic(), n) for n, image in enumerate(images)]

    def get(self, timeout: float = 0.0) -> Frame | None:
        return self.frames.pop(0) if self.frames and timeout > 0 else None


def test_a_crop_saved_while_the_clock_is_behind_survives_the_ntp_step(tmp_path: Path) -> None:
    names = h.vehicle_frames(CAR, tmp_path / "frames", count=2)
    images = [cv2.imread(str(tmp_path / "frames" / name), cv2.IMREAD_COLOR) for name in names]
    best_ms = int(time.time() * 1000) + 40 * DAY_MS  # the kernel's clock: 40 days behind the best time
    evidence = tmp_path / "evidence"
    camera = LaneCamera("entry-1", Frames(images), PlateReader(threads=1), evidence,  # type: ignore[arg-type]
                        wall_ms=lambda: best_ms)
    done = camera.burst(1, len(images))
    assert done.snapshot is not None, done
    crop = Path(done.snapshot.path)
    assert abs(crop.stat().st_mtime - best_ms / 1000) < 1, crop.stat().st_mtime
    # NTP steps the clock to the true time (the best time): a 30-day retention keeps a crop just written
    pruned = prune_evidence(evidence, EvidenceConfig(retention_days=30), best_ms / 1000)
    assert crop.exists() and pruned.deleted == 0, pruned
