"""`parkgate lpr read IMAGE...`, `parkgate lpr eval DIR` and `parkgate lpr synth`: plate recognition tools."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import models
from edge.vision.sweep import WIDTHS as SWEEP_WIDTHS


def register(sub: argparse._SubParsersAction) -> None:
    lpr = sub.add_parser("lpr", help="licence-plate recognition: read images, evaluate, render test frames")
    commands = lpr.add_subparsers(dest="lpr_command", metavar="LPR_COMMAND", required=True)

    read = commands.add_parser(
        "read",
        help="print the plates read in images, with confidence and boxes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  parkgate lpr read frame.jpg --region sk        # full camera frames, Slovak layouts\n"
        "  parkgate lpr read --crop plate1.png plate2.png  # images that are already plate crops",
    )
    read.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="JPEG/PNG images to read")
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
        "detection_recall: a detected\nbox with IoU >= 0.4 on the plate, exact, exact_rate, median_ms) and a "
        "last line overall (width \"all\").\nFull frames need a plate box (OpenALPR .txt labels); a CSV of "
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
    parser.add_argument("--detector", type=Path, default=models.DETECTOR_PATH, help="detector ONNX")
    parser.add_argument("--ocr", type=Path, default=models.OCR_PATH, help="OCR ONNX")
    parser.add_argument("--ocr-config", type=Path, default=models.OCR_CONFIG_PATH, help="OCR YAML")
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


def cmd_read(args: argparse.Namespace) -> int:
    reader = _reader(args)
    status = 0
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{path}: cannot read image (expected a JPEG/PNG/BMP file)", file=sys.stderr)
            status = 1
            continue
        reads = [reader.read_crop(image)] if args.crop else reader.read(image)
        if not reads:
            print(f"{path}: no plate")
        for read in reads:
            box = ",".join(f"{v:.0f}" for v in read.box)
            print(
                f"{path}: {read.text or '-'} confidence={read.confidence:.3f} box={box} "
                f"detector={read.detector_score:.3f}"
            )
    return status


def cmd_eval(args: argparse.Namespace) -> int:
    from edge.vision import evaluate
    from models.data import eu_split, us_split

    samples = evaluate.load_samples(args.folder, args.labels)
    if args.split != "all":
        split = us_split if args.ocr_only else eu_split
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

    figures = evaluate.evaluate(samples, best_text, show if args.show_misses else None)
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


def _sweep_backgrounds(folder: Path | None) -> list[np.ndarray]:
    from edge.vision import synth
    from models.data import background_paths

    if folder:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    else:
        paths = [Path(p) for p in background_paths("holdout")]
    images = [image for image in (cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths) if image is not None]
    if folder and not images:
        raise SystemExit(f"parkgate lpr sweep: no JPEG/PNG backgrounds in {folder}")
    return images or [synth._scene(np.random.default_rng(i), 1280, 720) for i in range(16)]


def cmd_sweep(args: argparse.Namespace) -> int:
    from edge.vision import evaluate, sweep
    from models.data import split_of

    widths, sizes = _positive_ints(args.widths, "--widths"), _frame_sizes(args.sizes)
    samples = evaluate.load_samples(args.folder, args.labels)
    if args.split != "all":
        samples = [s for s in samples if split_of(args.folder, s.image.name) == args.split]
    samples = samples[: args.limit] if args.limit else samples
    reader = _reader(args)
    backgrounds = _sweep_backgrounds(args.backgrounds)
    total, done = len(samples) * len(widths) * len(sizes), [0]

    def progress(sample: evaluate.Sample, outcome: sweep.Outcome) -> None:
        done[0] += 1
        if args.show_misses and outcome.text != outcome.label:
            found = "" if outcome.detected else " (not detected)"
            print(f"miss {sample.image.name} @{outcome.width}px: label {outcome.label} "
                  f"read {outcome.text or '-'}{found}", file=sys.stderr)
        if done[0] % 100 == 0 or done[0] == total:
            print(f"sweep: {done[0]}/{total} frames", file=sys.stderr, flush=True)

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
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if args.out.suffix.lower() == ".mp4" else "MJPG"))
        writer = cv2.VideoWriter(str(args.out), fourcc, 10.0, (width, height))
        for frame in frames:
            writer.write(frame)
        writer.release()
    elif not cv2.imwrite(str(args.out), frames[-1]):
        print(f"cannot write {args.out}: use a .png/.jpg image or a .mp4/.avi video path", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(frames)} frame(s), plate {args.text!r})")
    return 0
