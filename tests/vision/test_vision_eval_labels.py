import json

import cv2
import numpy as np
import pytest

from edge.vision import evaluate


def test_openalpr_line_parses_tabs_and_normalises():
    sample = evaluate.parse_openalpr_line("eu1.jpg\t396\t340\t203\t46\tm5-xsx\n", evaluate.Path("/d"))
    assert sample.image.name == "eu1.jpg" and sample.plate == "M5XSX" and sample.box == (396, 340, 203, 46)


@pytest.mark.parametrize("line", ["eu1.jpg 1 2 3", "eu1.jpg\ta\tb\tc\td\tXY"])
def test_bad_label_lines_are_named(line):
    with pytest.raises(ValueError, match="label"):
        evaluate.parse_openalpr_line(line, evaluate.Path("."))


def test_load_samples_from_txt_and_csv(tmp_path):
    (tmp_path / "a.txt").write_text("a.jpg\t1\t2\t3\t4\tAB12\n")
    (tmp_path / "b.txt").write_text("b.jpg\t1\t2\t3\t4\tCD-34\n")
    assert [s.plate for s in evaluate.load_samples(tmp_path)] == ["AB12", "CD34"]
    (tmp_path / "groundtruth.csv").write_text("x.png,ca,7ABC123\ny.png,ny,ABC 1234\n")
    assert [(s.image.name, s.plate) for s in evaluate.load_samples(tmp_path)] == [
        ("x.png", "7ABC123"),
        ("y.png", "ABC1234"),
    ]
    with pytest.raises(ValueError, match="no labels"):
        evaluate.load_samples(tmp_path / "missing")


def test_summary_counts_exact_and_folded_separately():
    figures = evaluate.summarise([("AB0", "AB0", 10.0), ("AB0", "ABO", 20.0), ("CD1", "CDX", 30.0)])
    assert figures["n"] == 3 and figures["exact"] == 1 and figures["folded"] == 2
    assert figures["exact_rate"] == pytest.approx(0.3333) and figures["median_ms"] == 20.0
    assert json.loads(json.dumps(figures)) == figures


def test_evaluate_runs_reader_over_images(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    samples = [evaluate.Sample(tmp_path / "a.png", "AB1")]
    misses = []
    figures = evaluate.evaluate(samples, lambda image: "AB2", lambda s, t: misses.append(t))
    assert figures["exact"] == 0 and misses == ["AB2"]
    with pytest.raises(ValueError, match="none.png: no such image file"):
        evaluate.evaluate([evaluate.Sample(tmp_path / "none.png", "X")], lambda image: "X")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png: cannot read image"):
        evaluate.evaluate([evaluate.Sample(tmp_path / "bad.png", "X")], lambda image: "X")


def test_installed_script_finds_the_training_splits_of_its_checkout(tmp_path):
    """`parkgate lpr eval --split` run as the README says (the venv's console script, from any folder) finds
    the checkout's training splits (models/data.py, not installed) instead of refusing."""
    import csv
    import json
    import subprocess
    import sys
    from pathlib import Path

    from edge.vision import synth
    from models import data

    folder = tmp_path / "crops"
    folder.mkdir()
    names = [f"plate{i}.png" for i in range(6)]
    with open(folder / "groundtruth.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "state", "plate"])
        for index, name in enumerate(names):
            plate = synth.render_plate(f"ABC12{index}", "us", np.random.default_rng(index))
            cv2.imwrite(str(folder / name), plate)
            writer.writerow([name, "ca", f"ABC12{index}"])
    script = Path(sys.executable).parent / "parkgate"
    done = subprocess.run([str(script), "lpr", "eval", str(folder), "--ocr-only", "--split", "holdout"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    held_out = sum(data.us_split(name) == "holdout" for name in names)
    assert json.loads(done.stdout.splitlines()[-1])["n"] == held_out
