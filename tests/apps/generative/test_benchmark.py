"""benchmarks/gan_quality.py on tiny settings (slow: a real, if tiny, run)."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.mark.slow
def test_gan_quality_benchmark_writes_json(classifier_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_CLASSICS_CACHE", str(classifier_cache))
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("gan_quality", None)
    import gan_quality

    output = tmp_path / "gan_quality.json"
    result = gan_quality.main(
        [
            "--epochs=2",
            "--steps-per-epoch=2",
            "--batch-size=8",
            "--quality-samples=50",
            "--option=--width=8",
            "--option=--latent-dim=8",
            f"--output={output}",
        ]
    )
    written = json.loads(output.read_text())
    assert written["benchmark"] == result["benchmark"] == "gan_quality"
    assert written["command"].startswith("python benchmarks/gan_quality.py")
    for key in ("versions", "machine", "load_average", "git", "real_vs_real_fid"):
        assert key in written, key
    assert [row["epoch"] for row in written["epochs"]] == [1, 2]
    assert all(row["fid"] >= 0 and row["train_seconds"] for row in written["epochs"])
