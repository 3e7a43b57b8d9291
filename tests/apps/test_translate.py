"""python -m apps.translate: a tiny real training run, resume, translate, export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps import translate
from apps.sequence import decoding

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
        translate.train(
            translate.build_parser().parse_args(argv),
            extra_callbacks=[_StopAtSecondEpoch()],
        )
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
    for name in (
        "model.keras",
        "best.keras",
        "metrics.json",
        "run.json",
        "history.csv",
        "learning_curves.png",
        translate.ATTENTION_FILE,
    ):
        assert (trained_run / name).is_file(), name
    assert not (trained_run / "state").exists()
    metrics = json.loads((trained_run / "metrics.json").read_text())
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
    model = translate.load_translator(trained_run)
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
            ["export", "--model-path", "{run}", "--name", "bad name!"],
            "name",
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
    model = translate.load_translator(trained_run)
    greedy = decoding.greedy(model, sources[:3])
    for output, ok, expected in zip(dates_out, valid, greedy, strict=False):
        assert output == (expected if ok else "")
    assert np.array(valid[:3]).dtype == bool

    # An existing version is kept unless --force.
    assert translate.main([*argv, "--version", "1"]) == 2
    assert "exists already" in capsys.readouterr().err
