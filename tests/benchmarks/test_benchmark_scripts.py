"""benchmarks/: the harness, the PyTorch peers, the loop equivalence, and every
script's `main` on tiny settings (those start worker processes: slow)."""

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _harness  # noqa: E402


def test_parse_variant():
    assert _harness.parse_variant("baseline") == {}
    assert _harness.parse_variant("intra=2,inter=1,jit,determinism=0") == {
        "intra": 2,
        "inter": 1,
        "jit": True,
        "determinism": False,
    }
    assert _harness.variant_label({"spe": 8, "jit": True}) == "spe=8,jit"
    assert _harness.variant_label({"determinism": False}) == "determinism=0"


@pytest.mark.parametrize("text", ["threads=2", "spe", "intra=two"])
def test_bad_variant_is_a_clear_error(text):
    with pytest.raises(ValueError):
        _harness.parse_variant(text)


def test_summarise_pairs_rounds():
    times = {"ours": [1.0, 2.0, 1.0], "theirs": [2.0, 4.0, 1.0]}
    summary = _harness.summarise(times, 10, reference="theirs")
    assert summary["ours"]["ratio_to_reference"] == 2.0  # median of 2, 2, 1
    assert summary["ours"]["ratio_to_reference_best_rounds"] == 1.0
    assert summary["theirs"]["images_per_second_median"] == 5.0


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_torch_peer_has_our_parameter_counts(name):
    torch = pytest.importorskip("torch")
    import _sides

    import apps

    model = apps.build(
        name, input_shape=(28, 28, 1), classes=10, **_sides.model_options(name)
    )
    builder = {"lenet5": _sides.torch_lenet5, "resnet18": _sides.torch_resnet18}
    net = builder[name](torch.nn)
    trainable = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for b in net.buffers() if b.dtype.is_floating_point)
    ours = sum(int(w.numpy().size) for w in model.trainable_weights)
    assert trainable == ours
    assert trainable + buffers == model.count_params()
    outputs = net(torch.zeros(2, 1, 28, 28))
    assert tuple(outputs.shape) == (2, 10)


@pytest.mark.slow  # in-process twin: tests/apps/test_loop.py (synthetic data)
def test_grouped_steps_train_exactly_like_single_steps(fashion_mnist):
    import _sides

    check = _sides.LoopEquivalence({}, batch_size=32, steps_per_execution=4).check(
        2, 6, 5
    )
    assert check["weights_identical"]
    assert check["history_one_step_per_call"] == check["history_grouped"]
    counted = check["throughput_steps_counted"]
    assert counted["one_per_call"] == counted["grouped"] == [6, 6]


SCRIPTS = {
    "torch_peer": [
        "--models=lenet5",
        "--batch-size=16",
        "--steps=2",
        "--warmup=2",
        "--rounds=1",
        "--also-variant=spe=2",
        "--torch-reference-threads=0",
    ],
    "tf_cpu_settings": [
        "--baseline=batch=16",
        "--variants=spe=2",
        "--steps=2",
        "--rounds=1",
    ],
    "loop_equivalence": [
        "--batch-size=16",
        "--epochs=1",
        "--steps-per-epoch=4",
        "--checkpoint-every=3",
        "--steps-per-execution=2",
        "--devices=1",
    ],
    "applications_parity": [
        "--models=resnet50",
        "--input-size=32",
        "--batch-size=2",
        "--steps=1",
        "--rounds=1",
    ],
    "time_to_accuracy": [
        "--epochs=1",
        "--target=0.1",
        "--option=--steps-per-epoch=3",
        "--option=--eval-steps=1",
        "--variants=baseline;spe=3",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_runs_and_writes_json(script, fashion_mnist, tmp_path):
    if script == "torch_peer":
        pytest.importorskip("torch")
    import importlib

    module = importlib.import_module(script)
    output = tmp_path / f"{script}.json"
    result = module.main([*SCRIPTS[script], f"--output={output}"])
    written = json.loads(output.read_text())
    assert written["benchmark"].startswith(script)
    assert written["command"].startswith(f"python benchmarks/{script}.py")
    for key in ("versions", "machine", "load_average", "git"):
        assert key in written
    assert result["benchmark"] == written["benchmark"]


def _fake_zoo(monkeypatch, wall_seconds):
    """zoo.py with its training and model loading replaced: the bookkeeping only."""
    import zoo

    import apps

    commands = []

    def train(command, run_dir):
        commands.append(command)
        seed = int(run_dir.name.removeprefix("seed"))
        return {
            "test_accuracy": 0.80 + seed / 100,
            "test_top5": 0.99,
            "images_per_second": 100.0,
            "wall_seconds": wall_seconds,
            "epochs": int(command[command.index("--epochs") + 1]),
        }

    def load(run_dir):
        return apps.build("lenet5", classes=10), "32x32"

    monkeypatch.setattr(zoo, "_train", train)
    monkeypatch.setattr(zoo, "_load", load)
    return zoo, commands


def test_zoo_writes_a_row_per_model_and_resumes(tmp_path, monkeypatch, capsys):
    zoo, commands = _fake_zoo(monkeypatch, wall_seconds=5.0)
    results = tmp_path / "zoo"
    argv = ["--models", "lenet5", "--results", str(results)]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--inference-seconds", "0.01"]
    assert zoo.main(argv) == 0
    (row,) = json.loads(results.with_suffix(".json").read_text())["rows"]
    assert row["seeds"] == 3 and len(commands) == 3  # cheap: three seeds
    assert row["top1_mean"] == pytest.approx(0.81)
    assert row["top1_std"] == pytest.approx(0.0081650, rel=1e-4)
    assert row["macs"] == 416_520 and row["epochs"] == 20
    assert row["inference_images_per_second"] > 0 and not row["over_cpu_budget"]
    assert "--seed 2" in " ".join(commands[2])
    header = results.with_suffix(".csv").read_text().splitlines()[0]
    assert header.split(",") == list(zoo.COLUMNS)
    assert zoo.main(argv) == 0 and len(commands) == 3  # resumed: nothing re-run
    assert "lenet5: already measured" in capsys.readouterr().out
    assert zoo.main(["--markdown", "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert "| `lenet5` | cpu, 20 ep | 81.00% ± 0.82% (3 seeds)" in table


def test_zoo_cpu_budget_cuts_an_expensive_model_to_one_seed(tmp_path, monkeypatch):
    zoo, commands = _fake_zoo(monkeypatch, wall_seconds=3000.0)
    argv = ["--models", "resnet18", "--results", str(tmp_path / "zoo")]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--inference-seconds", "0.01"]
    assert zoo.main(argv) == 0
    (row,) = json.loads((tmp_path / "zoo.json").read_text())["rows"]
    assert row["seeds"] == 1 and row["over_cpu_budget"]
    assert commands[0][-4:] == ["--epochs", "2", "--steps-per-epoch", "200"]


def test_zoo_names_the_registered_models_for_an_unknown_one(capsys):
    import zoo

    assert zoo.main(["--models", "resnet19"]) == 2
    error = capsys.readouterr().err
    assert "unknown model(s) ['resnet19']" in error and "resnet18" in error
