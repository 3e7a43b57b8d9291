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
    assert "| `lenet5` | cpu, 20 ep | 81.00% ± 0.82% (3 seeds) | ≥ 88% **not" in table
    assert "full: `python benchmarks/zoo.py --budget full --models lenet5`" in table


def test_zoo_cpu_budget_cuts_an_expensive_model_to_one_seed(tmp_path, monkeypatch):
    zoo, commands = _fake_zoo(monkeypatch, wall_seconds=3000.0)
    argv = ["--models", "resnet18", "--results", str(tmp_path / "zoo")]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--inference-seconds", "0.01"]
    assert zoo.main(argv) == 0
    (row,) = json.loads((tmp_path / "zoo.json").read_text())["rows"]
    assert row["seeds"] == 1 and row["over_cpu_budget"]
    import apps

    budget = apps.get_model_info("resnet18").recipe.cpu_budget
    expected = ["--epochs", str(budget["epochs"])]
    steps = ["--steps-per-epoch", str(budget["steps_per_epoch"])]
    assert commands[0][-4:] == [*expected, *steps]
    # The cut trains with the augmentation its budget names.
    assert commands[0][-6:-4] == ["--augment", budget["augment"]]
    assert "--validation-split" not in commands[0]  # the default share held out


def test_zoo_cpu_budget_may_train_on_the_whole_training_split(tmp_path, monkeypatch):
    zoo, commands = _fake_zoo(monkeypatch, wall_seconds=3000.0)
    argv = ["--models", "googlenet", "--results", str(tmp_path / "zoo")]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--inference-seconds", "0.01"]
    assert zoo.main(argv) == 0
    share = commands[0].index("--validation-split")
    assert commands[0][share + 1] == "0.0"


def test_zoo_names_the_registered_models_for_an_unknown_one(capsys):
    import zoo

    assert zoo.main(["--models", "resnet19"]) == 2
    error = capsys.readouterr().err
    assert "unknown model(s) ['resnet19']" in error and "resnet18" in error


# gan_quality.py and tuning_search.py call the task modules, never a command's main
# (their real, tiny runs: tests/apps/generative/test_benchmark.py and
# tests/tuning/test_tuning_benchmark.py, slow).


def test_gan_quality_options_map_onto_the_config_and_the_training_options():
    import gan_quality

    items = ["--attention", "--width=8", "latent-dim=8", "--loss=lsgan"]
    items += ["model_option=use_maxout=False", "--learning-rate=1e-3", "jit"]
    items += ["label_smoothing=0.1"]  # the GAN's one-sided one, as the command's
    config, options, flags = gan_quality.extra_settings(items)
    assert config == {
        "attention": True,
        "width": 8,
        "latent_dim": 8,
        "loss": "lsgan",
        "model_options": {"use_maxout": False},
        "label_smoothing": 0.1,
    }
    assert options == {"learning_rate": 1e-3, "jit": True}
    assert flags[:5] == ["--attention", "--width", "8", "--latent-dim", "8"]
    assert flags[7:9] == ["--model-option", "use_maxout=False"]


def test_gan_quality_records_flags_the_command_parses():
    """The JSON's training_command must rerun: switches alone, pairs as two words."""
    import gan_quality

    from apps import generate

    items = ["attention=True", "image_size=32,32", "jit=False", "width=8"]
    _, options, flags = gan_quality.extra_settings(items)
    assert options == {"jit": False}
    argv = ["train", "--model", "dcgan", "--dataset", "fashion_mnist", "--output", "x"]
    args = generate.build_parser().parse_args([*argv, *flags])
    assert args.attention is True and not args.jit
    assert args.image_size == [32, 32] and args.width == 8


@pytest.mark.parametrize(
    "item, message",
    [
        ("--epochs=3", "use --epochs"),
        ("dataset=mnist", "measures fashion_mnist"),
        ("--warmup-epochs=1", "not a GenerationConfig field"),
        ("=3", "takes FIELD=VALUE or FIELD"),
    ],
)
def test_gan_quality_refuses_an_option_before_anything_runs(item, message, capsys):
    import gan_quality

    with pytest.raises(SystemExit) as stopped:
        gan_quality.main([f"--option={item}"])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_gan_quality_trains_through_the_generation_task(tmp_path, monkeypatch):
    import gan_quality

    from apps import cli
    from apps.tasks import generation

    calls = []
    monkeypatch.setattr(
        generation, "train", lambda *args, **kwargs: calls.append((args, kwargs))
    )
    args = gan_quality.build_parser().parse_args(["--steps-per-epoch=0", "--seed=3"])
    job = (args, {"width": 8}, {"optimizer": "sgd"}, tmp_path)
    assert cli.run_command(gan_quality._train, job) == 0
    ((config, options, run_dir), kwargs) = calls[0]
    assert (config.model, config.dataset, config.width) == ("dcgan", "fashion_mnist", 8)
    assert (config.d_steps, config.quality_samples) == (1, 2000)
    assert options.steps_per_epoch is None  # 0: full passes
    assert (options.epochs, options.batch_size, options.seed) == (5, 64, 3)
    assert options.lr_schedule == "constant"  # the GAN's default, not TrainOptions'
    assert options.learning_rate is None  # sgd: its usual rate, not DCGAN's 2e-4
    assert run_dir == tmp_path and kwargs == {"overwrite": True}
    bad = (args, {"beta_1": 1.5}, {}, tmp_path)
    assert cli.run_command(gan_quality._train, bad) == 2  # as the command's exit


def _fake_tuning_search(monkeypatch, outcome):
    """tuning_search.py with the default run and the search replaced."""
    import tuning_search

    from tuning import search as search_lib

    configs = []

    def prepare(config):
        configs.append(config)
        if outcome is None:
            raise search_lib.ConfigurationError("the tuner refused the project")
        return config

    monkeypatch.setattr(tuning_search, "_train_default", lambda job: 0)
    monkeypatch.setattr(search_lib, "prepare", prepare)
    monkeypatch.setattr(search_lib, "run", lambda prepared: outcome)
    monkeypatch.setattr(search_lib, "summary_text", lambda directory, rows: "table")
    return tuning_search, configs


def test_tuning_search_runs_the_library_search_on_the_default_budget(
    tmp_path, monkeypatch, capsys
):
    tuning_search, configs = _fake_tuning_search(monkeypatch, outcome=None)
    argv = ["--trials=3", "--epochs=1", "--steps-per-epoch=2", "--eval-steps=1"]
    assert tuning_search.main([*argv, f"--workdir={tmp_path}"]) == 1
    assert "error: the tuner refused the project" in capsys.readouterr().err
    (config,) = configs
    assert (config.model, config.tuner, config.max_trials) == ("lenet5", "random", 3)
    assert config.output == tmp_path / "search" and config.eval_steps == 1
    options = config.options
    assert (options.epochs, options.steps_per_epoch, options.batch_size) == (1, 2, 64)
    assert options.seed == 0
    assert config.arguments["command"].startswith(
        "python -m tuning search --model lenet5 --tuner random --max-trials 3"
    )


def test_tuning_search_says_why_a_search_stopped(tmp_path, monkeypatch, capsys):
    from tuning import search as search_lib

    stopped = search_lib.Outcome([], None, "3 trials failed in a row.")
    tuning_search, _ = _fake_tuning_search(monkeypatch, outcome=stopped)
    assert tuning_search.main([f"--workdir={tmp_path}"]) == 1
    captured = capsys.readouterr()
    assert "table" in captured.out
    assert "search stopped: 3 trials failed in a row." in captured.err


# These two return the exit code (1: the target was not met, as on tiny settings).
EXIT_CODE_SCRIPTS = {
    "lstm_fashion_mnist": [
        "--epochs=1",
        "--option=steps_per_epoch=2",
        "--option=eval_steps=1",
    ],
    "translate_accuracy": [
        "--option=--epochs=1",
        "--option=--steps-per-epoch=2",
        "--option=--validation-examples=32",
        "--option=--test-examples=32",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXIT_CODE_SCRIPTS))
def test_target_script_records_its_command_and_says_the_target_was_missed(
    script, fashion_mnist, tmp_path, capsys
):
    import importlib

    module = importlib.import_module(script)
    output = tmp_path / f"{script}.json"
    argv = [*EXIT_CODE_SCRIPTS[script], f"--output={output}"]
    assert module.main(argv) == 1
    written = json.loads(output.read_text())
    assert written["benchmark"] == script
    assert written["command"] == f"python benchmarks/{script}.py " + " ".join(argv)
    for key in ("versions", "machine", "load_average", "git", "wall_seconds"):
        assert key in written, key
    assert written["target"]["met"] is False
    assert "NOT met" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["lstm_fashion_mnist", "time_to_accuracy"])
@pytest.mark.parametrize("item", ["bogus", "--=3"])
def test_malformed_option_is_refused_before_anything_runs(
    script, item, tmp_path, capsys
):
    import importlib

    module = importlib.import_module(script)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        module.main([f"--option={item}", f"--run-dir={run_dir}"])
    assert stopped.value.code == 2
    assert (
        f"--option takes FIELD=VALUE, e.g. --option=batch_size=64. Received: {item!r}"
        in (capsys.readouterr().err)
    )
    assert not run_dir.exists()
