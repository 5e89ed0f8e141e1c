"""Train, export and quantise the plate models: `python -m models.train --all` (fixed seed, CPU);
`--ocr-pooled --device cuda` trains the OCR in one stage on an accelerator (models/cards/plate_ocr.md).

Writes models/weights/plate_ocr.onnx (+ .int8.onnx, + plate_ocr.yaml) and plate_detector.onnx (+ .int8.onnx).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml

import models
from edge.vision import bundle
from edge.vision import ocr as ocr_mod
from models import data

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
PAD = "_"
SLOTS = 10
DETECTOR_SIZE = 384
TRAIN_CROP = 256
EU_VIEWS_PER_FRAME = 24  # detector views of each labelled plates-eu train frame
REAL_SCENE_SHARE = 0.25  # of detector training draws
AS_DRAWN_SHARE = 0.1  # detector draws cropped from the scene as it is (negatives, context), not rescaled
# Plate widths (detector-input px) the detector learns, drawn log-uniformly: lane cameras show 40-300 px
# plates in 1280-2560 px frames, which the reader scales to 960 px (15-225 px); close-ups give the top.
PLATE_WIDTHS = (12.0, 220.0)
# Synthetic OCR crops shown inverted (light characters on a dark plate): the generator draws dark on
# light only, while real sets have dark plates with light characters (older UK and Irish, some US states).
INVERTED_SHARE = 0.1


def ocr_config() -> dict:
    return {
        "max_plate_slots": SLOTS,
        "alphabet": ALPHABET,
        "pad_char": PAD,
        "img_height": data.OCR_SIZE[1],
        "img_width": data.OCR_SIZE[0],
        "keep_aspect_ratio": False,
        "interpolation": "linear",
        "image_color_mode": "grayscale",
    }


Chunk = tuple[int, int, dict]  # (seed, count, options): what `_parallel` hands each process


def _synth_ocr_chunk(args: Chunk) -> list:
    """`count` synthetic OCR samples; option `us_looks` (`data.synth_ocr_sample`)."""
    seed, count, options = args
    rng = np.random.default_rng(seed)
    return [data.synth_ocr_sample(rng, **options) for _ in range(count)]


def _scene_chunk(args: Chunk) -> list:
    seed, count, _ = args
    rng = np.random.default_rng(seed)
    crops = data.load_br_crops() + data.load_us_crops("train")
    return [data.detector_scene(rng, DETECTOR_SIZE, crops) for _ in range(count)]


def _lane_cut_chunk(args: Chunk) -> list:
    """`count` lane cuts (`data.lane_cuts`) read by the shipped detector, one thread per worker; option
    `synthetic_plates`: rendered plates are placed too, as one more source (`data.synthetic_lane_source`)."""
    from edge.vision import reader as reader_mod

    seed, count, options = args
    reader = reader_mod.PlateReader(bundle.DETECTOR_PATH, threads=1)
    sources = data.lane_cut_sources()
    if options.get("synthetic_plates"):
        sources.append(data.synthetic_lane_source(np.random.default_rng(seed + 1), 500))
    return data.lane_cuts(np.random.default_rng(seed), count, sources, reader, LANE_CUT_MARGINS)


def _cache_dir() -> Path:
    path = Path(os.environ.get("PARKGATE_TRAIN_CACHE", "/tmp/parkgate-train-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _parallel(func: Callable[[Chunk], list], seed: int, total: int, workers: int,
              setup: Callable[[], None] | None = None, **options: bool) -> list:
    """Generate `total` items in 16 seeded chunks, `options` passed to each; cached in
    $PARKGATE_TRAIN_CACHE (default /tmp), keyed by the function, the options set, the seed and the total.
    `setup` runs only when the cache misses, before the workers fork (what they read from the parent)."""
    cache_dir = _cache_dir()
    variant = "".join(f"-{name}" for name, on in sorted(options.items()) if on)
    cache = cache_dir / f"{func.__name__}{variant}-v{data.DATA_VERSION}-{seed}-{total}.pkl"
    if cache.is_file():
        with open(cache, "rb") as handle:
            return pickle.load(handle)
    if setup is not None:
        setup()
    chunks = [(seed * 100 + i, total // 16, options) for i in range(16)]
    # fork, whatever the platform's default: the workers inherit what the parent set up (_REAL_SOURCES)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        items = [item for chunk in pool.map(func, chunks) for item in chunk]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache, "wb") as handle:
        pickle.dump(items, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return items


RealSources = list[tuple[str, list, float]]  # (name, [(image, label)], share of the real draws)


def train_ocr(
    seed: int,
    steps: int,
    pool_size: int,
    workers: int,
    out_dir: Path,
    self_train_steps: int,
    self_train_rounds: int = 1,
    base: Path | None = None,
) -> None:
    """Base OCR on synthetic + labelled real crops, then (optionally) self-training on pseudo-labelled
    unlabelled EU crops, starting from the base weights; each round labels the crops again with the
    model so far. `base`: a saved base state dict (the `plate_ocr-base.pt` a run leaves in the cache)
    to resume at self-training."""
    started = time.time()
    synthetic = _parallel(_synth_ocr_chunk, seed, pool_size, workers)
    sources: RealSources = [
        ("br", _fits_slots(data.load_br_crops()), 0.325),
        ("us-train", _fits_slots(data.load_us_crops("train")), 0.325),
        (
            "eu-frames-train",
            _fits_slots(data.load_eu_frame_crops("train", np.random.default_rng(seed), 16)),
            0.35,
        ),
    ]
    sources = [source for source in sources if source[1]]
    counts = ", ".join(f"{len(samples)} {name}" for name, samples, _ in sources)
    print(f"ocr data: {len(synthetic)} synthetic, {counts}, {time.time() - started:.0f}s", flush=True)
    if base is None:
        net = fit_ocr(seed, steps, synthetic, sources, None, 3e-3, real_share=0.4)
    else:
        import torch

        net = ocr_net(torch.load(base)).eval()
    export_ocr(net, out_dir, "plate_ocr-base.pt")
    for round_no in range(self_train_rounds if self_train_steps > 0 else 0):
        pseudo = pseudo_label_eu_crops(out_dir / "plate_ocr.onnx")
        print(f"self-training round {round_no + 1} on {len(pseudo)} pseudo-labelled EU crops", flush=True)
        mix = sources
        if pseudo:
            mix = [(name, samples, share * 0.7) for name, samples, share in sources] + [
                ("eu-pseudo", pseudo, 0.3)
            ]
        net = fit_ocr(seed + 1 + round_no, self_train_steps, synthetic, mix, net.state_dict(), 1e-3, 0.5)
        export_ocr(net, out_dir)
        if self_train_rounds > 1:
            export_ocr(net, _cache_dir() / f"round-{round_no + 1}", f"plate_ocr-round-{round_no + 1}.pt")


# The margins the lane stage cuts its plates with: those the reader used when the committed OCR was trained.
# The reader's `CROP_MARGINS` were then chosen again with that OCR (edge/vision/reader.py) and differ a
# little; keep these to reproduce the committed model.
LANE_CUT_MARGINS = ((-0.02, -0.04), (-0.05, -0.10), (0.02, 0.04), (0.0, 0.10))
LANE_SYNTHETIC_POOL = 6000  # synthetic crops the lane stage draws its synthetic 30 % from
# The source name of `data.lane_cuts` samples: already cut and degraded, so never augmented again.
LANE_CUTS = "lane-cuts"
# From this lane round on, the synthetic US plates carry what real ones have beside the number (stacked
# class codes, logos, stickers, light characters on dark plates). A read one character longer than its
# label (the misses listed show many such marks) was 77 of the 394 US misses at 80-300 px after round 3
# (`lpr sweep --show-misses` on the held-out half; models/cards/plate_ocr.md), and the synthetic US plates
# had none of these marks.
US_LOOKS_FROM_ROUND = 4


def lane_rounds(seed: int, first: int, last: int) -> list[tuple[int, bool]]:
    """(seed, us_looks) of lane rounds `first`..`last` (from 1): round r cuts with seed + r - 1, so a run
    from round N on continues a run that stopped after round N - 1 exactly."""
    if first < 1:
        raise ValueError(f"--from-round counts from 1, got {first}")
    return [(seed + r - 1, r >= US_LOOKS_FROM_ROUND) for r in range(first, last + 1)]


def train_ocr_lane(
    seed: int, steps: int, cuts: int, workers: int, out_dir: Path, init: Path, us_looks: bool = False
) -> None:
    """Fine-tune an OCR (the ONNX file `init`, e.g. the self-trained model) on plates cut the way the
    reader cuts them from lane frames (`data.lane_cuts`): the plates-us held-out sweep showed the close-up
    OCR reading 94 % of crops but 86 % of the same plates cut from 1920x1080 frames at 100 px by their true
    box, and 77 % by the detector's box (looser than the crop the OCR learned). Batch norm statistics stay
    frozen (the ONNX file holds them folded into the convolutions). `us_looks`: the synthetic US plates
    carry stacked codes, logos, stickers and light-on-dark colours (`synth.UsLook`)."""
    started = time.time()
    synthetic = _parallel(_synth_ocr_chunk, seed, LANE_SYNTHETIC_POOL, workers, us_looks=us_looks)
    lane = _parallel(_lane_cut_chunk, seed, cuts, workers)
    sources: RealSources = [
        (LANE_CUTS, _fits_slots(lane), 0.55),
        ("br", _fits_slots(data.load_br_crops()), 0.15),
        ("us-train", _fits_slots(data.load_us_crops("train")), 0.15),
        ("eu-frames-train",
         _fits_slots(data.load_eu_frame_crops("train", np.random.default_rng(seed), 16)), 0.15),
    ]
    sources = [source for source in sources if source[1]]
    counts = ", ".join(f"{len(samples)} {name}" for name, samples, _ in sources)
    print(f"ocr lane data: {len(synthetic)} synthetic, {counts}, {time.time() - started:.0f}s", flush=True)
    net = fit_ocr(seed + 50, steps, synthetic, sources, state_from_onnx(init), 5e-4, 0.7, freeze_norm=True)
    export_ocr(net, out_dir, "plate_ocr-lane.pt")


def state_from_onnx(path: Path) -> dict:
    """A `PlateCtcNet` state dict from an OCR exported by `export_ocr`: the exporter folds each batch norm
    into its convolution, so the norms come back as identities (weight 1, mean 0, variance 1 - eps) with
    the folded bias; the ONNX LSTM's gate order (i, o, f, c) is put back into torch's (i, f, g, o)."""
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    state = {key: value.clone() for key, value in ocr_net().state_dict().items()}
    convs = [key for key, value in state.items() if key.endswith(".weight") and value.dim() == 4]
    folded = sorted(
        (n for n in weights if n.startswith("onnx::Conv_")), key=lambda n: int(n.rsplit("_", 1)[1])
    )
    if len(folded) != 2 * len(convs):
        raise ValueError(f"{path}: {len(folded) // 2} convolutions, the OCR network has {len(convs)}")
    for conv, weight, bias in zip(convs, folded[0::2], folded[1::2], strict=True):
        module, index = conv.rsplit(".", 2)[0], int(conv.rsplit(".", 2)[1])
        norm = f"{module}.{index + 1}"
        state[conv] = torch.from_numpy(weights[weight].copy())
        state[f"{norm}.weight"] = torch.ones_like(state[f"{norm}.weight"])
        state[f"{norm}.bias"] = torch.from_numpy(weights[bias].copy())
        state[f"{norm}.running_mean"] = torch.zeros_like(state[f"{norm}.running_mean"])
        state[f"{norm}.running_var"] = torch.full_like(state[f"{norm}.running_var"], 1 - 1e-5)
    bias, input_weights, hidden_weights = (
        weights[n] for n in sorted((n for n in weights if n.startswith("onnx::LSTM_")),
                                   key=lambda n: int(n.rsplit("_", 1)[1]))
    )
    hidden = hidden_weights.shape[2]

    def torch_gates(rows: np.ndarray) -> torch.Tensor:
        i, o, f, c = np.split(rows, 4, axis=0)
        return torch.from_numpy(np.concatenate([i, f, c, o], axis=0).copy())

    for direction, suffix in enumerate(("", "_reverse")):
        state[f"sequence.weight_ih_l0{suffix}"] = torch_gates(input_weights[direction])
        state[f"sequence.weight_hh_l0{suffix}"] = torch_gates(hidden_weights[direction])
        state[f"sequence.bias_ih_l0{suffix}"] = torch_gates(bias[direction][: 4 * hidden])
        state[f"sequence.bias_hh_l0{suffix}"] = torch_gates(bias[direction][4 * hidden :])
    matmul = next(n for n in weights if n.startswith("onnx::MatMul_"))
    state["classify.1.weight"] = torch.from_numpy(weights[matmul].T.copy())
    state["classify.1.bias"] = torch.from_numpy(weights["net.classify.1.bias"].copy())
    return state


# ---- OCR on an accelerator: pooled data, one mixed stage (`--ocr-pooled`) -------------------------------

# Each batch of the pooled stage: shares of the synthetic pool, the lane cuts and the augmented real crops.
POOLED_SHARES = (("synthetic", 0.3), ("lane", 0.35), ("real", 0.35))
# The real crops' sources in the augmented pool: the labelled ones of the CPU recipe and, as there, the
# unlabelled EU crops that an OCR (`--pseudo-ocr`) reads confidently in a European layout.
REAL_POOL_SHARES = (("br", 0.3), ("us-train", 0.3), ("eu-frames-train", 0.25), ("eu-pseudo", 0.15))
_REAL_SOURCES: RealSources = []  # set by `ocr_pools` before the pool's workers fork, when they are needed


def _augmented_chunk(args: Chunk) -> list:
    """`count` real crops drawn from _REAL_SOURCES by their shares, each augmented once
    (`data.augment_real_crop`)."""
    seed, count, _ = args
    rng = np.random.default_rng(seed)
    shares = np.array([share for _, _, share in _REAL_SOURCES])
    out = []
    for source in rng.choice(len(_REAL_SOURCES), size=count, p=shares / shares.sum()):
        samples = _REAL_SOURCES[source][1]
        image, label = samples[rng.integers(len(samples))]
        out.append((data.augment_real_crop(image, rng), label))
    return out


def real_sources(seed: int, pseudo_ocr: Path | None) -> RealSources:
    """The labelled real crops of REAL_POOL_SHARES (sources that are empty are left out)."""
    found = {
        "br": data.load_br_crops(),
        "us-train": data.load_us_crops("train"),
        "eu-frames-train": data.load_eu_frame_crops("train", np.random.default_rng(seed), 16),
        "eu-pseudo": pseudo_label_eu_crops(pseudo_ocr) if pseudo_ocr else [],
    }
    fitting = {name: _fits_slots(samples) for name, samples in found.items()}
    return [(name, fitting[name], share) for name, share in REAL_POOL_SHARES if fitting[name]]


def ocr_pools(seed: int, synthetic: int, lane: int, real: int, workers: int,
              pseudo_ocr: Path | None, synthetic_plates: bool = False) -> dict[str, list]:
    """The three pools of the pooled stage, each generated in parallel and cached like `_parallel`."""
    started = time.time()

    def load_real_sources() -> None:  # only when the augmented pool is not cached yet
        global _REAL_SOURCES
        _REAL_SOURCES = real_sources(seed, pseudo_ocr)
        counts = ", ".join(f"{len(samples)} {name}" for name, samples, _ in _REAL_SOURCES)
        print(f"ocr pools: augmenting real crops from {counts}", flush=True)

    pools = {"synthetic": _parallel(_synth_ocr_chunk, seed, synthetic, workers, us_looks=True),
             "lane": _parallel(_lane_cut_chunk, seed, lane, workers, synthetic_plates=synthetic_plates),
             "real": _parallel(_augmented_chunk, seed, real, workers, load_real_sources,
                               pseudo=pseudo_ocr is not None)}
    pools = {name: _fits_slots(samples) for name, samples in pools.items()}
    sizes = ", ".join(f"{len(samples)} {name}" for name, samples in pools.items())
    print(f"ocr pools: {sizes}, {time.time() - started:.0f}s", flush=True)
    return pools


def _pool_tensors(samples: list, device: str):
    """A pool as (images uint8 N x H x W, targets N x SLOTS padded with the blank, target lengths)."""
    import torch

    blank = ALPHABET.index(PAD)
    targets = torch.full((len(samples), SLOTS), blank, dtype=torch.long)
    lengths = torch.zeros(len(samples), dtype=torch.long)
    for row, (_, text) in enumerate(samples):
        indices = _indices(text)
        targets[row, : len(indices)] = torch.tensor(indices)
        lengths[row] = len(indices)
    images = torch.from_numpy(np.stack([image for image, _ in samples]))
    return images.to(device), targets.to(device), lengths.to(device)


def fit_ocr_pooled(seed: int, steps: int, pools: dict[str, list], init_state, max_lr: float,
                   batch_size: int, device: str, freeze_norm: bool, deadline_s: float):
    """CTC training on batches drawn from pools held on `device` by POOLED_SHARES: all augmentation but
    the photometric jitter and the inverted synthetic crops was done when the pools were made, so a step
    is only index draws and the network (on a GPU, a few ms). Stops early, with a warning, after
    `deadline_s` seconds."""
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    started = time.time()
    net = ocr_net(init_state).to(device)
    optimiser, schedule = _optimiser(net, max_lr, steps)
    tensors = {name: _pool_tensors(pools[name], device) for name, _ in POOLED_SHARES}
    counts = [(name, round(batch_size * share)) for name, share in POOLED_SHARES]
    for step in range(steps):
        parts = []
        for name, count in counts:
            images, targets, lengths = tensors[name]
            index = torch.randint(len(images), (count,), device=device, generator=generator)
            parts.append((images[index], targets[index], lengths[index]))
        x = torch.cat([p[0] for p in parts]).float().unsqueeze(1) / 255.0
        n = x.shape[0]
        x = _photometric(x, generator)
        flip = torch.rand(n, device=device, generator=generator) < INVERTED_SHARE
        flip[counts[0][1] :] = False  # only synthetic crops (the first part) are shown inverted
        x = torch.where(flip.view(-1, 1, 1, 1), 1.0 - x, x)
        targets = torch.cat([p[1] for p in parts])
        lengths = torch.cat([p[2] for p in parts])
        logits, loss = _ctc_step(net, optimiser, schedule, x, targets, lengths, freeze_norm)
        late = time.time() - started > deadline_s
        if step % 500 == 0 or step == steps - 1 or late:
            wanted = [row[:length] for row, length in zip(targets.tolist(), lengths.tolist(), strict=True)]
            exact = _batch_exact(logits, wanted)
            print(f"ocr pooled step {step} loss {loss.item():.3f} exact {exact:.2f} lr "
                  f"{schedule.get_last_lr()[0]:.2e} {time.time() - started:.0f}s", flush=True)
        if late:
            print(f"WARNING: stopped at step {step + 1} of {steps}: {deadline_s:.0f}s deadline", flush=True)
            break
    return net.cpu().eval()


def train_ocr_pooled(args: argparse.Namespace) -> None:
    """The pooled stage from the options of `main` (from scratch, or from --ocr-init with batch norm
    statistics frozen); writes plate_ocr.onnx (fp32) and the state dict into --out. No int8 file:
    `--quantise-ocr` writes it where the calibration is run."""
    import torch

    pools = ocr_pools(args.seed, args.pooled_synthetic, args.pooled_lane, args.pooled_real, args.workers,
                      args.pseudo_ocr, args.lane_synthetic)
    if args.pooled_steps <= 0:
        return
    init = state_from_onnx(args.ocr_init) if args.ocr_init else None
    net = fit_ocr_pooled(args.seed + 50, args.pooled_steps, pools, init, args.max_lr, args.batch,
                         args.device, args.freeze_norm, args.deadline)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "plate_ocr-pooled.pt")
    export_ocr_onnx(net, args.out)


def _fits_slots(samples: list) -> list:
    return [(image, text) for image, text in samples if 0 < len(text) <= SLOTS]


def pseudo_label_eu_crops(ocr_path: Path, min_confidence: float = 0.85) -> list[tuple[np.ndarray, str]]:
    """Unlabelled EU crops whose current read is confident and has a European national layout exactly."""
    from edge.vision import plates
    from edge.vision.reader import PlateOcr

    reader = PlateOcr(ocr_path, ocr_mod.config_from_dict(ocr_config()), threads=1)
    layouts = plates.region_patterns("eu")
    kept = []
    for path in data.eu_crop_paths():
        image = cv2.imread(path)
        if image is None:
            continue
        [read] = reader.read_crops([image])
        sure = bool(read.text) and min(read.char_confidences) >= min_confidence
        if sure and plates.matches_any(read.text, layouts):
            kept.append((image, read.text))
    return kept


def ocr_net(state: dict | None = None):
    """The OCR network for ALPHABET and the OCR input height, with `state` loaded when given."""
    from models.nets import PlateCtcNet

    net = PlateCtcNet(len(ALPHABET), data.OCR_SIZE[1])
    if state is not None:
        net.load_state_dict(state)
    return net


def fit_ocr(
    seed: int,
    steps: int,
    synthetic: list,
    sources: RealSources,
    init_state,
    max_lr: float,
    real_share: float,
    freeze_norm: bool = False,
):
    """CTC training of the column OCR on a mix of synthetic and (augmented) real crops; each batch draws
    `real_share` of its crops from the real sources, by their shares."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.time()
    net = ocr_net(init_state)
    optimiser, schedule = _optimiser(net, max_lr, steps)
    batch_size = 64
    n_real = int(batch_size * real_share) if sources else 0
    shares = np.array([share for _, _, share in sources], dtype=np.float64)
    for step in range(steps):
        images, labels = [], []
        for index in rng.integers(len(synthetic), size=batch_size - n_real):
            images.append(synthetic[index][0])
            labels.append(synthetic[index][1])
        for source in rng.choice(len(sources), size=n_real, p=shares / shares.sum()) if n_real else []:
            samples = sources[source][1]
            image, label = samples[rng.integers(len(samples))]
            images.append(image if sources[source][0] == LANE_CUTS else data.augment_real_crop(image, rng))
            labels.append(label)
        x = _photometric(torch.from_numpy(np.stack(images)).float().unsqueeze(1) / 255.0, rng)
        inverted = torch.from_numpy(rng.random(batch_size) < INVERTED_SHARE)
        inverted[batch_size - n_real :] = False  # real crops keep their own colours
        x[inverted] = 1.0 - x[inverted]
        targets = [_indices(t) for t in labels]
        logits, loss = _ctc_step(net, optimiser, schedule, x, torch.tensor([i for t in targets for i in t]),
                                 torch.tensor([len(t) for t in targets]), freeze_norm)
        if step % 100 == 0 or step == steps - 1:
            print(f"ocr step {step} loss {loss.item():.3f} exact {_batch_exact(logits, targets):.2f} "
                  f"{time.time() - started:.0f}s", flush=True)
    return net.eval()


def _optimiser(net, max_lr: float, steps: int):
    """AdamW with a one-cycle learning rate over `steps` (every OCR stage)."""
    import torch

    optimiser = torch.optim.AdamW(net.parameters(), lr=max_lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=max_lr, total_steps=steps, pct_start=0.1)
    return optimiser, schedule


def _ctc_step(net, optimiser, schedule, x, targets, lengths, freeze_norm: bool):
    """One CTC training step on the batch `x`; `targets` concatenated (1-D) or padded (N x SLOTS), `lengths`
    per crop. With `freeze_norm` the batch norms keep their statistics (fine-tuning a shipped OCR, whose
    ONNX file holds them folded into the convolutions). Returns the logits (N x T x C) and the loss."""
    import torch
    from torch.nn import functional as F

    net.train()
    if freeze_norm:
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
    logits = net(x)
    columns = torch.full((x.shape[0],), logits.shape[1], dtype=torch.long, device=x.device)
    loss = F.ctc_loss(F.log_softmax(logits, -1).permute(1, 0, 2), targets, columns, lengths,
                      blank=ALPHABET.index(PAD), zero_infinity=True)
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    optimiser.step()
    schedule.step()
    return logits, loss


def _batch_exact(logits, wanted: list[list[int]]) -> float:
    """Share of the batch whose greedy CTC decoding is its label (training progress, printed)."""
    decoded = [_greedy(row, ALPHABET.index(PAD)) for row in logits.argmax(-1).tolist()]
    return float(np.mean([d == t for d, t in zip(decoded, wanted, strict=True)]))


def _indices(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in text[:SLOTS] if c in ALPHABET and c != PAD]


def _greedy(best: list[int], blank: int) -> list[int]:
    out, previous = [], -1
    for index in best:
        if index != blank and index != previous:
            out.append(index)
        previous = index
    return out


def export_ocr(net, out_dir: Path, state_name: str = "plate_ocr.pt") -> None:
    """plate_ocr.onnx, its YAML and int8 file into `out_dir`; the state dict into the cache."""
    import torch

    export_ocr_onnx(net, out_dir)
    write_ocr_companions(out_dir)
    torch.save(net.state_dict(), _cache_dir() / state_name)


def export_ocr_onnx(net, out_dir: Path) -> None:
    """plate_ocr.onnx (fp32, the fixed-slot contract) of `net` into `out_dir`."""
    import torch

    from models.nets import CtcSlotsExport

    sample = torch.zeros(1, data.OCR_SIZE[1], data.OCR_SIZE[0], 1, dtype=torch.uint8)
    _export(CtcSlotsExport(net, SLOTS, ALPHABET.index(PAD)), sample, out_dir / "plate_ocr.onnx", "input",
            "output")


def average_states(states: list[dict]) -> dict:
    """The uniform average of state dicts of one network (a "model soup"); integer entries (batch norm
    step counts) are taken from the first."""
    return {key: sum(state[key] for state in states) / len(states) if value.is_floating_point() else value
            for key, value in states[0].items()}


def soup_ocr(files: list[Path], out_dir: Path) -> None:
    """plate_ocr.onnx, its YAML and int8 file into `out_dir`: the average of the OCR files `files` (each
    exported by `export_ocr_onnx`, fine-tuned from one model with its batch norm statistics frozen, so
    that their folded weights average layer by layer; models/cards/plate_ocr.md says which)."""
    net = ocr_net(average_states([state_from_onnx(path) for path in files])).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    export_ocr_onnx(net, out_dir)
    write_ocr_companions(out_dir)


def write_ocr_companions(out_dir: Path) -> None:
    """plate_ocr.yaml and plate_ocr.int8.onnx beside the plate_ocr.onnx in `out_dir`."""
    with open(out_dir / "plate_ocr.yaml", "w", encoding="utf-8") as handle:
        yaml.safe_dump(ocr_config(), handle, sort_keys=False)
    quantise_static(out_dir / "plate_ocr.onnx", out_dir / "plate_ocr.int8.onnx",
                    ocr_calibration(calibration_frames()))


PHOTOMETRIC_GAIN = (0.7, 1.3)
PHOTOMETRIC_BIAS = (-0.15, 0.15)


def _photometric(x, rng):
    """Per-sample contrast/brightness/inversion-free jitter on a float batch in [0, 1]; `rng` a numpy
    generator (the CPU stages: the batch is made on the CPU) or a torch one on the batch's device."""
    import torch

    shape = (x.shape[0], 1, 1, 1)
    if isinstance(rng, np.random.Generator):
        gain = torch.from_numpy(rng.uniform(*PHOTOMETRIC_GAIN, shape)).float()
        bias = torch.from_numpy(rng.uniform(*PHOTOMETRIC_BIAS, shape)).float()
    else:
        gain = torch.empty(shape, device=x.device).uniform_(*PHOTOMETRIC_GAIN, generator=rng)
        bias = torch.empty(shape, device=x.device).uniform_(*PHOTOMETRIC_BIAS, generator=rng)
    return ((x - 0.5) * gain + 0.5 + bias).clamp(0, 1)


def train_detector(seed: int, steps: int, scenes: int, workers: int, out_dir: Path) -> None:
    import torch

    from models.nets import DetectorExport, PlateDetectorNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    started = time.time()
    pool = _parallel(_scene_chunk, seed + 1, scenes, workers)
    real = data.eu_frame_scenes("train", rng, DETECTOR_SIZE, EU_VIEWS_PER_FRAME)
    elapsed = time.time() - started
    print(f"detector data: {len(pool)} scenes + {len(real)} real views, {elapsed:.0f}s", flush=True)
    net = PlateDetectorNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    batch_size = 16
    for step in range(steps):
        batch = [_training_view(pool, real, rng) for _ in range(batch_size)]
        x = (
            torch.from_numpy(np.stack([b[0] for b in batch])[:, :, :, ::-1].copy())
            .float()
            .permute(0, 3, 1, 2)
            / 255
        )
        targets = [_centre_targets(b[1], TRAIN_CROP // PlateDetectorNet.stride) for b in batch]
        heat, size, offset, mask = (torch.from_numpy(np.stack([t[k] for t in targets])) for k in range(4))
        net.train()
        out = net(x)
        loss_heat = _focal_loss(out[:, 0], heat)
        m = mask.unsqueeze(1)
        count = mask.sum().clamp(min=1)
        loss_size = (torch.abs(out[:, 1:3] - size) * m).sum() / count
        loss_offset = (torch.abs(out[:, 3:5] - offset) * m).sum() / count
        loss = loss_heat + 0.5 * loss_size + loss_offset
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(
                f"det step {step} loss {loss.item():.3f} heat {loss_heat.item():.3f}"
                f" {time.time() - started:.0f}s",
                flush=True,
            )
    net.eval()
    path = out_dir / "plate_detector.onnx"
    _export(DetectorExport(net), torch.zeros(1, 3, 544, 960), path, "images", "output")
    quantise_static(path, out_dir / "plate_detector.int8.onnx", detector_calibration(calibration_frames()))


def _draw_scene(pool: list, real: list, rng: np.random.Generator) -> tuple:
    """A generated scene, or with probability REAL_SCENE_SHARE a view of a real labelled frame."""
    source = real if real and rng.random() < REAL_SCENE_SHARE else pool
    return source[rng.integers(len(source))]


def _training_view(pool: list, real: list, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """A TRAIN_CROP square for one training draw: mostly a scene rescaled so that one of its plates is
    a width drawn from PLATE_WIDTHS (scenes tiled around it when it shrinks below the crop, as a far car
    in a wide frame), sometimes a crop of the scene as drawn."""
    image, boxes = _draw_scene(pool, real, rng)
    if not boxes or rng.random() < AS_DRAWN_SHARE:
        return _random_crop(image, boxes, rng)
    x1, y1, x2, y2 = boxes[rng.integers(len(boxes))]
    target = math.exp(rng.uniform(math.log(PLATE_WIDTHS[0]), math.log(PLATE_WIDTHS[1])))
    scale = target / max(2.0, x2 - x1)
    # Where the anchor plate's centre lands in the crop.
    at_x, at_y = rng.uniform(0.15, 0.85, 2) * TRAIN_CROP
    if image.shape[0] * scale >= TRAIN_CROP:
        dx, dy = at_x - scale * (x1 + x2) / 2, at_y - scale * (y1 + y2) / 2
        matrix = np.float32([[scale, 0, dx], [0, scale, dy]])
        view = cv2.warpAffine(
            image, matrix, (TRAIN_CROP, TRAIN_CROP), flags=cv2.INTER_AREA, borderValue=(114, 114, 114)
        )
        return view, _kept(boxes, scale, matrix[0, 2], matrix[1, 2])
    origin = (at_x - scale * (x1 + x2) / 2, at_y - scale * (y1 + y2) / 2)
    return _tiled(image, boxes, scale, origin, pool, rng)


def _tiled(image, boxes, scale: float, origin: tuple[float, float], pool: list, rng: np.random.Generator):
    """A crop tiled with scenes shrunk by `scale`: `image` at `origin`, random pool scenes around it."""
    side = image.shape[0] * scale
    canvas = data.background(rng, TRAIN_CROP, TRAIN_CROP)
    kept: list = []
    first_col, first_row = -math.ceil(origin[0] / side), -math.ceil(origin[1] / side)
    last_col = math.ceil((TRAIN_CROP - origin[0]) / side)
    last_row = math.ceil((TRAIN_CROP - origin[1]) / side)
    for row in range(first_row, last_row):
        for col in range(first_col, last_col):
            scene, scene_boxes = (image, boxes) if (row, col) == (0, 0) else pool[rng.integers(len(pool))]
            dx, dy = origin[0] + col * side, origin[1] + row * side
            matrix = np.float32([[scale, 0, dx], [0, scale, dy]])
            mask = np.full(scene.shape[:2], 255, np.uint8)
            tile = cv2.warpAffine(scene, matrix, (TRAIN_CROP, TRAIN_CROP), flags=cv2.INTER_AREA)
            inside = cv2.warpAffine(mask, matrix, (TRAIN_CROP, TRAIN_CROP), flags=cv2.INTER_NEAREST) > 0
            canvas[inside] = tile[inside]
            kept += _kept(scene_boxes, scale, dx, dy)
    return canvas, kept


def _kept(boxes: list, scale: float, dx: float, dy: float) -> list:
    """Boxes scaled and shifted into the crop, those whose centre falls inside it."""
    mapped = [(x1 * scale + dx, y1 * scale + dy, x2 * scale + dx, y2 * scale + dy)
              for x1, y1, x2, y2 in boxes]
    inside = lambda v: 0 <= v < TRAIN_CROP  # noqa: E731
    return [b for b in mapped if inside((b[0] + b[2]) / 2) and inside((b[1] + b[3]) / 2)]


def _random_crop(image: np.ndarray, boxes: list, rng: np.random.Generator):
    """A TRAIN_CROP square of a scene as drawn, usually around a plate; boxes shifted (dropped if cut off)."""
    size = image.shape[0]
    limit = size - TRAIN_CROP
    if boxes and rng.random() < 0.85:
        x1, y1, x2, y2 = boxes[rng.integers(len(boxes))]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        left = int(np.clip(cx - rng.uniform(0.15, 0.85) * TRAIN_CROP, 0, limit))
        top = int(np.clip(cy - rng.uniform(0.15, 0.85) * TRAIN_CROP, 0, limit))
    else:
        left, top = int(rng.integers(limit + 1)), int(rng.integers(limit + 1))
    crop = image[top : top + TRAIN_CROP, left : left + TRAIN_CROP]
    return crop, _kept(boxes, 1.0, -left, -top)


def _centre_targets(boxes: list, grid: int):
    stride = TRAIN_CROP / grid
    heat = np.zeros((grid, grid), np.float32)
    size = np.zeros((2, grid, grid), np.float32)
    offset = np.zeros((2, grid, grid), np.float32)
    mask = np.zeros((grid, grid), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
    for x1, y1, x2, y2 in boxes:
        w, h = max(2.0, x2 - x1), max(2.0, y2 - y1)
        cx, cy = (x1 + x2) / 2 / stride - 0.5, (y1 + y2) / 2 / stride - 0.5
        ix, iy = int(np.clip(round(cx), 0, grid - 1)), int(np.clip(round(cy), 0, grid - 1))
        sigma_x, sigma_y = max(0.5, w / stride / 6), max(0.5, h / stride / 6)
        blob = np.exp(-((xs - ix) ** 2) / (2 * sigma_x**2) - ((ys - iy) ** 2) / (2 * sigma_y**2))
        heat = np.maximum(heat, blob)
        heat[iy, ix] = 1.0
        size[:, iy, ix] = (math.log(w / 8.0), math.log(h / 8.0))
        offset[:, iy, ix] = (cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return heat, size, offset, mask


def _focal_loss(logits, target):
    import torch

    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    negative_weight = torch.pow(1 - target, 4)
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * positive
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * negative_weight * (1 - positive)
    return -(pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1)


def _export(module, sample, path: Path, input_name: str, output_name: str) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        (sample,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        opset_version=17,
        dynamo=False,
        dynamic_axes=_dynamic_axes(input_name, output_name),
    )
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)


def _dynamic_axes(input_name: str, output_name: str) -> dict:
    """OCR: any batch. Detector (`images`): any height and width (a fully convolutional net; the reader
    picks the size per frame), rows of the output follow."""
    if input_name == "images":
        return {input_name: {2: "height", 3: "width"}}
    return {input_name: {0: "batch"}, output_name: {0: "batch"}}


CALIBRATION_FRAMES = 48  # lane frames whose model inputs set the int8 activation ranges
CALIBRATION_SIZES = ((1280, 720), (1920, 1080), (960, 540))
CALIBRATION_SEED = 7


Frames = list[tuple[np.ndarray, tuple]]  # (frame, plate box x1 y1 x2 y2)


def calibration_frames(seed: int = CALIBRATION_SEED, frames: int = CALIBRATION_FRAMES) -> Frames:
    """Rendered lane frames and their plate boxes (`synth.render_frame`: US, EU and BR styles, plates
    40-300 px in 960x540 to 1920x1080 frames): generated data only, no validation image."""
    from edge.vision import synth

    rng = np.random.default_rng(seed)
    made = []
    for index in range(frames):
        style = synth.STYLES[index % len(synth.STYLES)]
        width = float(np.exp(rng.uniform(math.log(40), math.log(300))))
        made.append(synth.render_frame(synth.random_text(rng, style), style, rng,
                                       CALIBRATION_SIZES[index % len(CALIBRATION_SIZES)], width))
    return made


def detector_calibration(frames: Frames) -> list[dict]:
    """Detector inputs as the reader makes them: each frame's fine and coarse pass
    (`PlateDetector.input_sizes`)."""
    from edge.vision import detector, reader

    feeds = []
    for frame, _ in frames:
        height, width = frame.shape[:2]
        for input_width in (reader.FINE_WIDTH, reader.COARSE_WIDTH):
            size = detector.free_size(width, height, input_width)
            feeds.append({"images": detector.preprocess(frame, size)[0]})
    return feeds


def ocr_calibration(frames: Frames) -> list[dict]:
    """OCR inputs as the reader makes them: the cuts of each calibration plate (`reader.CROP_MARGINS`) in
    one batch."""
    from edge.vision import detector, reader

    config = ocr_mod.config_from_dict(ocr_config())
    return [{"input": ocr_mod.preprocess([detector.cut(frame, box, mx, my) for mx, my in reader.CROP_MARGINS],
                                         config)}
            for frame, box in frames]


# The layers quantised: each convolution with its ReLU (one int8 step instead of int8 -> float -> ReLU ->
# int8), and the pooling, upsampling and concatenation between them, so that activations stay int8 from
# the first convolution to the last (speed figures in models/cards/plate_detector.md).
QUANTISED_OPS = ["Conv", "Relu", "MaxPool", "Resize", "Concat"]
NETWORK_SCOPE = "/net/"  # the exported torch module's nodes; the wrappers' post-processing stays float


def quantise_static(source: Path, target: Path, feeds: list[dict]) -> None:
    """Static int8 quantisation of a model's network (QDQ, per-channel weights, activation ranges from
    `feeds`): the layers in QUANTISED_OPS inside NETWORK_SCOPE. The rest stays in float: the OCR's LSTM and
    classifier, the detector's peak picking and box decoding (its last Concat holds scores in [0, 1] beside
    pixel coordinates: one int8 scale for both read every score as 0). Static, because dynamic quantisation
    quantises each convolution's input at run time and read no faster than fp32 (figures in
    models/cards/plate_detector.md)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        network = [node.name for node in onnx.load(str(prepared)).graph.node
                   if node.name.startswith(NETWORK_SCOPE)]
        quantize_static(str(prepared), str(target), Feeds(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=QUANTISED_OPS, nodes_to_quantize=network, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    print(f"quantised {target} ({target.stat().st_size / 1e6:.2f} MB, static int8)", flush=True)


def quantise_both(out_dir: Path) -> None:
    """The int8 files of both models from the fp32 files in `out_dir` (the same calibration frames), and
    the OCR's YAML."""
    write_ocr_companions(out_dir)
    quantise_static(out_dir / "plate_detector.onnx", out_dir / "plate_detector.int8.onnx",
                    detector_calibration(calibration_frames()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the parkgate plate models (CPU, fixed seed).")
    parser.add_argument("--all", action="store_true", help="train OCR and detector")
    parser.add_argument("--ocr", action="store_true")
    parser.add_argument("--detector", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ocr-steps", type=int, default=3000)
    parser.add_argument("--ocr-pool", type=int, default=16000)
    parser.add_argument("--self-train-steps", type=int, default=1000, help="OCR self-training on EU crops")
    parser.add_argument("--self-train-rounds", type=int, default=1, help="pseudo-label, then train; repeated")
    parser.add_argument(
        "--ocr-base", type=Path, help="resume OCR training at self-training from this base state dict"
    )
    parser.add_argument("--ocr-lane", action="store_true",
                        help="only the lane stage: fine-tune the OCR in --ocr-init on lane cuts")
    parser.add_argument("--ocr-init", type=Path, help="OCR the lane stage starts from (default: --out)")
    parser.add_argument("--lane-steps", type=int, default=1200, help="OCR lane-stage steps (0: none)")
    parser.add_argument("--lane-cuts", type=int, default=8000, help="lane cuts made for the lane stage")
    parser.add_argument("--lane-rounds", type=int, default=4,
                        help="lane-stage rounds: round r (from 1) makes its cuts with seed + r - 1 and "
                             "starts from the OCR the round before wrote")
    parser.add_argument("--from-round", type=int, default=1,
                        help="first lane round to run (the round before it is in --ocr-init or --out)")
    parser.add_argument("--detector-steps", type=int, default=3000)
    parser.add_argument("--quantise", action="store_true",
                        help="(again) write both .int8.onnx files from the fp32 models in --out")
    parser.add_argument("--ocr-pooled", action="store_true",
                        help="the OCR in one stage from pooled data (a GPU run: --device cuda); from "
                             "--ocr-init when given, else from scratch; --pooled-steps 0: the pools only")
    parser.add_argument("--device", default="cpu", help="torch device of --ocr-pooled (cpu, cuda)")
    parser.add_argument("--pooled-steps", type=int, default=20000)
    parser.add_argument("--pooled-synthetic", type=int, default=48000, help="synthetic crops in the pool")
    parser.add_argument("--pooled-lane", type=int, default=40000, help="lane cuts in the pool")
    parser.add_argument("--pooled-real", type=int, default=48000, help="augmented real crops in the pool")
    parser.add_argument("--lane-synthetic", action="store_true",
                        help="the pooled lane cuts place rendered plates too, beside the real ones")
    parser.add_argument("--pseudo-ocr", type=Path, help="OCR that pseudo-labels the unlabelled EU crops")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-lr", type=float, default=3e-3)
    parser.add_argument("--freeze-norm", action="store_true", help="keep batch norm statistics (fine-tuning)")
    parser.add_argument("--deadline", type=float, default=float("inf"), help="seconds; stop training after")
    parser.add_argument("--quantise-ocr", action="store_true",
                        help="(again) write the int8 OCR and its YAML from --out's plate_ocr.onnx")
    parser.add_argument("--ocr-soup", type=Path, nargs="+", metavar="ONNX",
                        help="write into --out the average of these OCR files (fine-tunes of one model)")
    parser.add_argument("--detector-scenes", type=int, default=2400)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model")
    parser.add_argument("--workers", type=int, default=2, help="processes generating data")
    parser.add_argument("--out", type=Path, default=models.WEIGHTS_DIR)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.all or args.ocr:
        train_ocr(
            args.seed,
            args.ocr_steps,
            args.ocr_pool,
            args.workers,
            args.out,
            args.self_train_steps,
            args.self_train_rounds,
            args.ocr_base,
        )
    if (args.all or args.ocr or args.ocr_lane) and args.lane_steps > 0:
        for index, (seed, us_looks) in enumerate(lane_rounds(args.seed, args.from_round, args.lane_rounds)):
            init = args.ocr_init if index == 0 and args.ocr_init else args.out / "plate_ocr.onnx"
            train_ocr_lane(seed, args.lane_steps, args.lane_cuts, args.workers, args.out, init, us_looks)
    if args.all or args.detector:
        train_detector(args.seed, args.detector_steps, args.detector_scenes, args.workers, args.out)
    if args.ocr_pooled:
        train_ocr_pooled(args)
    if args.quantise:
        quantise_both(args.out)
    if args.quantise_ocr:
        write_ocr_companions(args.out)
    if args.ocr_soup:
        soup_ocr(args.ocr_soup, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
