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
    with pytest.raises(ValueError, match="cannot read image"):
        evaluate.evaluate([evaluate.Sample(tmp_path / "none.png", "X")], lambda image: "X")
