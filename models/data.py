"""Training data: synthetic plates (TrueType and Hershey fonts) mixed with the real labelled crops.

Real sets are read from the shared data folder beside the repository (never copied into it). The US
crops are split in two by a hash of the file name: the `train` half may be used for fine-tuning, the
`holdout` half is only for evaluation (see `us_split`).
"""

from __future__ import annotations

import csv
import glob
import os
import zlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from edge.vision import detector, plates, synth

REPO = Path(__file__).resolve().parent.parent
FONT_GLOBS = ("*Bold.ttf", "*Condensed-Bold.ttf", "*Mono*.ttf", "*Sans.ttf", "*Narrow*.ttf")
OCR_SIZE = (128, 64)  # width, height
DATA_VERSION = 4  # bump when generated samples change (keys the training-data cache)


def data_dir() -> Path:
    """The shared real-photo folder: $PARKGATE_DATA_DIR or <repo>/../shared/data."""
    return Path(os.environ.get("PARKGATE_DATA_DIR", REPO.parent / "shared" / "data"))


def us_split(file_name: str) -> str:
    """'train' or 'holdout' for a plates-us-crops file, fixed by a hash of its name."""
    return "train" if zlib.crc32(file_name.encode()) % 2 == 0 else "holdout"


def eu_split(file_name: str) -> str:
    """'train' or 'holdout' for a plates-eu frame, fixed by a hash of its name."""
    return "train" if zlib.crc32(file_name.encode()) % 3 == 0 else "holdout"


def split_of(folder: Path, file_name: str) -> str:
    """The fine-tuning split of a file of one of the shared sets, by the set's folder name: plates-eu and
    plates-us-crops are split by a hash, every plates-br-crops file was trained on ('train'), and files of
    any other folder were never trained on ('holdout')."""
    split = {"plates-eu": eu_split, "plates-us-crops": us_split}.get(Path(folder).resolve().name)
    if split:
        return split(file_name)
    return "train" if Path(folder).resolve().name == "plates-br-crops" else "holdout"


@cache
def font_paths() -> tuple[str, ...]:
    found = set()
    for pattern in FONT_GLOBS:
        found.update(glob.glob(f"/usr/share/fonts/truetype/**/{pattern}", recursive=True))
    return tuple(sorted(p for p in found if "Serif" not in p or "Bold" in p))


def ttf_text_mask(text: str, rng: np.random.Generator) -> np.ndarray:
    """White-on-black mask of `text` in a random installed TrueType font (Pillow)."""
    from PIL import Image, ImageDraw, ImageFont

    paths = font_paths()
    if not paths:
        return synth.hershey_text_mask(text, rng)
    font = ImageFont.truetype(paths[rng.integers(len(paths))], 96)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 20, bottom - top + 20), 0)
    ImageDraw.Draw(image).text((10 - left, 10 - top), text, fill=255, font=font)
    mask = np.asarray(image)
    ys, xs = np.nonzero(mask > 40)
    return mask if len(xs) == 0 else mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def any_text_mask(text: str, rng: np.random.Generator) -> np.ndarray:
    return ttf_text_mask(text, rng) if rng.random() < 0.75 else synth.hershey_text_mask(text, rng)


def jitter_crop(image: np.ndarray, quad: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop around a plate quad with random margins, like a detector box grown by the reader."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = synth.quad_box(quad, w, h)
    bw, bh = x2 - x1, y2 - y1
    mx = rng.uniform(-0.02, 0.12, 2) * bw
    my = rng.uniform(-0.05, 0.3, 2) * bh
    box = (int(max(0, x1 - mx[0])), int(max(0, y1 - my[0])), int(min(w, x2 + mx[1])), int(min(h, y2 + my[1])))
    return image[box[1] : box[3], box[0] : box[2]]


def synth_ocr_sample(rng: np.random.Generator, us_looks: bool = False) -> tuple[np.ndarray, str]:
    """One augmented synthetic plate crop (grey, OCR size) and its normalised label. `us_looks`: US
    plates get what real ones carry beside their number (`synth.random_us_look`), not in the label."""
    style = synth.STYLES[rng.choice(3, p=[0.5, 0.3, 0.2])]
    text = synth.random_text(rng, style)
    if us_looks and style == "us":
        plate = synth.us_plate(text, rng, any_text_mask, synth.random_us_look(rng))
    else:
        plate = synth.render_plate(text, style, rng, any_text_mask)
    ph, pw = plate.shape[:2]
    canvas_w, canvas_h = int(pw * 1.6), int(ph * 2.2)
    background = rng.integers(0, 255, (4, 4, 3)).astype(np.uint8)
    canvas = cv2.resize(background, (canvas_w, canvas_h), interpolation=cv2.INTER_LINEAR)
    width = pw * rng.uniform(0.9, 1.1)
    quad = synth.plate_quad((canvas_w / 2, canvas_h / 2), width, pw / ph, rng, tilt=1.3)
    synth.warp_into(canvas, plate, quad)
    crop = jitter_crop(canvas, quad, rng)
    small = cv2.resize(
        crop, (int(rng.uniform(60, 200)), int(rng.uniform(20, 70))), interpolation=cv2.INTER_AREA
    )
    crop = synth.degrade(small, rng, 1.0)
    return to_ocr_input(crop), plates.normalise(text)


def to_ocr_input(crop_bgr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY) if crop_bgr.ndim == 3 else crop_bgr
    return cv2.resize(grey, OCR_SIZE, interpolation=cv2.INTER_LINEAR)


def augment_real_crop(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small geometric jitter + camera effects on a real crop."""
    h, w = crop.shape[:2]
    shift = rng.uniform(-0.06, 0.06, (4, 2)) * np.float32([w, h])
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(source, (source + shift).astype(np.float32))
    warped = cv2.warpPerspective(crop, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return to_ocr_input(synth.degrade(warped, rng, 0.6))


def load_br_crops() -> list[tuple[np.ndarray, str]]:
    root = data_dir() / "plates-br-crops"
    return _load_labelled(root, root / "labels.csv", "file", "plate", lambda name: True)


def load_us_crops(split: str) -> list[tuple[np.ndarray, str]]:
    root = data_dir() / "plates-us-crops"
    return _load_labelled(
        root,
        root / "groundtruth.csv",
        "file",
        "plate",
        lambda name: us_split(name) == split,
        fieldnames=("file", "state", "plate"),
    )


# plates-eu labels sometimes write the letter O where the plate has the digit 0: in the digit positions
# of the Slovak layout, and on Czech plates, which never use the letter O (third position included).
_EU_LABEL_LAYOUTS = ("AA999AA", "9A99999")


def corrected_eu_label(label: str) -> str:
    """`label` with O -> 0 in the digit positions of a layout in _EU_LABEL_LAYOUTS, when that is the only
    change needed to match it; any other label is returned as it is (a Polish WA56660 is no Slovak plate
    with misread letters)."""
    for layout in _EU_LABEL_LAYOUTS:
        if len(label) != len(layout):
            continue
        pairs = zip(label, layout, strict=True)
        fixed = "".join("0" if kind == "9" and char == "O" else char for char, kind in pairs)
        if plates.matches(fixed, layout):
            return fixed
    return label


def load_eu_frame_crops(
    split: str, rng: np.random.Generator, per_frame: int = 8
) -> list[tuple[np.ndarray, str]]:
    """Plate crops cut from the labelled plates-eu frames of one `eu_split` half, `per_frame` crops each
    with random margins like a detector box grown by the reader; labels go through `corrected_eu_label`."""
    crops = []
    for image, (x, y, w, h), plate in labelled_eu_frames(split):
        quad = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        label = corrected_eu_label(plates.normalise(plate))
        crops.extend((jitter_crop(image, quad, rng), label) for _ in range(per_frame))
    return crops


def labelled_eu_frames(split: str) -> Iterator[tuple[np.ndarray, tuple, str]]:
    """(image, plate box x y w h, plate label) of each readable plates-eu frame of one `eu_split` part;
    nothing when the shared folder is missing."""
    from edge.vision import evaluate

    root = data_dir() / "plates-eu"
    if not root.is_dir():
        return
    for sample in evaluate.load_samples(root):
        if eu_split(sample.image.name) != split or sample.box is None:
            continue
        image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
        if image is not None:
            yield image, sample.box, sample.plate


def _load_labelled(root: Path, csv_path: Path, file_key: str, text_key: str, keep, fieldnames=None) -> list:
    if not csv_path.is_file():
        return []
    samples = []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, fieldnames=fieldnames):
            if not keep(row[file_key]):
                continue
            image = cv2.imread(str(root / row[file_key]), cv2.IMREAD_COLOR)
            if image is not None:
                samples.append((image, plates.normalise(row[text_key])))
    return samples


# ---- detector scenes -------------------------------------------------------------------------------------


def background_split(file_name: str) -> str:
    """'train' or 'holdout' for a background scene, fixed by a hash of its name: the geometry sweep
    (`edge.vision.sweep`) places held-out plates on held-out backgrounds only."""
    return "holdout" if zlib.crc32(file_name.encode()) % 3 == 0 else "train"


@cache
def background_paths(split: str = "train") -> tuple[str, ...]:
    paths = sorted(glob.glob(str(data_dir() / "backgrounds" / "*.*g")))
    return tuple(p for p in paths if background_split(Path(p).name) == split)


@cache
def eu_crop_paths() -> tuple[str, ...]:
    return tuple(sorted(glob.glob(str(data_dir() / "plates-eu-crops" / "*.*g"))))


def _random_plate_image(rng: np.random.Generator, crops: list) -> np.ndarray:
    """A real plate (EU crops 25 %, `crops` 35 %: the BR crops and the US train half) or a synthetic one."""
    pick = rng.random()
    if pick < 0.25 and eu_crop_paths():
        image = cv2.imread(eu_crop_paths()[rng.integers(len(eu_crop_paths()))])
        if image is not None:
            return image
    if pick < 0.6 and crops:
        return crops[rng.integers(len(crops))][0]
    style = synth.STYLES[rng.integers(3)]
    return synth.render_plate(synth.random_text(rng, style), style, rng, any_text_mask)


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    paths = background_paths()
    image = cv2.imread(paths[rng.integers(len(paths))]) if paths else None
    if image is None:
        return synth._scene(rng, width, height)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def detector_scene(rng: np.random.Generator, size: int, crops: list) -> tuple[np.ndarray, list]:
    """A letterboxed training scene and its plate boxes in model-input pixels."""
    width = int(rng.uniform(400, 1300))
    height = int(width * rng.uniform(0.5, 0.85))
    if rng.random() < 0.35:
        style = synth.STYLES[rng.integers(3)]
        frame, box = synth.render_frame(
            synth.random_text(rng, style), style, rng, (width, height), text_mask=any_text_mask
        )
        boxes = [box]
    else:
        frame, boxes = _composite(rng, width, height, crops)
    return _letterboxed(frame, boxes, size)


def _letterboxed(frame: np.ndarray, boxes: list, size: int) -> tuple[np.ndarray, list]:
    """`frame` letterboxed to the detector input and its boxes mapped into it."""
    boxed, geometry = detector.letterbox(frame, size)
    mapped = [
        (
            x1 * geometry.scale + geometry.pad_x,
            y1 * geometry.scale + geometry.pad_y,
            x2 * geometry.scale + geometry.pad_x,
            y2 * geometry.scale + geometry.pad_y,
        )
        for x1, y1, x2, y2 in boxes
    ]
    return boxed, mapped


def eu_frame_scenes(split: str, rng: np.random.Generator, size: int, per_frame: int) -> list:
    """Detector scenes from the labelled plates-eu frames of one `eu_split` half: `per_frame` views of
    each frame, zoomed so the plate spans 8-75 % of the view width (the synthetic scenes stop at 45 %),
    with camera effects; letterboxed like `detector_scene`."""
    scenes = []
    for image, plate_box, _ in labelled_eu_frames(split):
        for _ in range(per_frame):
            view, box = _zoomed_view(image, plate_box, rng)
            scenes.append(_letterboxed(synth.degrade(view, rng, 0.5), [box], size))
    return scenes


def _zoomed_view(image: np.ndarray, box: tuple, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """A crop of `image` that holds the plate `box` (x, y, w, h), and the box in it."""
    height, width = image.shape[:2]
    x, y, w, h = box
    view_w = int(np.clip(w / rng.uniform(0.08, 0.75), w + 2, width))
    view_h = int(np.clip(view_w * rng.uniform(0.5, 0.85), h + 2, height))
    left = int(rng.uniform(max(0, x + w - view_w), max(0, min(x, width - view_w)) + 1))
    top = int(rng.uniform(max(0, y + h - view_h), max(0, min(y, height - view_h)) + 1))
    left, top = min(left, width - view_w), min(top, height - view_h)
    view = image[top : top + view_h, left : left + view_w]
    return view, (x - left, y - top, x + w - left, y + h - top)


def _composite(rng: np.random.Generator, width: int, height: int, crops: list):
    frame = background(rng, width, height)
    boxes = []
    if rng.random() < 0.1:
        return synth.degrade(frame, rng, 0.7), boxes
    if rng.random() < 0.5:
        car_w = width * rng.uniform(0.4, 0.9)
        cx, cy = synth.draw_car(
            frame, rng, width * rng.uniform(0.3, 0.7), height * rng.uniform(0.75, 1.0), car_w
        )
        centres = [(cx, cy, car_w * rng.uniform(0.2, 0.32))]
    else:
        centres = [
            (width * rng.uniform(0.15, 0.85), height * rng.uniform(0.2, 0.85), width * rng.uniform(0.1, 0.45))
            for _ in range(int(rng.integers(1, 3)))
        ]
    for cx, cy, plate_w in centres:
        plate = _random_plate_image(rng, crops)
        quad = synth.plate_quad((cx, cy), plate_w, plate.shape[1] / plate.shape[0], rng, tilt=1.2)
        synth.warp_into(frame, plate, quad)
        boxes.append(synth.quad_box(quad, width, height))
    return synth.degrade(frame, rng, 0.7), boxes


# ---- OCR at lane geometry --------------------------------------------------------------------------------

# Plate widths (frame px) of the lane cuts, drawn log-uniformly: lane cameras show 40-300 px plates; the
# OCR input is 128 px wide, so plates wider than LANE_WIDTHS[1] are close-ups it already reads.
LANE_WIDTHS = (45.0, 220.0)
LANE_FRAMES = ((1280, 720), (1920, 1080))


def lane_cut_sources() -> list[tuple[str, list[tuple[np.ndarray, tuple, str]]]]:
    """Labelled plates to place into lane frames, as (image, plate box x y w h, label): the US train half
    and the BR crops (whole image = plate) and the plates-eu train third (frames with their plate box)."""
    whole = [
        ("us-train", load_us_crops("train")),
        ("br", load_br_crops()),
    ]
    sources = [
        (name, [(image, (0, 0, image.shape[1], image.shape[0]), text) for image, text in rows])
        for name, rows in whole
    ]
    eu = [
        (image, box, corrected_eu_label(plates.normalise(label)))
        for image, box, label in labelled_eu_frames("train")
    ]
    return [(name, rows) for name, rows in [*sources, ("eu-frames-train", eu)] if rows]


def synthetic_lane_source(
    rng: np.random.Generator, count: int, text_mask: synth.TextMask | None = None
) -> tuple[str, list]:
    """`count` rendered plates (US ones with their looks, `synth.random_us_look`) to place into lane frames
    like the real ones, as (image, plate box x y w h, label): exact labels, and plate variety that the
    1,550 real plates of the other sources lack. `text_mask`: default `any_text_mask`."""
    text_mask = text_mask or any_text_mask
    rows = []
    for _ in range(count):
        style = synth.STYLES[rng.choice(3, p=[0.3, 0.5, 0.2])]
        text = synth.random_text(rng, style)
        if style == "us":
            plate = synth.us_plate(text, rng, text_mask, synth.random_us_look(rng))
        else:
            plate = synth.render_plate(text, style, rng, text_mask)
        rows.append((plate, (0, 0, plate.shape[1], plate.shape[0]), plates.normalise(text)))
    return "synthetic", rows


def lane_cuts(
    rng: np.random.Generator, count: int, sources: list, reader, margins: tuple
) -> list[tuple[np.ndarray, str]]:
    """OCR samples cut the way the reader cuts them at a lane: a labelled plate placed into a 1280x720 or
    1920x1080 frame over a training background at a random lane width (`edge.vision.sweep.place`: turn,
    blur, noise, JPEG), found by the shipped detector (`reader.find`, refine pass included) and cut with
    each of the reader's `margins`. A placement the detector misses gives nothing: the OCR never sees it
    at run time either. The label is the placed plate's, so no pseudo-label is involved."""
    from edge.vision import sweep

    backgrounds = background_paths("train")
    cuts: list[tuple[np.ndarray, str]] = []
    while len(cuts) < count:
        _, rows = sources[rng.integers(len(sources))]
        image, box, label = rows[rng.integers(len(rows))]
        frame_size = LANE_FRAMES[rng.integers(len(LANE_FRAMES))]
        width = int(np.exp(rng.uniform(*np.log(LANE_WIDTHS))))
        scene = cv2.imread(backgrounds[rng.integers(len(backgrounds))]) if backgrounds else None
        if scene is None:
            scene = synth._scene(rng, *frame_size)
        frame, truth = sweep.place(image, box, width, frame_size, scene, rng)
        found = [d for d in reader.find(frame) if detector.iou(truth, (d.x1, d.y1, d.x2, d.y2)) >= 0.3]
        if not found:
            continue
        box = (found[0].x1, found[0].y1, found[0].x2, found[0].y2)
        cuts.extend((to_ocr_input(detector.cut(frame, box, mx, my)), label) for mx, my in margins)
    return cuts[:count]
