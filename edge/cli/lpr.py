"""`parkgate lpr read SOURCE...`, `lpr eval DIR`, `lpr bench` and `lpr synth`: plate recognition tools."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from edge.vision import bundle
from edge.vision.sweep import WIDTHS as SWEEP_WIDTHS


def register(sub: argparse._SubParsersAction) -> None:
    lpr = sub.add_parser("lpr", help="licence-plate recognition: read images, evaluate, render test frames")
    commands = lpr.add_subparsers(dest="lpr_command", metavar="LPR_COMMAND", required=True)

    read = commands.add_parser(
        "read",
        help="print the plates read in images, a video, an RTSP stream or a camera",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read the plates in each SOURCE: an image file (one frame), a video file, an rtsp://\n"
        "URL, a V4L2 device (/dev/videoN) or a device index (0). Videos, streams and cameras give their\n"
        "first frame, or --frames N of them. Each read: region-fitted text, confidence, box, plate width\n"
        "in pixels and detector score; the raw read before region fitting too when it differs.",
        epilog="examples:\n"
        "  parkgate lpr read frame.jpg --region sk          # a full camera frame, Slovak layouts\n"
        "  parkgate lpr read rtsp://127.0.0.1:8554/lane1 --roi '0.2,0.5;0.8,0.5;0.8,1;0.2,1' \\\n"
        "      --annotate lane1.jpg                         # ROI in fractions; boxes, ROI, texts drawn\n"
        "  parkgate lpr read /dev/video0 --roi '400,600;1500,600;1500,1080;400,1080'  # ROI in pixels\n"
        "  parkgate lpr read pass.mp4 --frames 20 --every 5 --json  # frames 0, 5, ..., 95, JSON lines\n"
        "  parkgate lpr read --crop plate1.png plate2.png    # images that are already plate crops",
    )
    read.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="image file, video file, rtsp:// URL, /dev/videoN or a device index",
    )
    read.add_argument(
        "--frames", type=_at_least_one, default=1, metavar="N", help="read N frames of a video/stream/camera"
    )
    read.add_argument(
        "--every", type=_at_least_one, default=1, metavar="K", help="with --frames: keep every K-th frame"
    )
    read.add_argument(
        "--roi",
        metavar="X,Y;X,Y;...",
        help="the lane's region of interest, a polygon of 3 or more points, all fractions of the frame "
        "(0..1) or all pixels: plates are looked for inside its bounds and reads centred outside it dropped",
    )
    read.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per frame: source, frame, width, height, reads (text, raw_text, confidence, "
        "box, plate_width_px, detector_score)",
    )
    read.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT.jpg",
        help="write each frame with the boxes, the ROI, plate widths and texts drawn (several frames: "
        "OUT-0001.jpg, OUT-0002.jpg, ...)",
    )
    _model_options(read)
    read.add_argument("--crop", action="store_true", help="images are plate crops: run the OCR only")
    read.set_defaults(func=cmd_read)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate on a labelled folder, print one JSON line",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read every labelled image of DIR and print one JSON line: n, exact, exact_rate "
        "(best read == label after\nremoving separators and upper-casing), folded, folded_rate (O->0 and "
        "I->1 mapped first), median_ms, p90_ms\n(per image, reading only) and peak_rss_mb.",
        epilog="examples:\n"
        "  parkgate lpr eval ../shared/data/plates-eu --split holdout --region sk,cz --show-misses\n"
        "  parkgate lpr eval ../shared/data/plates-us-crops --ocr-only --split holdout",
    )
    evaluate.add_argument(
        "folder",
        type=Path,
        metavar="DIR",
        help="images with OpenALPR labels (IMAGE.txt: filename x y w h PLATE, tab-separated) or a CSV",
    )
    evaluate.add_argument("--ocr-only", action="store_true", help="images are plate crops")
    evaluate.add_argument(
        "--labels",
        type=Path,
        help="CSV of file,...,plate (default: DIR/groundtruth.csv or one OpenALPR .txt per image)",
    )
    evaluate.add_argument("--limit", type=int, help="evaluate at most N images")
    evaluate.add_argument(
        "--split",
        choices=("all", "train", "holdout"),
        default="all",
        help="only images of this fine-tuning split (see models/cards)",
    )
    evaluate.add_argument("--show-misses", action="store_true", help="print each wrong read to stderr")
    _model_options(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    bench = commands.add_parser(
        "bench", help="time detection + OCR on rendered lane frames (plates 60-150 px wide), print JSON"
    )
    bench.add_argument("--frames", type=int, default=50, help="how many random plates to render and read")
    bench.add_argument("--size", default="1920x1080", help="frame size WIDTHxHEIGHT (default: %(default)s)")
    _model_options(bench)
    bench.set_defaults(func=cmd_bench)

    sweep = commands.add_parser(
        "sweep",
        help="lane-geometry benchmark: labelled plates placed into full frames at given plate widths",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Place every labelled image of DIR into 1280x720 and 1920x1080 scenes so that its plate "
        "is 40, 60, 80,\n100, 140, 200 and 300 px wide (turned up to 15 degrees, blur, sensor noise, JPEG "
        "60-90, "
        "over held-out\nbackground scenes), read each frame and print one JSON line per width (n, "
        "detection_recall: a detected\nbox with IoU >= 0.4 on the plate, exact, exact_rate, folded, "
        "folded_rate: O/0 and I/1 forgiven,\nmedian_ms) and a last line overall (width \"all\").\n"
        "Full frames need a plate box (OpenALPR .txt labels); a CSV of "
        "crops places each crop as the plate.",
        epilog="examples:\n"
        "  parkgate lpr sweep ../shared/data/plates-eu --split holdout --region sk,cz\n"
        "  parkgate lpr sweep ../shared/data/plates-us-crops --split holdout --limit 100\n"
        "  parkgate lpr sweep DIR --widths 60,80 --sizes 1920x1080 --show-misses",
    )
    sweep.add_argument("folder", type=Path, metavar="DIR", help="labelled images (as for lpr eval)")
    sweep.add_argument("--labels", type=Path, help="CSV of file,...,plate (default as for lpr eval)")
    sweep.add_argument("--split", choices=("all", "train", "holdout"), default="all",
                       help="only images of this fine-tuning split (see models/cards)")
    sweep.add_argument("--limit", type=int, help="use at most N images")
    sweep.add_argument("--widths", default=",".join(map(str, SWEEP_WIDTHS)),
                       help="plate widths in px, comma-separated (default: %(default)s)")
    sweep.add_argument("--sizes", default="1280x720,1920x1080",
                       help="frame sizes WIDTHxHEIGHT, comma-separated (default: %(default)s)")
    sweep.add_argument("--backgrounds", type=Path,
                       help="folder of background scenes (default: the held-out third of "
                       "../shared/data/backgrounds, else generated scenes)")
    sweep.add_argument("--show-misses", action="store_true", help="print each wrong read to stderr")
    _model_options(sweep)
    sweep.set_defaults(func=cmd_sweep)

    render = commands.add_parser("synth", help="render synthetic vehicle frames showing a plate")
    render.add_argument("text", help="plate text, e.g. 'AB 123-CD'")
    render.add_argument("--style", choices=("eu", "us", "br"), default="eu")
    render.add_argument("--frames", type=int, default=1, help="frames of one approaching vehicle")
    render.add_argument("--seed", type=int, default=0, help="random seed (same seed, same frames)")
    render.add_argument("--out", type=Path, required=True, help="image path (one frame) or .mp4/.avi video")
    render.set_defaults(func=cmd_synth)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", type=Path, default=bundle.DEFAULT_DETECTOR_PATH,
                        help="detector ONNX (default: the bundled int8 detector)")
    parser.add_argument("--ocr", type=Path, default=bundle.DEFAULT_OCR_PATH,
                        help="OCR ONNX (default: the bundled int8 OCR)")
    parser.add_argument("--ocr-config", type=Path, default=bundle.OCR_CONFIG_PATH, help="OCR YAML")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--min-score", type=float, default=0.3, help="detector score threshold")
    parser.add_argument(
        "--region",
        default="any",
        help="fit reads to the plate layouts of a region: any (none), eu, br, us (none), or country codes "
        "such as sk, cz, pl, de, uk, joined by commas (default: any)",
    )


def _reader(args: argparse.Namespace):
    from edge.vision.reader import PlateReader

    try:
        return PlateReader(
            args.detector, args.ocr, args.ocr_config, args.threads, args.min_score, region=args.region
        )
    except ValueError as error:
        raise SystemExit(f"parkgate lpr: {error}") from None


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def cmd_read(args: argparse.Namespace) -> int:
    roi = _read_roi(args)
    annotation = _annotation_paths(args)
    reader = _reader(args)
    status, count = 0, 0
    for source in args.sources:
        read, error = _read_source(reader, source, roi, args, annotation, count)
        count += read
        if error:
            print(error, file=sys.stderr)
            status = 1
    return status


def _read_source(reader, source: str, roi, args: argparse.Namespace, annotation,
                 done: int) -> tuple[int, str]:
    """Read and print the frames of one source (`done` frames of earlier sources numbered the annotations
    before): (frames read, '' or why the source failed). Any failure ends this source only, and the
    next is read: a SourceError, or a decoder or ONNX Runtime error (an image the detector cannot take)."""
    from edge.vision.camera import redact_url
    from edge.vision.sources import SourceError, is_image, read_frames

    read = 0
    try:
        for frame in read_frames(source, args.frames, args.every):
            read += 1
            _read_one(reader, frame, roi, args, annotation(done + read))
    except SourceError as error:
        return read, str(error)
    except Exception as error:  # noqa: BLE001 - one bad source must not stop the others; it is reported
        return read, f"{redact_url(source)}: cannot read it: {type(error).__name__}: {error}"
    if read < args.frames and not is_image(source):  # a note, not a failure
        print(f"{redact_url(source)}: ended after {read} of {args.frames} frames", file=sys.stderr)
    return read, ""


def _read_roi(args: argparse.Namespace):
    from edge.vision.roi import Roi

    if args.roi is None:
        return None
    if args.crop:
        raise SystemExit("parkgate lpr read: --roi applies to camera frames, not to --crop plate images")
    try:
        return Roi.parse(args.roi, "--roi")
    except ValueError as error:
        raise SystemExit(f"parkgate lpr read: {error}") from None


def _annotation_paths(args: argparse.Namespace):
    """Frame number (1, 2, ...) -> the --annotate path to write it to (None without --annotate)."""
    out: Path | None = args.annotate
    if out is None:
        return lambda number: None
    if not out.parent.is_dir() or not cv2.haveImageWriter(str(out)):
        raise SystemExit(
            f"parkgate lpr read: --annotate {out}: cannot write it; give a .jpg or .png path in an existing "
            "folder"
        )
    if len(args.sources) == 1 and args.frames == 1:
        return lambda number: out
    return lambda number: out.with_name(f"{out.stem}-{number:04d}{out.suffix}")


def _read_one(reader, frame, roi, args: argparse.Namespace, annotation: Path | None) -> None:
    """Read one frame, draw it to `annotation` and print the reads; SourceError naming the source when
    the ROI does not fit the frame or the drawing cannot be written."""
    from edge.vision.camera import redact_url
    from edge.vision.sources import SourceError

    height, width = frame.image.shape[:2]
    if roi is not None:
        try:
            roi.check_frame(width, height)
        except ValueError as error:
            raise SourceError(f"{redact_url(frame.source)}: {error}") from None
    reads = [reader.read_crop(frame.image)] if args.crop else reader.read(frame.image, roi=roi)
    if annotation is not None and not cv2.imwrite(str(annotation), annotated(frame.image, reads, roi)):
        raise SourceError(f"{redact_url(frame.source)}: cannot write the annotated frame to {annotation}")
    if args.json:
        record = {"source": redact_url(frame.source), "frame": frame.index, "width": width, "height": height}
        record["reads"] = [_read_record(read) for read in reads]
        if annotation is not None:
            record["annotation"] = str(annotation)
        print(json.dumps(record), flush=True)
    else:
        lines = [f"{frame.label}: {_read_line(read)}" for read in reads] or [f"{frame.label}: no plate"]
        if annotation is not None:
            lines.append(f"{frame.label}: annotated {annotation}")
        print("\n".join(lines), flush=True)


def _read_line(read) -> str:
    box = ",".join(f"{v:.0f}" for v in read.box)
    raw = f" raw={read.raw_text}" if read.raw_text and read.raw_text != read.text else ""
    return (
        f"{read.text or '-'}{raw} confidence={read.confidence:.3f} box={box} width={_plate_width(read)}px "
        f"detector={read.detector_score:.3f}"
    )


def _plate_width(read) -> int:
    return round(read.box[2] - read.box[0])


def _read_record(read) -> dict:
    return {
        "text": read.text,
        "raw_text": read.raw_text,
        "confidence": round(read.confidence, 4),
        "box": [round(v, 1) for v in read.box],
        "plate_width_px": _plate_width(read),
        "detector_score": round(read.detector_score, 4),
    }


# BGR colours of the annotation
ROI_COLOUR, BEST_COLOUR, OTHER_COLOUR = (0, 255, 255), (0, 255, 0), (0, 165, 255)
TEXT_COLOUR, BAND_COLOUR = (255, 255, 255), (0, 0, 0)


def annotated(image: np.ndarray, reads: list, roi) -> np.ndarray:
    """A copy of the frame with the ROI polygon (yellow), each read's box (the best green, others orange)
    and above it the region-fitted text, confidence, raw text and plate width in pixels."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(width, height) / 360))
    scale = max(0.4, min(width, height) / 1400)
    if roi is not None:
        points = np.round(roi.polygon(width, height)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], True, ROI_COLOUR, thickness, cv2.LINE_AA)
    for rank, read in reversed(list(enumerate(reads))):
        x1, y1, x2, y2 = (round(v) for v in read.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BEST_COLOUR if rank == 0 else OTHER_COLOUR, thickness)
        lines = (
            f"{read.text or '-'} {read.confidence:.2f}",
            f"raw {read.raw_text or '-'}  {_plate_width(read)} px",
        )
        _label(canvas, lines, (x1, y1), scale, thickness)
    return canvas


def _label(canvas: np.ndarray, lines: tuple[str, ...], corner: tuple[int, int], scale: float, thickness: int):
    """Text lines on a dark band above `corner` (below it when there is no room above)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, scale, thickness)[0] for line in lines]
    line_height = max(h for _, h in sizes) + 6 * thickness
    band = line_height * len(lines)
    x, y = corner
    top = y - band if y - band >= 0 else y
    cv2.rectangle(canvas, (x, top), (x + max(w for w, _ in sizes) + 6, top + band), BAND_COLOUR, cv2.FILLED)
    for number, line in enumerate(lines):
        baseline = top + line_height * (number + 1) - 3 * thickness
        cv2.putText(canvas, line, (x + 3, baseline), font, scale, TEXT_COLOUR, thickness, cv2.LINE_AA)


def _repository_data() -> ModuleType | None:
    """The repository's ``models.data`` (training splits, shared backgrounds), a development tool the wheel
    does not install; None for an installed parkgate. An editable install runs from the checkout, whose
    root is not on the console script's path, so it is added."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "models" / "data.py").is_file() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    try:
        from models import data
    except ImportError:
        return None
    return data


def _models_data(what: str) -> ModuleType:
    """`_repository_data`, or an exit that says why an installed parkgate cannot do `what`."""
    data = _repository_data()
    if data is None:
        raise SystemExit(f"parkgate lpr: {what} needs the training splits of a parkgate repository "
                         "checkout (models/data.py); run it from the repository")
    return data


def cmd_eval(args: argparse.Namespace) -> int:
    from edge.vision import evaluate
    samples = evaluate.load_samples(args.folder, args.labels)
    if args.split != "all":
        data = _models_data("--split")
        split = data.us_split if args.ocr_only else data.eu_split
        samples = [s for s in samples if split(s.image.name) == args.split]
    samples = samples[: args.limit] if args.limit else samples
    reader = _reader(args)

    def best_text(image: np.ndarray) -> str:
        if args.ocr_only:
            return reader.read_crop(image).text
        reads = reader.read(image)
        return reads[0].text if reads else ""

    def show(sample: evaluate.Sample, text: str) -> None:
        print(f"miss {sample.image.name}: label {sample.plate} read {text or '-'}", file=sys.stderr)

    try:
        figures = evaluate.evaluate(samples, best_text, show if args.show_misses else None)
    except ValueError as error:  # an image too big or unreadable (SourceError): named, no traceback
        raise SystemExit(f"parkgate lpr eval: {error}") from None
    figures["peak_rss_mb"] = evaluate.peak_rss_mb()
    print(json.dumps(figures))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.vision import evaluate, plates, synth

    (size,) = _frame_sizes(args.size)
    reader = _reader(args)
    rng = np.random.default_rng(0)
    results = []
    for _ in range(max(1, args.frames)):
        style = synth.STYLES[rng.integers(len(synth.STYLES))]
        text = synth.random_text(rng, style)
        frame, _ = synth.render_frame(text, style, rng, size, plate_width=float(rng.uniform(60, 150)))
        started = time.perf_counter()
        reads = reader.read(frame)
        elapsed = (time.perf_counter() - started) * 1000
        results.append((plates.normalise(text), reads[0].text if reads else "", elapsed))
    figures = evaluate.summarise(results)
    figures["peak_rss_mb"] = evaluate.peak_rss_mb()
    print(json.dumps(figures))
    return 0


def _positive_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"parkgate lpr sweep: {what} must be integers joined by commas, got {text!r}") \
            from None
    if not values or min(values) <= 0:
        raise SystemExit(f"parkgate lpr sweep: {what} must be positive integers, got {text!r}")
    return values


def _frame_sizes(text: str) -> list[tuple[int, int]]:
    """WIDTHxHEIGHT[,WIDTHxHEIGHT...] -> [(width, height), ...]; each side at least 64 px."""
    sizes = []
    for part in text.split(","):
        width, _, height = part.strip().lower().partition("x")
        if not (width.isdigit() and height.isdigit() and int(width) >= 64 and int(height) >= 64):
            raise SystemExit(f"parkgate lpr: a frame size is WIDTHxHEIGHT, each >= 64, sizes joined by "
                             f"commas; got {part!r}")
        sizes.append((int(width), int(height)))
    return sizes


def _sweep_backgrounds(folder: Path | None, scratch: Path) -> list[Path]:
    """Background scene files: those of `folder`, else the held-out third of the shared backgrounds, else
    16 generated scenes written to `scratch`."""
    from edge.vision import synth
    from edge.vision.sources import is_image
    if folder:
        paths = sorted(p for p in folder.iterdir() if is_image(str(p)))
        if not paths:
            raise SystemExit(f"parkgate lpr sweep: no background images (JPEG, PNG, ...) in {folder}")
        return paths
    data = _repository_data()  # an installed parkgate: no repository, so no shared backgrounds
    paths = [Path(p) for p in data.background_paths("holdout")] if data else []
    for index in range(0 if paths else 16):
        paths.append(scratch / f"scene-{index}.png")
        cv2.imwrite(str(paths[-1]), synth._scene(np.random.default_rng(index), 1280, 720))
    return paths


def cmd_sweep(args: argparse.Namespace) -> int:
    from edge.vision import evaluate, sweep

    widths, sizes = _positive_ints(args.widths, "--widths"), _frame_sizes(args.sizes)
    samples = evaluate.load_samples(args.folder, args.labels)
    if args.split != "all":
        data = _models_data("--split")
        samples = [s for s in samples if data.split_of(args.folder, s.image.name) == args.split]
    samples = samples[: args.limit] if args.limit else samples
    reader = _reader(args)
    scratch = tempfile.TemporaryDirectory(prefix="parkgate-sweep-")
    backgrounds = _sweep_backgrounds(args.backgrounds, Path(scratch.name))
    total, done = len(samples) * len(widths) * len(sizes), [0]

    def progress(sample: evaluate.Sample, outcome: sweep.Outcome) -> None:
        done[0] += 1
        if args.show_misses and outcome.text != outcome.label:
            found = "" if outcome.detected else " (not detected)"
            print(f"miss {sample.image.name} @{outcome.width}px: label {outcome.label} "
                  f"read {outcome.text or '-'}{found}", file=sys.stderr)
        if done[0] % 100 == 0 or done[0] == total:
            print(f"sweep: {done[0]}/{total} frames", file=sys.stderr, flush=True)

    with scratch:
        outcomes = sweep.run(samples, reader, backgrounds, sizes, widths, progress)
    for line in sweep.per_width(outcomes, widths):
        print(json.dumps(line))
    print(json.dumps({"width": "all", **sweep.summarise(outcomes), "peak_rss_mb": evaluate.peak_rss_mb()}))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from edge.vision import synth

    frames = synth.render_pass(args.text, max(1, args.frames), args.style, args.seed)
    if args.out.suffix.lower() in (".mp4", ".avi"):
        height, width = frames[0].shape[:2]
        fourcc = cv2.VideoWriter.fourcc(*("mp4v" if args.out.suffix.lower() == ".mp4" else "MJPG"))
        writer = cv2.VideoWriter(str(args.out), fourcc, 10.0, (width, height))
        for frame in frames:
            writer.write(frame)
        writer.release()
    elif not cv2.imwrite(str(args.out), frames[-1]):
        print(f"cannot write {args.out}: use a .png/.jpg image or a .mp4/.avi video path", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(frames)} frame(s), plate {args.text!r})")
    return 0
