"""Evaluation of a plate reader on a labelled folder (OpenALPR benchmark layout or groundtruth.csv).

Label layouts:
- one ``.txt`` per image, tab-separated ``filename x y w h PLATE`` (OpenALPR benchmarks);
- a ``groundtruth.csv`` with rows ``file,state,plate`` (or a header ``file,...,plate``).
`exact` compares the best read with the label after `plates.normalise` (no look-alike folding);
`folded` also folds O->0 and I->1.
"""

from __future__ import annotations

import csv
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.vision import plates
from edge.vision.sources import load_image


@dataclass(frozen=True)
class Sample:
    """One labelled image: path, plate text and (for full frames) the plate box x, y, w, h."""

    image: Path
    plate: str
    box: tuple[int, int, int, int] | None = None


def parse_openalpr_line(line: str, folder: Path) -> Sample:
    """`filename x y w h PLATE` (tabs, or any whitespace) -> Sample; errors name the bad line."""
    parts = line.strip().split("\t") if "\t" in line else line.split()
    if len(parts) < 6:
        raise ValueError(f"label line must be 'filename x y w h PLATE', got {line.strip()!r}")
    try:
        box = tuple(int(float(v)) for v in parts[1:5])
    except ValueError:
        raise ValueError(f"label box must be four numbers, got {parts[1:5]!r} in {line.strip()!r}") from None
    return Sample(folder / parts[0], plates.normalise(parts[5]), box)  # type: ignore[arg-type]


def load_samples(folder: Path, labels: Path | None = None) -> list[Sample]:
    """Samples from `labels` (a .csv) or from the folder's groundtruth.csv or per-image .txt files."""
    csv_path = labels or folder / "groundtruth.csv"
    if csv_path.is_file():
        return _samples_from_csv(folder, csv_path)
    samples = []
    for txt in sorted(folder.glob("*.txt")):
        first = next((ln for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()), "")
        if first:
            samples.append(parse_openalpr_line(first, folder))
    if not samples:
        raise ValueError(f"no labels in {folder}: expected groundtruth.csv or one .txt per image")
    return samples


def _samples_from_csv(folder: Path, csv_path: Path) -> list[Sample]:
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and rows[0][0].lower() in ("file", "filename", "image"):
        rows = rows[1:]
    return [Sample(folder / row[0], plates.normalise(row[-1])) for row in rows if len(row) >= 2]


def read_counts(pairs: Iterable[tuple[str, str]]) -> dict:
    """(label, read) pairs -> {exact, exact_rate, folded, folded_rate}: `folded` also counts reads that
    differ from the label in O/0 and I/1 only (`plates.fold_lookalikes`; some real labels write O for 0)."""
    rows = list(pairs)
    n = len(rows)
    exact = sum(1 for label, read in rows if read == label)
    folded = sum(1 for label, read in rows if plates.fold_lookalikes(read) == plates.fold_lookalikes(label))
    return {
        "exact": exact,
        "exact_rate": round(exact / n, 4) if n else 0.0,
        "folded": folded,
        "folded_rate": round(folded / n, 4) if n else 0.0,
    }


def summarise(results: Iterable[tuple[str, str, float]]) -> dict:
    """(label, read, milliseconds) triples -> the eval JSON figures."""
    rows = list(results)
    times = np.array([ms for _, _, ms in rows], dtype=np.float64) if rows else np.zeros(1)
    return {
        "n": len(rows),
        **read_counts((label, read) for label, read, _ in rows),
        "median_ms": round(float(np.median(times)), 2),
        "p90_ms": round(float(np.percentile(times, 90)), 2),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def evaluate(
    samples: list[Sample],
    read: Callable[[np.ndarray], str],
    on_miss: Callable[[Sample, str], None] | None = None,
) -> dict:
    """Run `read` (image -> best plate text, '' for none) on each sample, timing only the read."""
    results = []
    for sample in samples:
        image = load_image(sample.image)  # SourceError (a ValueError) naming a file too big or unreadable
        started = time.perf_counter()
        text = read(image)
        results.append((sample.plate, text, (time.perf_counter() - started) * 1000))
        if on_miss and text != sample.plate:
            on_miss(sample, text)
    return summarise(results)
