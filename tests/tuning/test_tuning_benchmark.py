"""benchmarks/tuning_search.py on tiny settings: it runs both sides and writes JSON."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_the_benchmark_compares_search_and_default(fashion_mnist, tmp_path, capsys):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import tuning_search
    finally:
        sys.path.remove(str(BENCHMARKS))
    output = tmp_path / "tuning_search.json"
    argv = ["--trials", "2", "--epochs", "1", "--steps-per-epoch", "2"]
    argv += ["--batch-size", "16", "--eval-steps", "1"]
    argv += ["--workdir", str(tmp_path / "runs")]
    assert tuning_search.main([*argv, "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["benchmark"] == "tuning_search"
    assert result["search"]["trials"] == 2
    for side in ("default", "search"):
        assert 0.0 <= result[side]["val_accuracy"] <= 1.0
        assert 0.0 <= result[side]["test_accuracy"] <= 1.0
        assert result[side]["seconds"] > 0
    assert "val acc" in capsys.readouterr().out
