"""A lane's region of interest: a simple polygon in fractions of the frame or in frame pixels.

Pure: parsing and geometry are plain Python, so `edge.config` can validate a configured ROI without
loading numpy; only `Roi.polygon` imports numpy (lazily), for the drawing and cropping code.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAX_POINTS = 64
MAX_PIXEL = 100_000
ALLOWED = (
    f"3 to {MAX_POINTS} [x, y] points (or \"x,y;x,y;x,y\"), all fractions of the frame in [0, 1] or all "
    f"pixels in [0, {MAX_PIXEL}], enclosing a non-zero area without crossing edges, e.g. "
    '"0.1,0.4;0.9,0.4;0.9,1;0.1,1"'
)
Point = tuple[float, float]
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxtuple = 80, 80, 8, 8


@dataclass(frozen=True)
class Roi:
    """Polygon vertices as configured: all coordinates in [0, 1] are fractions of the frame's width and
    height, otherwise every coordinate is a pixel (a value strictly between 0 and 1 among pixels is a
    mix of the two and refused)."""

    points: tuple[Point, ...]

    @classmethod
    def parse(cls, value: object, where: str = "roi") -> Roi:
        """From a config value (a list of [x, y] pairs) or a CLI string "x,y;x,y;x,y"; ValueError naming
        `where`, the bad value and what is allowed."""
        points = _points(value, where)
        problem = _problem(points)
        if problem:
            raise ValueError(f"{where}: {_short.repr(value)} {problem}; expected {ALLOWED}")
        return cls(points)

    @property
    def fractional(self) -> bool:
        return all(0.0 <= c <= 1.0 for point in self.points for c in point)

    def pixels(self, width: int, height: int) -> tuple[Point, ...]:
        """The vertices in pixels of a width x height frame."""
        if not self.fractional:
            return self.points
        return tuple((x * width, y * height) for x, y in self.points)

    def polygon(self, width: int, height: int) -> np.ndarray:
        """N x 2 float32 vertices in frame pixels (for cv2 drawing and masks)."""
        import numpy as np

        return np.array(self.pixels(width, height), dtype=np.float32)

    def bounds(self, width: int, height: int) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the integer box enclosing the polygon, clipped to the frame (x1, y1 exclusive,
        ready for `frame[y0:y1, x0:x1]`); ValueError when no part of the polygon lies in the frame."""
        pixels = self.pixels(width, height)
        xs, ys = [x for x, _ in pixels], [y for _, y in pixels]
        x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
        x1, y1 = min(width, math.ceil(max(xs))), min(height, math.ceil(max(ys)))
        if x0 >= x1 or y0 >= y1:
            raise ValueError(
                f"region of interest {self} lies outside the {width}x{height} frame; "
                "give its points in pixels of this camera or as fractions of the frame"
            )
        return x0, y0, x1, y1

    def contains(self, x: float, y: float, width: int, height: int) -> bool:
        """Whether frame pixel (x, y) lies inside the polygon or on its edge."""
        pixels = self.pixels(width, height)
        edges = _edges(pixels)
        if any(_on_segment((x, y), a, b) for a, b in edges):
            return True
        inside = False
        for (ax, ay), (bx, by) in edges:
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                inside = not inside
        return inside

    def check_frame(self, width: int, height: int) -> None:
        """ValueError if pixel points lie beyond a width x height frame (a ROI drawn for another camera)."""
        if self.fractional:
            return
        outside = [(x, y) for x, y in self.points if x > width or y > height]
        if outside:
            raise ValueError(
                f"region of interest {self} has point(s) {_text(outside)} outside the {width}x{height} "
                "frame; give pixels of this camera (x <= width, y <= height) or fractions of the frame"
            )

    def __str__(self) -> str:
        return _text(self.points)


def _text(points: list[Point] | tuple[Point, ...]) -> str:
    """Points in the CLI form "x,y;x,y" (`Roi.parse` reads it back)."""
    return ";".join(f"{_number_text(x)},{_number_text(y)}" for x, y in points)


def _number_text(number: float) -> str:
    """Shortest text that reads back as the same float ("640", "0.25")."""
    return str(int(number)) if number.is_integer() else repr(number)


def _points(value: object, where: str) -> tuple[Point, ...]:
    """Coordinates of a CLI string or a list of pairs, without checking the polygon."""
    if isinstance(value, str):
        pairs: list = [part.strip() for part in value.split(";") if part.strip()]
    elif isinstance(value, list | tuple):
        pairs = list(value)
    else:
        kind = type(value).__name__
        raise ValueError(f"{where}: {_short.repr(value)} is of type {kind}; expected {ALLOWED}")
    if not MAX_POINTS >= len(pairs) >= 3:
        raise ValueError(f"{where}: {_short.repr(value)} has {len(pairs)} point(s); expected {ALLOWED}")
    return tuple(_point(pair, value, where) for pair in pairs)


def _point(pair: object, value: object, where: str) -> Point:
    """One vertex: an [x, y] pair of a list, an "x,y" piece of a CLI string."""
    items = pair.split(",") if isinstance(pair, str) and isinstance(value, str) else pair
    if not isinstance(items, list | tuple) or len(items) != 2:
        raise ValueError(f"{where}: {_short.repr(pair)} in {_short.repr(value)} is not an x, y pair; "
                         f"expected {ALLOWED}")
    return _number(items[0], value, where), _number(items[1], value, where)


def _number(item: object, value: object, where: str) -> float:
    """A coordinate: a number in a list, a decimal in a CLI string."""
    try:
        if isinstance(item, bool) or not isinstance(item, str if isinstance(value, str) else Real):
            raise ValueError
        number = float(item)
    except ValueError:
        raise ValueError(f"{where}: {_short.repr(item)} in {_short.repr(value)} is not a number; "
                         f"expected {ALLOWED}") from None
    if not 0 <= number <= MAX_PIXEL:  # also refuses nan
        raise ValueError(f"{where}: {_short.repr(item)} in {_short.repr(value)} is not a number in "
                         f"[0, {MAX_PIXEL}]; expected {ALLOWED}")
    return number


def _problem(points: tuple[Point, ...]) -> str:
    """What is wrong with the polygon, or "" if it is a usable one."""
    coordinates = [c for point in points for c in point]
    if any(c > 1 for c in coordinates) and any(0 < c < 1 for c in coordinates):
        return "mixes fractions of the frame (values between 0 and 1) with pixels"
    if len(set(points)) < len(points):
        return "repeats a point"
    if _crossing(points):
        return "has edges that cross or overlap"
    span = max(coordinates) or 1.0
    if abs(_area(points)) <= 1e-9 * span * span:
        return "encloses no area"
    return ""


def _area(points: tuple[Point, ...]) -> float:
    """Signed area (shoelace formula)."""
    return sum(ax * by - bx * ay for (ax, ay), (bx, by) in _edges(points)) / 2


def _edges(points: tuple[Point, ...]) -> list[tuple[Point, Point]]:
    """The closed polygon's edges, the last one back to the first point."""
    return list(zip(points, points[1:] + points[:1], strict=True))


def _crossing(points: tuple[Point, ...]) -> bool:
    """Whether two edges of the closed polygon meet anywhere but at the vertex two neighbours share."""
    edges = _edges(points)
    count = len(edges)
    for i in range(count):
        for j in range(i + 1, count):
            (a, b), (c, d) = edges[i], edges[j]
            if j == i + 1 or (i == 0 and j == count - 1):
                shared, far_1, far_2 = (b, a, d) if j == i + 1 else (a, b, c)
                # Neighbours overlap when one folds back along the other.
                if _on_segment(far_2, shared, far_1) or _on_segment(far_1, shared, far_2):
                    return True
            elif _segments_meet(a, b, c, d):
                return True
    return False


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _opposite(first: float, second: float) -> bool:
    return (first > 0 > second) or (first < 0 < second)


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    """Whether p lies on segment ab (end points included)."""
    if _orientation(a, b, p) != 0:
        return False
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segments ab and cd share a point (crossing, touching or overlapping)."""
    if _opposite(_orientation(a, b, c), _orientation(a, b, d)) and _opposite(
        _orientation(c, d, a), _orientation(c, d, b)
    ):
        return True
    return _on_segment(c, a, b) or _on_segment(d, a, b) or _on_segment(a, c, d) or _on_segment(b, c, d)
