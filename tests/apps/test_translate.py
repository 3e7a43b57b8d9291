"""python -m apps.translate: a tiny real training run, resume, translate, export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import finished_run

from apps import cli, translate
from apps.sequence import decoding
from apps.tasks import translation

# A transformer small and fast enough to learn something in two short epochs.
TINY = [
    "--model-option",
    "num_layers=1",
    "--model-option",
    "d_model=32",
    "--model-option",
    "feed_forward_dim=64",
    "--dropout",
    "0",
    "--batch-size",
    "32",
    "--learning-rate",
    "0.005",
    "--validation-examples",
    "64",
    "--seed",
    "0",
]


def _train(output, *extra):
    return translate.main(["train", *TINY, *extra, "--output", str(output)])


def _library_run(run_dir, argv, callbacks):
    """`translation.train` on what the command line makes of `argv` (a test's
    callbacks can only be given there)."""
    args = translate.build_parser().parse_args(argv)
    config = translation.TranslationConfig(
        dropout=args.dropout,
        model_options=cli.model_options(args.model_option),
        validation_examples=args.validation_examples,
        test_examples=args.test_examples,
    )
    options = cli.train_options(args, defaults=translation.TRAIN_DEFAULTS)
    return translation.train(config, options, run_dir, callbacks)


class _Interrupt(Exception):
    pass


class _StopAtSecondEpoch(keras.callbacks.Callback):
    """Dies at the start of the second epoch, once the first one's state is saved."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise _Interrupt


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A short run, interrupted after its first epoch, then resumed to the end.

    Returns the run directory and the run state the interruption left.
    """
    run_dir = tmp_path_factory.mktemp("dates")
    argv = [
        "train",
        *TINY,
        "--epochs",
        "2",
        "--steps-per-epoch",
        "60",
        "--test-examples",
        "200",
        "--output",
        str(run_dir),
    ]
    with pytest.raises(_Interrupt):
        _library_run(run_dir, argv, [_StopAtSecondEpoch()])
    assert not (run_dir / "metrics.json").exists()
    saved = json.loads(next((run_dir / "state").glob("state-*.json")).read_text())
    assert translate.main(argv) == 0
    return run_dir, saved


@pytest.fixture(scope="module")
def trained_run(interrupted_run):
    return interrupted_run[0]


def test_interrupted_run_resumes_at_the_next_epoch(interrupted_run):
    run_dir, saved = interrupted_run
    assert saved["position"] == {"epoch": 1, "step": 0, "global_step": 60}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert not (run_dir / "state").exists()
    epochs = [line.split(",")[0] for line in (run_dir / "history.csv").open()]
    assert epochs == ["epoch", "0", "1"]  # each epoch trained once


def test_a_short_run_learns_and_leaves_a_record(trained_run):
    files = "model.keras best.keras metrics.json run.json history.csv "
    metrics = finished_run(
        trained_run, files + f"learning_curves.png {translation.ATTENTION_FILE}", ""
    )
    assert metrics["model"] == "transformer" and metrics["epochs"] == 2
    assert metrics["test_examples"] == 200
    assert metrics["test_exact_match"] > 0  # some held-out dates exactly right
    history = translate_history(trained_run)
    assert history["loss"][1] < history["loss"][0]
    assert history["val_loss"][1] < history["val_loss"][0]
    for error in metrics["test_errors"]:
        assert error["output"] != error["expected"]


def translate_history(run_dir):
    from apps import training

    return training.read_history(run_dir)


def test_finished_run_is_not_trained_again(trained_run, capsys):
    before = (trained_run / "metrics.json").read_text()
    assert _train(trained_run) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (trained_run / "metrics.json").read_text() == before


def test_translate_prints_one_line_per_text_and_explains_refusals(trained_run, capsys):
    texts = ["1979-05-03", "", "3" * 41, "3 May 1979 ☃", "31 February 2001"]
    code = translate.main(["translate", "--model-path", str(trained_run), *texts])
    captured = capsys.readouterr()
    lines = captured.out.split("\n")
    assert lines[-1] == "" and len(lines) == len(texts) + 1
    assert lines[1:5] == ["", "", "", ""]  # refused: nothing printed in their place
    assert code == 1
    errors = captured.err
    assert "input 2 (''): empty input" in errors
    assert "input 3" in errors and "reads at most 40" in errors
    assert "input 4" in errors and "'☃'" in errors
    assert "input 5 ('31 February 2001')" in errors


def test_beam_search_from_the_command_line(trained_run, capsys):
    model = translation.load_translator(trained_run)
    sources = ["1979-05-03", "12/10/2001", "3rd of May 1979"]
    assert decoding.beam_search(model, sources, beam_width=1) == decoding.greedy(
        model, sources
    )
    code = translate.main(
        ["translate", "--model-path", str(trained_run / "model.keras"), "--beam", "3"]
        + sources
    )
    assert code in (0, 1)
    assert len(capsys.readouterr().out.splitlines()) == len(sources)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["translate", "--model-path", "{run}", "--beam", "0", "x"], "--beam must be"),
        (
            ["translate", "--model-path", "{run}", "--beam", "2"]
            + ["--length-penalty", "-1", "x"],
            "--length-penalty must be",
        ),
        (["translate", "--model-path", "{missing}", "x"], "holds no model"),
        (["train", "--model", "lstm", "--output", "{new}"], "not a translator"),
        (["train", "--model", "transfomer", "--output", "{new}"], "Did you mean"),
        (
            ["train", "--model-option", "heads=2", "--output", "{new}"],
            "transformer does not take ['heads']",
        ),
        (["train", "--test-examples", "0", "--output", "{new}"], "--test-examples"),
        (["train", "--epochs", "0", "--output", "{new}"], "epochs must be"),
        (
            ["train", "--label-smoothing", "1", "--output", "{new}"],
            "label_smoothing must be in [0, 1)",
        ),
        (
            ["export", "--model-path", "{run}", "--name", "bad name!"],
            "name",
        ),
        (
            ["train", "--jit", "--output", "{new}"],
            "--jit is not supported here: XLA cannot compile the translator's step",
        ),
    ],
)
def test_bad_arguments_are_exit_code_2(trained_run, tmp_path, capsys, argv, message):
    paths = {
        "run": str(trained_run),
        "missing": str(tmp_path / "missing"),
        "new": str(tmp_path / "new"),
    }
    argv = [part.format(**paths) for part in argv]
    assert translate.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_export_serves_strings_and_refuses_bad_input(trained_run, tmp_path, capsys):
    argv = [
        "export",
        "--model-path",
        str(trained_run),
        "--name",
        "dates",
        "--export-dir",
        str(tmp_path),
    ]
    assert translate.main(argv) == 0
    assert "exported" in capsys.readouterr().out
    version = tmp_path / "dates" / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()

    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    sources = ["1979-05-03", "3rd of May 1979", "12/10/2001", "", "3" * 41, "€ 1979"]
    served = serve(text=tf.constant(sources))
    dates_out = [value.decode() for value in served["date"].numpy()]
    valid = served["valid"].numpy().tolist()
    assert valid[3:] == [False, False, False] and dates_out[3:] == ["", "", ""]
    # The graph's greedy decoding is the Python one.
    model = translation.load_translator(trained_run)
    greedy = decoding.greedy(model, sources[:3])
    for output, ok, expected in zip(dates_out, valid, greedy, strict=False):
        assert output == (expected if ok else "")
    assert np.array(valid[:3]).dtype == bool

    # An existing version is kept unless --force.
    assert translate.main([*argv, "--version", "1"]) == 2
    assert "exists already" in capsys.readouterr().err


# Label smoothing and the rsqrt (warm-up) schedule


def _compiled_loss(label_smoothing):
    """The loss `compile_translator` compiles, as a function of (labels, logits)."""
    from apps import training

    model = keras.Sequential([keras.Input((4, 7))])
    translation.compile_translator(
        model, training.TrainOptions(label_smoothing=label_smoothing)
    )
    return lambda labels, logits: model.compute_loss(y=labels, y_pred=logits)


def test_smoothed_cross_entropy_is_the_mean_over_real_tokens():
    labels = np.array([[4, 5, 3, 0], [6, 3, 0, 0]])  # 0: padding
    logits = np.random.default_rng(0).normal(size=(2, 4, 7)).astype("float32")
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    # eps = 0: the mean of its per-token values is SparseCategoricalCrossentropy's.
    per_token = translation.smoothed_cross_entropy(labels, logits, 0.0)
    np.testing.assert_allclose(
        float(np.mean(per_token)), float(plain(labels, logits)), rtol=1e-6
    )
    assert float(_compiled_loss(0.0)(labels, logits)) == float(plain(labels, logits))
    eps = 0.1
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = np.eye(7)[labels] * (1 - eps) + eps / 7
    per_token = -(targets * log_p).sum(-1)
    expected = per_token[labels != 0].mean()  # 5 real tokens
    smoothed = _compiled_loss(eps)
    np.testing.assert_allclose(float(smoothed(labels, logits)), expected, rtol=1e-5)


def test_rsqrt_schedule_warms_up_then_decays_as_the_paper():
    from apps import training

    options = training.TrainOptions(
        epochs=5, steps_per_epoch=200, learning_rate=2e-3, lr_schedule="rsqrt"
    )
    schedule = training.make_optimizer(options)._learning_rate
    assert isinstance(schedule, training.RsqrtSchedule)
    assert schedule.warmup_steps == 40  # 4 % of 1000 steps
    # Paper: d^-0.5 * min(n^-0.5, n * w^-1.5), n = step counter + 1, with the
    # peak d^-0.5 * w^-0.5 = 2e-3, so d^-0.5 = 2e-3 * sqrt(40).
    scale = 2e-3 * np.sqrt(40)
    for counter in (0, 9, 39, 40, 100, 999):
        n = counter + 1
        paper = scale * min(n**-0.5, n * 40**-1.5)
        assert float(schedule(counter)) == pytest.approx(paper, rel=1e-5)
    assert float(schedule(39)) == pytest.approx(2e-3)  # the peak
    restored = training.RsqrtSchedule.from_config(schedule.get_config())
    assert float(restored(500)) == float(schedule(500))
    with pytest.raises(ValueError, match="rsqrt' needs steps_per_epoch"):
        training.make_optimizer(training.TrainOptions(lr_schedule="rsqrt"))


def _weights(run_dir):
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    return [np.asarray(weight) for weight in model.weights]


class _StopInSecondEpoch(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if self.model.optimizer.iterations.numpy() >= 20:
            raise _Interrupt


@pytest.mark.slow
def test_an_interrupted_rsqrt_run_resumes_exactly(tmp_path):
    """Killed mid-epoch, resumed from a mid-epoch state (other step groups than
    the straight run's): the same weights, as the rate is a function of the step."""
    argv = [
        "train",
        *TINY,
        "--lr-schedule",
        "rsqrt",
        "--label-smoothing",
        "0.1",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "12",
        "--checkpoint-every",
        "5",
        "--validation-examples",
        "16",
        "--test-examples",
        "20",
    ]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert translate.main([*argv, "--output", str(straight)]) == 0
    with pytest.raises(_Interrupt):
        _library_run(
            interrupted, [*argv, "--output", str(interrupted)], [_StopInSecondEpoch()]
        )
    # Straight: steps 0, 1-4, 5-9, 10-11 | 12-14, 15-19, 20-23 (a call runs up to
    # 8 steps, cut at checkpoints); resumed at 20: 20 alone, then 21-23.
    newest = sorted((interrupted / "state").glob("state-*.json"))[-1]
    saved = json.loads(newest.read_text())
    assert saved["position"] == {"epoch": 1, "step": 8, "global_step": 20}
    assert translate.main([*argv, "--output", str(interrupted)]) == 0
    for a, b in zip(_weights(straight), _weights(interrupted), strict=True):
        np.testing.assert_array_equal(a, b)
    rates = translate_history(straight)["learning_rate"]
    assert rates == pytest.approx([0.005 * np.sqrt(1 / 13), 0.005 * np.sqrt(1 / 25)])
    assert translate_history(interrupted)["learning_rate"] == rates
