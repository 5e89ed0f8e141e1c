"""Synthetic plates and vehicle-like camera frames (numpy + OpenCV only, no fonts needed at run time).

Used by the tests, by the end-to-end demo to record camera sources of known cars, and by training (which
passes a TrueType text renderer instead of the default Hershey one). Everything is driven by a seeded
`numpy.random.Generator`, so a seed reproduces the same image.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision import plates

STYLES = ("eu", "us", "br")
LETTERS, DIGITS = string.ascii_uppercase, string.digits
TextMask = Callable[[str, np.random.Generator], np.ndarray]
# Layouts per style: A letter, 9 digit, * either, other characters drawn as separators.
LAYOUTS = {
    "eu": (
        "AA 999-AA",
        "AA-999AA",
        "AA 9999-AA",
        "AAA 999",
        "AA99 AAA",
        "A-AA 9999",
        "AA-A 999",
        "AAA-9999",
        "A 999 AAA",
        "AA 99 AAA",
        "AA999AA",
        "AAA 99A",
    ),
    "us": (
        "9AAA999",
        "AAA-9999",
        "AAA 999",
        "999-AAA",
        "9AA 9999",
        "AA9-9999",
        "999 9999",
        "A99 9AA",
        "AAA999",
        "9A*9*99",
    ),
    "br": ("AAA-9999", "AAA9A99", "AAA 9999"),
}
HERSHEY_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX)


def random_text(rng: np.random.Generator, style: str) -> str:
    """A plate string (with separators) in one of the style's layouts."""
    layout = LAYOUTS[style][rng.integers(len(LAYOUTS[style]))]
    return "".join(_random_char(rng, kind) for kind in layout)


def _random_char(rng: np.random.Generator, kind: str) -> str:
    if kind == "A":
        return LETTERS[rng.integers(26)]
    if kind == "9":
        return DIGITS[rng.integers(10)]
    if kind == "*":
        return (LETTERS + DIGITS)[rng.integers(36)]
    return kind


def hershey_text_mask(text: str, rng: np.random.Generator) -> np.ndarray:
    """White-on-black mask of `text`, tightly cropped, drawn with a Hershey font."""
    font = HERSHEY_FONTS[rng.integers(len(HERSHEY_FONTS))]
    thickness = int(rng.integers(5, 9))
    (width, height), base = cv2.getTextSize(text, font, 3.0, thickness)
    canvas = np.zeros((height + base + 20, width + 20), np.uint8)
    cv2.putText(canvas, text, (10, height + 10), font, 3.0, 255, thickness, cv2.LINE_AA)
    return _crop_to_ink(canvas)


def _crop_to_ink(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 40)
    if len(xs) == 0:
        return mask
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _paste_mask(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], color) -> None:
    """Fit `mask` into `box` (x, y, w, h) allowing some squeeze, and paint it with `color`."""
    x, y, w, h = box
    aspect = mask.shape[1] / max(1, mask.shape[0])
    target_w = min(w, int(h * aspect * 1.15))
    target_h = h if target_w < w else min(h, int(target_w / aspect * 1.3))
    resized = cv2.resize(mask, (max(1, target_w), max(1, target_h)), interpolation=cv2.INTER_AREA)
    ox, oy = x + (w - target_w) // 2, y + (h - target_h) // 2
    region = image[oy : oy + target_h, ox : ox + target_w]
    alpha = (resized[: region.shape[0], : region.shape[1]].astype(np.float32) / 255.0)[..., None]
    region[:] = (region * (1 - alpha) + np.array(color, np.float32) * alpha).astype(np.uint8)


def render_plate(
    text: str,
    style: str = "eu",
    rng: np.random.Generator | None = None,
    text_mask: TextMask = hershey_text_mask,
) -> np.ndarray:
    """A clean, front-on BGR plate image showing `text` in the given style."""
    if style not in STYLES:
        raise ValueError(f"unknown plate style {style!r}; allowed: {', '.join(STYLES)}")
    rng = rng or np.random.default_rng()
    return {"eu": _eu_plate, "us": us_plate, "br": _br_plate}[style](text, rng, text_mask)


def _eu_plate(text: str, rng: np.random.Generator, text_mask: TextMask) -> np.ndarray:
    height = 112
    width = int(height * rng.uniform(3.8, 4.7))
    background = (255, 255, 255) if rng.random() < 0.8 else (40, 200, 250)
    plate = np.full((height, width, 3), background, np.uint8)
    plate = _shade(plate, rng)
    cv2.rectangle(plate, (3, 3), (width - 4, height - 4), (20, 20, 20), int(rng.integers(3, 7)))
    layout = rng.random()
    band = int(height * rng.uniform(0.36, 0.5)) if layout < 0.85 else 0
    if layout < 0.6:
        _eu_band(plate, band, rng, text_mask)
    elif band:
        _shield_band(plate, band, rng, text_mask)
    margin = int(height * 0.14)
    box = (band + 14, margin, width - band - 26, height - 2 * margin)
    left, sep, right = text.partition(" " if " " in text else "-")
    if sep and rng.random() < 0.35:  # a coat of arms between the letter groups, as on SK/HR/CZ plates
        _paste_with_emblem(plate, left, right, box, rng, text_mask)
    else:
        _paste_mask(plate, text_mask(text, rng), box, (20, 20, 20))
    return plate


def _eu_band(plate: np.ndarray, band: int, rng: np.random.Generator, text_mask: TextMask) -> None:
    """Blue EU band: a ring of yellow stars and a 1-3 letter country code."""
    height = plate.shape[0]
    cv2.rectangle(plate, (6, 6), (6 + band, height - 7), (int(rng.integers(120, 200)), 60, 10), -1)
    centre, radius = (6 + band // 2, int(height * 0.3)), band * 0.28
    for k in range(12):
        angle = 2 * np.pi * k / 12
        star = (int(centre[0] + radius * np.cos(angle)), int(centre[1] + radius * np.sin(angle)))
        cv2.circle(plate, star, max(1, band // 18), (0, 210, 255), -1)
    code = "".join(LETTERS[i] for i in rng.integers(26, size=int(rng.integers(1, 4))))
    _paste_mask(
        plate, text_mask(code, rng), (10, int(height * 0.58), band - 8, int(height * 0.3)), (255, 255, 255)
    )


def _shield_band(plate: np.ndarray, band: int, rng: np.random.Generator, text_mask: TextMask) -> None:
    """Older national layout (e.g. SK): a small coat of arms with a dark 1-2 letter code below it."""
    height = plate.shape[0]
    x, y, w = 10, int(height * 0.15), band - 8
    colours = [(30, 30, 200), (200, 80, 20), (30, 160, 230), (40, 120, 40)]
    shield = np.array(
        [[x, y], [x + w, y], [x + w, y + int(w * 0.7)], [x + w // 2, y + w], [x, y + int(w * 0.7)]],
        np.int32,
    )
    cv2.fillPoly(plate, [shield], colours[rng.integers(len(colours))])
    cv2.line(plate, (x + w // 2, y + 3), (x + w // 2, y + int(w * 0.7)), (255, 255, 255), max(1, w // 8))
    cv2.line(plate, (x + 3, y + w // 3), (x + w - 3, y + w // 3), (255, 255, 255), max(1, w // 10))
    code = "".join(LETTERS[i] for i in rng.integers(26, size=int(rng.integers(1, 3))))
    _paste_mask(plate, text_mask(code, rng), (x, int(height * 0.62), w, int(height * 0.24)), (20, 20, 20))


def _paste_with_emblem(
    plate: np.ndarray, left: str, right: str, box: tuple[int, int, int, int], rng: np.random.Generator,
    text_mask: TextMask,
) -> None:
    h = box[3]
    emblem_w = int(h * 0.55)

    def shield(mark_x: int) -> None:
        ex, ey = mark_x + 4, box[1] + int(h * 0.2)
        colours = [(30, 30, 200), (200, 80, 20), (255, 255, 255), (30, 160, 230)]
        outline = np.array(
            [
                [ex, ey],
                [ex + emblem_w - 8, ey],
                [ex + emblem_w - 8, ey + int(h * 0.4)],
                [ex + (emblem_w - 8) // 2, ey + int(h * 0.6)],
                [ex, ey + int(h * 0.4)],
            ],
            np.int32,
        )
        cv2.fillPoly(plate, [outline], colours[rng.integers(len(colours))])
        cv2.line(
            plate, (ex + 3, ey + int(h * 0.25)), (ex + emblem_w - 11, ey + int(h * 0.25)), (255, 255, 255), 2
        )

    _paste_split(plate, left, right, box, emblem_w, shield, rng, text_mask, (20, 20, 20))


def _paste_split(plate: np.ndarray, left: str, right: str, box: tuple[int, int, int, int], mark_w: int,
                 mark: Callable[[int], None], rng: np.random.Generator, text_mask: TextMask,
                 ink: tuple[int, ...]) -> None:
    """`left`, a mark `mark_w` wide (`mark(x)` draws it from x on), then `right`, across `box`; the two
    texts get widths in proportion to their lengths."""
    x, y, w, h = box
    left_w = int((w - mark_w) * len(left) / max(1, len(left) + len(right)))
    if left:
        _paste_mask(plate, text_mask(left, rng), (x, y, left_w, h), ink)
    mark(x + left_w)
    right_x = x + left_w + mark_w
    _paste_mask(plate, text_mask(right, rng), (right_x, y, x + w - right_x, h), ink)


@dataclass(frozen=True)
class UsLook:
    """What real US plates carry around their number, none of it part of the plate's text (the labels
    of real plate sets leave it out too): light characters on a dark plate (Delaware, old California),
    a class or county code of small letters stacked in a column before the number (`PC`, `TRK`, `RM`),
    a logo inside the number's line (a peach, a team badge) and registration stickers in the corners."""

    light_on_dark: bool = False
    stacked: str = ""
    emblem: bool = False
    stickers: bool = False


def random_us_look(rng: np.random.Generator) -> UsLook:
    """A random `UsLook`: stickers on one plate in two, the other features on one in three or four."""
    stacked = "".join(LETTERS[i] for i in rng.integers(26, size=int(rng.integers(2, 4))))
    return UsLook(light_on_dark=bool(rng.random() < 0.25), stacked=stacked if rng.random() < 0.3 else "",
                  emblem=bool(rng.random() < 0.25), stickers=bool(rng.random() < 0.5))


def us_plate(
    text: str, rng: np.random.Generator, text_mask: TextMask, look: UsLook = UsLook()
) -> np.ndarray:
    """A US plate: state name above the number, slogan below, in one ink; `look` adds what only some
    states have (the default look draws no random numbers for it, so a seed renders as before)."""
    height = 150
    width = int(height * rng.uniform(1.9, 2.1))
    background = tuple(int(v) for v in rng.integers(180, 256, 3)) if rng.random() < 0.4 else (245, 245, 245)
    plate = _shade(np.full((height, width, 3), background, np.uint8), rng)
    ink: tuple[int, ...] = [(120, 40, 20), (30, 30, 160), (20, 20, 20), (40, 90, 20)][rng.integers(4)]
    if look.light_on_dark:  # the same light fall-off on a plate of the ink's colour
        recolour = np.asarray(ink, np.float32) / np.asarray(background, np.float32)
        plate = (plate * recolour).clip(0, 255).astype(np.uint8)
        ink = background
    state = "".join(LETTERS[i] for i in rng.integers(26, size=int(rng.integers(4, 11))))
    _paste_mask(
        plate, text_mask(state, rng), (int(width * 0.2), 6, int(width * 0.6), int(height * 0.17)), ink
    )
    line = (10, int(height * 0.25), width - 20, int(height * 0.55))
    if look.stacked:
        line = _paste_stacked(plate, look.stacked, line, rng, text_mask, ink)
    if look.emblem:
        _paste_around_logo(plate, text, line, rng, text_mask, ink)
    else:
        _paste_mask(plate, text_mask(text, rng), line, ink)
    slogan = "".join(LETTERS[i] for i in rng.integers(26, size=int(rng.integers(6, 14))))
    _paste_mask(
        plate,
        text_mask(slogan, rng),
        (int(width * 0.15), int(height * 0.85), int(width * 0.7), int(height * 0.11)),
        ink,
    )
    if look.stickers:
        _stickers(plate, rng, text_mask)
    cv2.rectangle(plate, (2, 2), (width - 3, height - 3), ink, 2)
    return plate


def _paste_stacked(plate: np.ndarray, letters: str, line: tuple[int, int, int, int], rng: np.random.Generator,
                   text_mask: TextMask, ink: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Small letters one above the other at the left of the number's line; the line left for the number."""
    x, y, w, h = line
    column = int(w * rng.uniform(0.07, 0.1))
    step = h // len(letters)
    for i, letter in enumerate(letters):
        _paste_mask(plate, text_mask(letter, rng), (x, y + i * step, column, step - 2), ink)
    gap = int(w * 0.03)
    return x + column + gap, y, w - column - gap, h


def _paste_around_logo(plate: np.ndarray, text: str, line: tuple[int, int, int, int],
                       rng: np.random.Generator, text_mask: TextMask, ink: tuple[int, ...]) -> None:
    """The number split in two with a coloured logo between the parts (or before the number)."""
    chars = plates.normalise(text)
    at = int(rng.integers(0, len(chars))) if len(chars) > 1 else 0
    logo = int(line[3] * rng.uniform(0.6, 0.9))

    def draw(mark_x: int) -> None:
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        centre = (mark_x + logo // 2, line[1] + line[3] // 2)
        axes = (logo // 2 - 2, int((logo // 2 - 2) * rng.uniform(0.8, 1.2)))
        cv2.ellipse(plate, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        leaf = (centre + rng.uniform(-0.4, 0.4, (4, 2)) * logo).astype(np.int32)  # a shape inside
        cv2.fillPoly(plate, [leaf], tuple(255 - c for c in colour))

    _paste_split(plate, chars[:at], chars[at:], line, logo, draw, rng, text_mask, ink)


def _stickers(plate: np.ndarray, rng: np.random.Generator, text_mask: TextMask) -> None:
    """One or two registration stickers (a bright square with a month or year) in the plate's corners."""
    height, width = plate.shape[:2]
    size = int(height * rng.uniform(0.16, 0.24))
    corners = [(6, 6), (width - size - 6, 6), (6, height - size - 6), (width - size - 6, height - size - 6)]
    for i in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
        cx, cy = corners[i]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.rectangle(plate, (cx, cy), (cx + size, cy + size), colour, -1)
        digits = "".join(DIGITS[d] for d in rng.integers(10, size=2))
        _paste_mask(plate, text_mask(digits, rng), (cx + 2, cy + 2, size - 4, size - 4),
                    tuple(255 - c for c in colour))


def _br_plate(text: str, rng: np.random.Generator, text_mask: TextMask) -> np.ndarray:
    height = 130
    width = int(height * rng.uniform(2.9, 3.2))
    mercosur = rng.random() < 0.4
    background = (245, 245, 245) if mercosur else tuple(int(v) for v in rng.integers(150, 215, 1).repeat(3))
    plate = _shade(np.full((height, width, 3), background, np.uint8), rng)
    top = int(height * 0.22)
    if mercosur:
        cv2.rectangle(plate, (0, 0), (width, top), (150, 60, 0), -1)
        _paste_mask(plate, text_mask("BRASIL", rng), (width // 3, 4, width // 3, top - 8), (255, 255, 255))
    else:
        _paste_mask(plate, text_mask("BRASIL", rng), (width // 3, 4, width // 3, top - 8), (40, 40, 40))
    cv2.rectangle(plate, (2, 2), (width - 3, height - 3), (30, 30, 30), 3)
    _paste_mask(plate, text_mask(text, rng), (10, top + 6, width - 20, height - top - 16), (25, 25, 25))
    return plate


def _shade(plate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft left-right brightness gradient, as from uneven light."""
    ramp = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0), plate.shape[1], dtype=np.float32)
    return (plate.astype(np.float32) * ramp[None, :, None]).clip(0, 255).astype(np.uint8)


def degrade(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Camera effects: blur, noise, night, glare, dirt, JPEG; `strength` 0 leaves the image as is."""
    out: np.ndarray = image.astype(np.float32)
    if rng.random() < 0.3 * strength:  # night: dark, blue-ish, noisy
        out = out * rng.uniform(0.25, 0.6) * np.array([1.1, 0.95, 0.85], np.float32)
    else:
        out = out * rng.uniform(1 - 0.35 * strength, 1 + 0.25 * strength) + rng.uniform(-25, 25) * strength
    if rng.random() < 0.25 * strength:  # glare: a bright elliptical blob
        h, w = out.shape[:2]
        glare: np.ndarray = np.zeros((h, w), np.float32)
        center = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(w * rng.uniform(0.1, 0.4)), int(h * rng.uniform(0.2, 0.8)))
        cv2.ellipse(glare, center, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        glare = cv2.GaussianBlur(glare, (0, 0), max(1.0, w * 0.05))
        out = out + glare[..., None] * rng.uniform(60, 160)
    if rng.random() < 0.25 * strength:  # dirt: dark speckles
        h, w = out.shape[:2]
        dirt = cv2.resize(rng.random((max(2, h // 8), max(2, w // 8))).astype(np.float32), (w, h))
        out = out * (1 - 0.4 * (dirt > 0.75)[..., None] * rng.uniform(0.3, 1.0))
    out = out + rng.normal(0, rng.uniform(0, 10 * strength), out.shape)
    result: np.ndarray = out.clip(0, 255).astype(np.uint8)
    if rng.random() < 0.6 * strength:
        sigma = rng.uniform(0.3, 1.6 * strength)
        result = cv2.GaussianBlur(result, (0, 0), sigma)
    if rng.random() < 0.5 * strength:
        quality = int(rng.integers(30, 90))
        ok, buffer = cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if ok else None
        result = decoded if decoded is not None else result
    return result


def warp_into(frame: np.ndarray, patch: np.ndarray, quad: np.ndarray) -> None:
    """Paste `patch` into `frame` (in place) so that its corners land on `quad` (4x2, clockwise from TL)."""
    h, w = patch.shape[:2]
    source = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(source, quad.astype(np.float32))
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpPerspective(patch, matrix, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size, flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    frame[:] = (frame * (1 - alpha) + warped * alpha).astype(np.uint8)


def plate_quad(
    center: tuple[float, float], width: float, aspect: float, rng: np.random.Generator, tilt: float = 1.0
) -> np.ndarray:
    """Corners of a plate of `width` px around `center`, slightly rotated and in perspective."""
    height = width / aspect
    angle = np.deg2rad(rng.uniform(-6, 6) * tilt)
    half = np.array(
        [
            [-width / 2, -height / 2],
            [width / 2, -height / 2],
            [width / 2, height / 2],
            [-width / 2, height / 2],
        ],
        np.float32,
    )
    yaw = rng.uniform(-0.12, 0.12) * tilt  # one side shorter: seen from the side
    half[[1, 2], 1] *= 1 - yaw
    half[[0, 3], 1] *= 1 + yaw
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    return half @ rotation.T + np.array(center, np.float32)


def quad_box(quad: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """Axis-aligned box around a quad, clipped to the frame."""
    x1, y1 = quad.min(axis=0)
    x2, y2 = quad.max(axis=0)
    return float(max(0, x1)), float(max(0, y1)), float(min(width, x2)), float(min(height, y2))


def render_frame(
    text: str,
    style: str = "eu",
    rng: np.random.Generator | None = None,
    size: tuple[int, int] = (1280, 720),
    plate_width: float | None = None,
    text_mask: TextMask = hershey_text_mask,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A vehicle-like BGR frame (`size` = width, height) with the plate; returns (frame, plate box)."""
    rng = rng or np.random.default_rng()
    width, height = size
    frame = _scene(rng, width, height)
    car_w = width * rng.uniform(0.45, 0.75) if plate_width is None else plate_width * rng.uniform(3.2, 3.8)
    car_cx, car_bottom = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.8, 0.98)
    plate_cx, plate_cy = draw_car(frame, rng, car_cx, car_bottom, car_w)
    plate = render_plate(text, style, rng, text_mask)
    pw = plate_width or car_w * rng.uniform(0.22, 0.3)
    quad = plate_quad((plate_cx, plate_cy), pw, plate.shape[1] / plate.shape[0], rng)
    warp_into(frame, plate, quad)
    return degrade(frame, rng, 0.5), quad_box(quad, width, height)


def render_pass(
    text: str, frames: int, style: str = "eu", seed: int = 0, size: tuple[int, int] = (1280, 720)
) -> list[np.ndarray]:
    """A burst of frames of one car approaching the camera (the plate grows frame by frame)."""
    widths = np.linspace(size[0] * 0.12, size[0] * 0.2, frames)
    return [
        render_frame(text, style, np.random.default_rng(seed * 1000 + i), size, float(w))[0]
        for i, w in enumerate(widths)
    ]


def render_approach(
    text: str,
    frames: int,
    style: str = "eu",
    seed: int = 0,
    size: tuple[int, int] = (1280, 720),
    plate_frac: tuple[float, float] = (0.07, 0.2),
    centre: tuple[float, float] = (0.5, 0.5),
    background: np.ndarray | None = None,
    strength: float = 0.5,
) -> list[np.ndarray]:
    """One car driving up to the camera in one static scene (`background`, else a rendered one): the same
    car and plate in every frame, the plate `plate_frac` of the frame wide from the first frame to the last
    and its centre moving from `centre[0]` to `centre[1]` of the frame width (a centre beyond 0..1: the car
    drives out of the picture). The car slows down as it comes (the last frames barely differ, as a car
    stopping at the barrier). Camera effects (`degrade` at `strength`) are the same in every frame."""
    rng = np.random.default_rng(seed)
    width, height = size
    scene = _scene(rng, width, height) if background is None else cv2.resize(background, size)
    plate = render_plate(text, style, rng)
    car_seed, quad_seed, camera_seed = (int(v) for v in rng.integers(2**31, size=3))
    out = []
    for progress in 1 - (1 - np.linspace(0.0, 1.0, frames)) ** 2:  # eased: fast at first, then stopping
        frame = scene.copy()
        plate_w = width * (plate_frac[0] + (plate_frac[1] - plate_frac[0]) * progress)
        car_x = width * (centre[0] + (centre[1] - centre[0]) * progress)
        car_bottom = height * (0.6 + 0.38 * (plate_w / width - 0.05) / 0.15)
        spot = draw_car(frame, np.random.default_rng(car_seed), car_x, min(car_bottom, height * 0.99),
                        plate_w * 3.5)
        quad = plate_quad(spot, plate_w, plate.shape[1] / plate.shape[0], np.random.default_rng(quad_seed))
        warp_into(frame, plate, quad)
        out.append(degrade(frame, np.random.default_rng(camera_seed), strength))
    return out


def _scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    top, bottom = rng.integers(60, 220, 3), rng.integers(40, 160, 3)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    frame = (top * (1 - ramp) + bottom * ramp).astype(np.float32) * np.ones((1, width, 1), np.float32)
    frame = frame.astype(np.uint8)
    for _ in range(int(rng.integers(3, 9))):  # walls, pillars, parked things
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height // 2))
        w, h = int(rng.integers(width // 20, width // 3)), int(rng.integers(height // 10, height // 2))
        cv2.rectangle(frame, (x, y), (x + w, y + h), tuple(int(v) for v in rng.integers(30, 230, 3)), -1)
    return frame


def draw_car(frame: np.ndarray, rng: np.random.Generator, cx: float, bottom: float, car_w: float):
    """Rear or front of a car; returns where the plate goes (centre x, centre y)."""
    body = tuple(int(v) for v in rng.integers(10, 240, 3))
    car_h = car_w * rng.uniform(0.6, 0.8)
    x1, x2, y1 = int(cx - car_w / 2), int(cx + car_w / 2), int(bottom - car_h)
    cv2.rectangle(frame, (x1, y1 + int(car_h * 0.35)), (x2, int(bottom)), body, -1)
    roof = np.array(
        [
            [x1 + car_w * 0.12, y1 + car_h * 0.36],
            [x1 + car_w * 0.22, y1],
            [x2 - car_w * 0.22, y1],
            [x2 - car_w * 0.12, y1 + car_h * 0.36],
        ],
        np.int32,
    )
    cv2.fillPoly(frame, [roof], body)
    glass = roof + np.array(
        [[car_w * 0.03, -4], [car_w * 0.02, car_h * 0.05], [-car_w * 0.02, car_h * 0.05],
         [-car_w * 0.03, -4]],
        np.int32,
    )
    cv2.fillPoly(frame, [glass], tuple(int(v) for v in rng.integers(20, 90, 3)))
    light_y = int(y1 + car_h * 0.45)
    for lx in (x1 + int(car_w * 0.04), x2 - int(car_w * 0.2)):
        cv2.rectangle(
            frame, (lx, light_y), (lx + int(car_w * 0.16), light_y + int(car_h * 0.1)), (30, 30, 200), -1
        )
    bumper_y = int(bottom - car_h * 0.18)
    cv2.rectangle(frame, (x1, bumper_y), (x2, int(bottom)), tuple(int(v * 0.5) for v in body), -1)
    return cx + car_w * rng.uniform(-0.04, 0.04), y1 + car_h * rng.uniform(0.62, 0.7)
