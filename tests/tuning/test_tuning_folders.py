"""python -m tuning search on an image folder: the classify split, bad files."""

import io
import json

import numpy as np
from PIL import Image

from tuning.__main__ import main


def _bug_folder(root, per_class=10):
    rng = np.random.default_rng(0)
    for name in ("ant", "bee", "cat"):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 255, (8, 8), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def _search(root, output):
    argv = ["search", "--model", "mlp", "--dataset", str(root), "--max-trials", "1"]
    tiny = ["--epochs", "1", "--steps-per-epoch", "1", "--seed", "0"]
    return main([*argv, *tiny, "--output", str(output)])


def test_a_search_on_a_folder_uses_and_saves_the_stratified_split(tmp_path, capsys):
    root = _bug_folder(tmp_path / "bugs")
    assert _search(root, tmp_path / "search") == 0
    captured = capsys.readouterr()
    # 10 per class: 2 test, 1 validation, 7 train; 21 < 128 images per batch.
    assert "train 21, validation 3, test 6" in captured.out
    assert "every trial trains with batches of 21" in captured.err
    split = json.loads((tmp_path / "search" / "split.json").read_text())
    assert split["class_counts"]["validation"] == [1, 1, 1]


def test_a_truncated_jpeg_stops_the_search_before_anything_is_written(tmp_path, capsys):
    root = _bug_folder(tmp_path / "bugs", per_class=3)
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    (root / "ant" / "cut.jpg").write_bytes(buffer.getvalue()[:900])
    output = tmp_path / "search"
    assert _search(root, output) == 1
    captured = capsys.readouterr()
    assert "cut.jpg (image file is truncated" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not output.exists() or not any(output.iterdir())
