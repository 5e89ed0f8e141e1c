"""A lane's region of interest: a polygon in frame pixels or in fractions of the frame (pure, numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roi:
    """Polygon points as configured: all coordinates in [0, 1] are fractions of the frame, else pixels."""

    points: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, value: object, where: str = "roi") -> Roi:
        """From a list of [x, y] pairs or a string "x,y;x,y;x,y"."""
        if isinstance(value, str):
            value = [part.split(",") for part in value.split(";") if part.strip()]
        try:
            points = tuple((float(x), float(y)) for x, y in value)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected at least 3 [x, y] points, got {value!r}") from None
        if len(points) < 3:
            raise ValueError(f"{where}: expected at least 3 [x, y] points, got {len(points)}")
        xs, ys = np.float64([p[0] for p in points]), np.float64([p[1] for p in points])
        if abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))) < 1e-9:
            raise ValueError(f"{where}: the polygon {list(points)} has no area")
        return cls(points)

    @property
    def fractional(self) -> bool:
        return all(0.0 <= v <= 1.0 for point in self.points for v in point)

    def polygon(self, width: int, height: int) -> np.ndarray:
        scale = np.float32([width, height]) if self.fractional else np.float32([1, 1])
        return np.float32(self.points) * scale

    def bounds(self, width: int, height: int) -> tuple[int, int, int, int]:
        poly = self.polygon(width, height)
        x0, y0 = np.floor(poly.min(axis=0)).astype(int)
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int)
        x0, x1 = int(np.clip(x0, 0, width)), int(np.clip(x1, 0, width))
        y0, y1 = int(np.clip(y0, 0, height)), int(np.clip(y1, 0, height))
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError(f"roi {self.points} lies outside a {width}x{height} frame")
        return x0, y0, x1, y1

    def contains(self, x: float, y: float, width: int, height: int) -> bool:
        poly = self.polygon(width, height)
        inside = False
        for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
            if (ay > y) != (by > y) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
                inside = not inside
        return inside
