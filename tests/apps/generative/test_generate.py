"""python -m apps.generate: tiny real runs on Fashion-MNIST, exact resume, sample,
export, errors."""

import hashlib
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tiny import finished_run

from apps import cli, generate, training
from apps.generative import callbacks, quality
from apps.tasks import generation

TINY = [
    "--dataset",
    "fashion_mnist",
    "--steps-per-epoch",
    "2",
    "--batch-size",
    "8",
    "--latent-dim",
    "8",
    "--seed",
    "0",
    "--samples",
    "4",
]
DCGAN = ["--model", "dcgan", "--width", "8", *TINY]


def _train(output, *extra, model=DCGAN):
    return generate.main(["train", *model, "--output", str(output), *extra])


@pytest.fixture(scope="module")
def trained_run(fashion_mnist, classifier_cache, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dcgan")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_CLASSICS_CACHE", str(classifier_cache))
        code = _train(
            run_dir, "--epochs", "2", "--d-steps", "2", "--quality-samples", "200"
        )
    assert code == 0
    return run_dir


def test_train_writes_the_run_directory(trained_run):
    metrics = finished_run(
        trained_run,
        "model.keras best.keras metrics.json history.csv quality.json run.json "
        "samples/epoch_001.png samples/epoch_002.png",
        "d_loss g_loss d_real d_fake fid inception_score class_coverage "
        "class_entropy class_shares best_fid seconds_per_epoch images_per_second "
        "arguments versions",
    )
    assert metrics["epochs"] == 2 and metrics["d_steps"] == 2
    assert metrics["images_per_step"] == 16
    assert metrics["fid"] >= 0 and 1.0 <= metrics["inception_score"] <= 10.0
    assert len(metrics["class_shares"]) == 10
    assert sum(metrics["class_shares"]) == pytest.approx(1.0)
    assert [row["epoch"] for row in metrics["per_epoch"]] == [1, 2]
    assert all("fid" in row and "g_loss" in row for row in metrics["per_epoch"])
    grid = Image.open(trained_run / "samples" / "epoch_002.png")
    # 4 samples, 2x2, each 28x28 enlarged 3 times (at least 64 pixels), 2-pixel gaps
    assert grid.size == (2 * 86 - 2, 2 * 86 - 2)


def test_finished_run_is_not_overwritten(trained_run, capsys):
    before = (trained_run / "metrics.json").read_text()
    assert _train(trained_run, "--epochs", "2") == 0
    assert "holds a finished run" in capsys.readouterr().out
    assert (trained_run / "metrics.json").read_text() == before


def test_sample_writes_a_grid(trained_run, tmp_path, capsys):
    output = tmp_path / "grid.png"
    code = generate.main(
        [
            "sample",
            "--model-path",
            str(trained_run / "model.keras"),
            "--n",
            "6",
            "--columns",
            "3",
            "--output",
            str(output),
        ]
    )
    assert code == 0 and "wrote 6 images" in capsys.readouterr().out
    assert Image.open(output).size == (3 * 86 - 2, 2 * 86 - 2)
    code = generate.main(
        [
            "sample",
            "--model-path",
            str(trained_run / "model.keras"),
            "--class",
            "3",
            "--output",
            str(output),
        ]
    )
    assert code == 2 and "only for conditional" in capsys.readouterr().err


def test_export_serves_uint8_images(trained_run, tmp_path):
    code = generate.main(
        [
            "export",
            "--model-path",
            str(trained_run / "model.keras"),
            "--name",
            "dcgan",
            "--export-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    loaded = tf.saved_model.load(str(tmp_path / "dcgan" / "1"))
    latent = tf.random.normal((3, 8), seed=0)
    images = loaded.signatures["serving_default"](latent=latent)["images"]
    assert images.dtype == tf.uint8 and images.shape == (3, 28, 28, 1)
    drawn = loaded.signatures["sample"](
        num_images=tf.constant(2), seed=tf.constant(5, tf.int64)
    )["images"]
    assert drawn.shape == (2, 28, 28, 1)
    again = loaded.signatures["sample"](
        num_images=tf.constant(2), seed=tf.constant(5, tf.int64)
    )["images"]
    np.testing.assert_array_equal(drawn, again)
    assert (tmp_path / "dcgan" / "1" / "assets.extra" / "generator.json").is_file()


def _digest(model_path):
    gan = generation.load_gan(model_path)
    digest = hashlib.sha256()
    for variable in (
        *gan.weights,
        *gan.d_optimizer.variables,
        *gan.g_optimizer.variables,
    ):
        digest.update(np.asarray(variable).tobytes())
    return digest.hexdigest()


class _Killed(Exception):
    pass


# Slow (three GAN trainings, ~45 s of a worker): the quick suite keeps the loop's
# exact resumption (test_loop) and the GAN's saved optimisers and objective
# (test_gan's save-and-load test).
@pytest.mark.slow
def test_killed_run_resumes_bitwise(fashion_mnist, tmp_path, monkeypatch):
    """N steps straight == N/2 steps, a "kill" mid-epoch, new objects, N/2 more."""
    common = [
        "--epochs",
        "2",
        "--d-steps",
        "2",
        "--quality-samples",
        "0",
        "--checkpoint-every",
        "1",
    ]
    assert _train(tmp_path / "straight", *common) == 0

    def kill_in_epoch_two(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations) == 3:  # epoch 2, its 2nd step
            raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(callbacks.SampleGrid, "on_train_batch_begin", kill_in_epoch_two)
        with pytest.raises(_Killed):
            _train(tmp_path / "killed", *common)
    assert (tmp_path / "killed" / "state").is_dir()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    assert _train(tmp_path / "killed", *common) == 0  # resumes: new objects
    assert _digest(tmp_path / "killed" / "model.keras") == _digest(
        tmp_path / "straight" / "model.keras"
    )
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert resumed["per_epoch"] == straight["per_epoch"]


def _tiny_classifier(directory):
    """A quality classifier run directory made in a second (the cached LeNet-5
    takes a training run): model.keras with preprocessing.json beside it."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(6, activation="tanh", name="features")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    directory.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, outputs).save(directory / "model.keras")
    spec = {"input_shape": [28, 28, 1], "normalization": "unit"}
    (directory / "preprocessing.json").write_text(json.dumps(spec))
    return directory / "model.keras"


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _ScriptedEvaluator:
    """Stands in for a QualityEvaluator: the FID of `epoch` from a script."""

    def __init__(self, fids):
        self.fids = fids
        self.epoch = None

    def evaluate(self, gan):
        return {
            "fid": self.fids[self.epoch],
            "inception_score": 2.0,
            "class_coverage": 1.0,
            "class_entropy": 1.0,
            "max_class_share": 0.1,
            "class_shares": [0.1] * 10,
        }


def _quality_session(run_dir, gan, evaluator, *, start, stop, epochs=4, every=2):
    """Epochs `start` to `stop - 1` of an `epochs`-epoch run, one session, through
    QualityMonitor and the training core's callbacks in `training.fit`'s order,
    without training: each epoch gives the generator other weights, so that
    best.keras changes whenever it is saved."""
    options = training.TrainOptions(epochs=epochs, batch_size=8, lr_schedule="constant")
    core = training.make_callbacks(
        run_dir, options, training.Throughput(8), monitor=generation.BEST_MONITOR
    )
    monitor = callbacks.QualityMonitor(evaluator, run_dir / "quality.json", every)
    session = keras.callbacks.CallbackList(
        [monitor, *core], model=gan, epochs=epochs, steps=1
    )
    session.on_train_begin()
    for epoch in range(start, stop):
        session.on_epoch_begin(epoch)
        gan.generator.weights[0].assign(np.full(gan.generator.weights[0].shape, epoch))
        evaluator.epoch = epoch + 1
        logs = {"d_loss": 1.0, "g_loss": 1.0, "d_real": 0.5, "d_fake": 0.5}
        session.on_epoch_end(epoch, logs)
    session.on_train_end()


def test_quality_every_2_keeps_the_fid_columns_and_the_better_best(tmp_path):
    """Every epoch's logs hold the quality figures (NaN where not measured), so
    history.csv has them from epoch 1 on and a resumed session's best.keras is
    only replaced by a better FID: epoch 4's 3.0 must not replace epoch 2's 1.0
    (nor the unmeasured epoch 3 either)."""
    import apps

    gan = apps.build("mlp_gan", latent_dim=4, generator_units=(4,), seed=0)
    gan.compile()
    evaluator = _ScriptedEvaluator({1: 5.0, 2: 1.0, 4: 3.0})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _quality_session(run_dir, gan, evaluator, start=0, stop=2)  # then killed
    best = _sha256(run_dir / "best.keras")
    _quality_session(run_dir, gan, evaluator, start=2, stop=4)  # resumed
    assert _sha256(run_dir / "best.keras") == best
    kept = generation.load_gan(run_dir / "best.keras").generator.weights[0]
    assert np.all(np.asarray(kept) == 1)  # epoch 2's (0-based index 1)
    history = training.read_history(run_dir)
    for key in callbacks.LOGGED_FIGURES:
        assert len(history[key]) == 4 and math.isnan(history[key][2]), key
    assert history["fid"][:2] == [5.0, 1.0] and history["fid"][3] == 3.0
    records = callbacks.read_quality(run_dir / "quality.json")
    assert sorted(records, key=int) == ["1", "2", "4"]


@pytest.mark.slow
def test_resumed_run_measured_every_2_epochs_keeps_the_better_best(
    fashion_mnist, tmp_path, monkeypatch
):
    """--quality-every 2, FIDs scripted per epoch, killed after epoch 2, resumed.

    history.csv must hold the FID columns from epoch 1 on (NaN for epoch 3,
    which is not measured), so that the resumed session knows epoch 2's FID 1.0
    and keeps its best.keras against epoch 4's worse 3.0 (nor saves epoch 3's).
    """
    scripted = {1: 5.0, 2: 1.0, 4: 3.0}

    def evaluate(self, gan):
        epoch = int(gan.g_optimizer.iterations) // 2  # 2 steps per epoch
        return {
            "fid": scripted[epoch],
            "inception_score": 2.0,
            "class_coverage": 1.0,
            "class_entropy": 1.0,
            "max_class_share": 0.1,
            "class_shares": [0.1] * 10,
        }

    monkeypatch.setattr(quality.QualityEvaluator, "evaluate", evaluate)
    run_dir = tmp_path / "run"
    common = [
        "--epochs",
        "4",
        "--quality-every",
        "2",
        "--quality-samples",
        "2",
        "--quality-classifier",
        str(_tiny_classifier(tmp_path / "classifier")),
    ]

    def kill_before_epoch_three(self, epoch, logs=None):
        if epoch == 2:
            raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(callbacks.SampleGrid, "on_epoch_begin", kill_before_epoch_three)
        with pytest.raises(_Killed):
            _train(run_dir, *common)
    best = _sha256(run_dir / "best.keras")
    assert _train(run_dir, *common) == 0  # resumes at epoch 3
    assert _sha256(run_dir / "best.keras") == best
    fid = training.read_history(run_dir)["fid"]
    assert fid[:2] == [5.0, 1.0] and math.isnan(fid[2]) and fid[3] == 3.0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best_fid"] == {"epoch": 2, "fid": 1.0} and metrics["fid"] == 3.0
    assert ["fid" in row for row in metrics["per_epoch"]] == [True, True, False, True]


def test_conditional_models_get_the_dataset_classes(fashion_mnist):
    import apps

    config = generation.GenerationConfig(model="cdcgan", dataset="fashion_mnist")
    info = apps.get_model_info("cdcgan")
    assert generation.builder_options(info, config, fashion_mnist)["classes"] == 10
    config.model = "mlp_gan"  # conditional only when asked: classes=None by default
    info = apps.get_model_info("mlp_gan")
    assert "classes" not in generation.builder_options(info, config, fashion_mnist)
    config.model_options = {"classes": 10}
    assert generation.builder_options(info, config, fashion_mnist)["classes"] == 10
    config.model_options = {"classes": 3}
    with pytest.raises(cli.UsageError, match="fashion_mnist has 10 classes"):
        generation.builder_options(info, config, fashion_mnist)


def test_sample_one_class_of_a_conditional_gan(tmp_path, capsys):
    import apps

    model = apps.build("cdcgan", width=8, latent_dim=8, seed=0)
    model.compile()
    model.save(tmp_path / "model.keras")
    argv = ["sample", "--model-path", str(tmp_path / "model.keras"), "--n", "4"]
    output = tmp_path / "boots.png"
    assert generate.main([*argv, "--class", "9", "--output", str(output)]) == 0
    width, height = Image.open(output).size
    assert width == 2 * 86 - 2 and height > 2 * 86 - 2  # a header: the class name
    code = generate.main([*argv, "--class", "10", "--output", str(output)])
    assert code == 2 and "class labels must be in [0, 10)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--d-steps", "0"], "--d-steps must be >= 1"),
        (["--latent-dim", "0"], "--latent-dim must be a positive integer"),
        (["--image-size", "27", "27"], "DCGAN builds images whose sides"),
        (["--model", "lenet5"], "lenet5 is not a generative model"),
        (["--model", "dcgn"], "Did you mean 'dcgan'"),
        (["--dataset", "fashion_mnst"], "Did you mean: fashion_mnist"),
        (["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1)"),
        (["--model", "mlp_gan", "--width", "8"], "mlp_gan does not take ['width']"),
        (["--quality-classifier", "nowhere.keras"], "--quality-classifier"),
        (["--batch-size", "40000", "--d-steps", "2"], "fewer than one batch"),
        (["--early-stopping", "2"], "--early-stopping is not supported here: a GAN"),
        (["--optimizer", "sgd", "--beta-1", "0.9"], "--beta-1 is Adam's"),
        (["--beta-1", "1"], "--beta-1 must be in [0, 1)"),
    ],
)
def test_bad_arguments_fail_before_training(tmp_path, capsys, argv, message):
    # argparse keeps a flag's last value: a case's --model replaces dcgan.
    base = ["train", "--model", "dcgan", "--dataset", "fashion_mnist"]
    code = generate.main([*base, "--output", str(tmp_path / "run"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "history.csv").exists()


def test_unknown_loss_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _train(tmp_path, "--loss", "wgan")
    assert exit_info.value.code == 2
    assert "invalid choice: 'wgan'" in capsys.readouterr().err


def test_missing_model_path_is_a_clear_error(tmp_path, capsys):
    code = generate.main(
        ["sample", "--model-path", str(tmp_path / "no.keras"), "--output", "x.png"]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err


def _header(path, height=10):
    """The top rows of a grid image, where a conditional grid has its labels."""
    return np.asarray(Image.open(path).convert("L"))[:height]


def test_sample_writes_the_format_its_output_names(tmp_path, capsys):
    """A directory was an IsADirectoryError (a .tmp.png left beside it); x.jpg got
    PNG bytes; other suffixes were written as PNG under their name."""
    import apps

    model = apps.build("dcgan", width=8, latent_dim=8, seed=0)
    model.compile()
    model.save(tmp_path / "model.keras")
    argv = ["sample", "--model-path", str(tmp_path / "model.keras"), "--n", "2"]
    (tmp_path / "grids").mkdir()
    before = sorted(tmp_path.iterdir())
    for output, message in (("grids", "is a directory"), ("x.gif", "PNG or JPEG")):
        assert generate.main([*argv, "--output", str(tmp_path / output)]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and len(captured.err.splitlines()) == 1
        assert "Traceback" not in captured.out + captured.err
        assert sorted(tmp_path.iterdir()) == before  # nothing left behind
    assert not any((tmp_path / "grids").iterdir())
    for name, image_format in (("x.jpg", "JPEG"), ("x.JPEG", "JPEG"), ("x.png", "PNG")):
        assert generate.main([*argv, "--output", str(tmp_path / name)]) == 0
        assert Image.open(tmp_path / name).format == image_format
    assert not list(tmp_path.glob(".*"))


def _bug_folder(root):
    """An image folder of 3 classes x 4 grey 16x16 images (a fast dataset)."""
    rng = np.random.default_rng(0)
    for name in ("ant", "bee", "cat"):
        (root / name).mkdir(parents=True)
        for index in range(4):
            pixels = rng.integers(0, 255, (16, 16), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def test_a_conditional_run_labels_its_grids_and_logs_only_real_columns(
    tmp_path, capsys
):
    """One epoch of the cDCGAN: "1 epoch" (not "1 epochs"), history.csv without
    its all-NA val_* columns, grids enlarged and headed with the class names
    (from run.json for `sample` too)."""
    argv = ["train", "--model", "cdcgan", "--width", "8", "--latent-dim", "8"]
    argv += ["--dataset", str(_bug_folder(tmp_path / "bugs")), "--batch-size", "4"]
    argv += ["--steps-per-epoch", "2", "--epochs", "1", "--quality-samples", "0"]
    run_dir = tmp_path / "run"
    assert generate.main([*argv, "--samples", "6", "--output", str(run_dir)]) == 0
    assert ": 1 epoch, d_loss" in capsys.readouterr().out
    header = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert "g_loss" in header and not [key for key in header if "val_" in key]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["class_names"] == ["ant", "bee", "cat"]
    grid_path = run_dir / "samples" / "epoch_001.png"
    # 2 rows of the 3 classes, 16x16 enlarged to 64x64, under a header.
    width, height = Image.open(grid_path).size
    assert width == 3 * 66 - 2 and height > 2 * 66 - 2
    assert _header(grid_path).max() > 200  # white text on black
    # `sample` takes the names from the run.json beside the model.
    sample = ["sample", "--n", "3", "--model-path"]
    named, numbered = tmp_path / "named.png", tmp_path / "numbered.png"
    model_path = run_dir / "model.keras"
    assert generate.main([*sample, str(model_path), "--output", str(named)]) == 0
    bare = tmp_path / "bare" / "model.keras"  # no run.json beside it: "class N"
    bare.parent.mkdir()
    bare.write_bytes(model_path.read_bytes())
    assert generate.main([*sample, str(bare), "--output", str(numbered)]) == 0
    assert _header(named).max() > 200
    assert np.array_equal(_header(named), _header(grid_path))
    assert not np.array_equal(_header(named), _header(numbered))


def _options(*flags):
    """The TrainOptions `generate train` makes of `flags`."""
    argv = ["train", "--model", "dcgan", "--dataset", "d", "--output", "o", *flags]
    args = generate.build_parser().parse_args(argv)
    return cli.train_options(
        args,
        defaults=generation.train_defaults(args.optimizer),
        unsupported=generation.UNSUPPORTED,
    )


def test_training_defaults_stay_dcgans():
    """Adam at 2e-4 (beta_1 0.5), a constant rate, batch 64, 10 epochs; another
    optimiser gets its usual rate, not Adam's 2e-4."""
    options = _options()
    assert (options.optimizer, options.learning_rate) == ("adam", 2e-4)
    assert (options.lr_schedule, options.batch_size, options.epochs) == (
        "constant",
        64,
        10,
    )
    assert _options("--optimizer", "rmsprop").resolved_learning_rate == 1e-3


def test_the_new_optimisation_flags_reach_both_optimisers(fashion_mnist, tmp_path):
    run_dir = tmp_path / "run"
    flags = ["--weight-decay", "0.01", "--lr-schedule", "cosine", "--beta-1", "0.6"]
    flags += ["--learning-rate", "1e-3", "--steps-per-execution", "1"]
    assert _train(run_dir, "--epochs", "2", "--quality-samples", "0", *flags) == 0
    gan = generation.load_gan(run_dir / "model.keras")
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        assert isinstance(optimizer, keras.optimizers.AdamW)
        assert optimizer.weight_decay == pytest.approx(0.01)
        assert optimizer.beta_1 == pytest.approx(0.6)
    cosine = training.cosine_schedule(1e-3, 2)
    rates = training.read_history(run_dir)["learning_rate"]
    assert rates == pytest.approx([cosine(0), cosine(1)])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["options"]["steps_per_execution"] == 1
    assert record["arguments"]["beta_1"] == 0.6
