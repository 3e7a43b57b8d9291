"""python -m apps.classify: tiny real runs on Fashion-MNIST, resume, predict, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tiny import finished_run, tiny_flags

import apps
from apps import classify
from apps.tasks import classification

TINY = tiny_flags(dataset=None, epochs=2, steps_per_epoch=3, eval_steps=2)


def _train(output, *extra):
    argv = [
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "fashion_mnist",
        *TINY,
        "--output",
        str(output),
        *extra,
    ]
    return classify.main(argv)


@pytest.fixture(scope="module")
def trained_run(fashion_mnist, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lenet5")
    assert _train(run_dir) == 0
    return run_dir


def test_train_writes_the_run_directory(trained_run):
    metrics = finished_run(
        trained_run,
        "model.keras best.keras metrics.json history.csv learning_curves.png "
        "confusion_matrix.png preprocessing.json run.json",
        "test_accuracy test_loss epochs batch_size replicas images_per_second "
        "wall_seconds arguments versions",
    )
    assert any((trained_run / "tensorboard").rglob("events.out.tfevents*"))
    assert metrics["epochs"] == 2 and metrics["replicas"] == 1
    assert metrics["test_examples"] == 32
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["versions"]["keras"].startswith("3.")
    assert len(metrics["per_class_accuracy"]) == 10


def test_finished_run_is_not_overwritten(trained_run, capsys):
    before = (trained_run / "metrics.json").read_text()
    assert _train(trained_run) == 0
    assert "holds a finished run" in capsys.readouterr().out
    assert (trained_run / "metrics.json").read_text() == before


@pytest.mark.parametrize("tta", ["none", "flip", "10crop"])
def test_evaluate_with_test_time_augmentation(trained_run, capsys, tta):
    code = classify.main(
        [
            "evaluate",
            "--model-path",
            str(trained_run / "model.keras"),
            "--dataset",
            "fashion_mnist",
            "--steps",
            "1",
            "--tta",
            tta,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"tta={tta}: accuracy" in out and "Ankle boot" in out


def test_tta_views():
    images = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    views = classification.tta_views(images, "10crop")
    assert len(views) == 10 and all(view.shape == images.shape for view in views)
    np.testing.assert_allclose(
        classification.tta_views(images, "flip")[1], images[:, :, ::-1]
    )


def test_predict_reports_corrupt_files_and_goes_on(trained_run, tmp_path, capsys):
    good = tmp_path / "shirt.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(good)
    colour = tmp_path / "big.jpg"
    Image.fromarray(np.zeros((60, 40, 3), np.uint8)).save(colour)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code = classify.main(
        [
            "predict",
            "--model-path",
            str(trained_run / "model.keras"),
            str(good),
            str(corrupt),
            str(colour),
            str(tmp_path / "missing.png"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"{good}: " in captured.out and f"{colour}: " in captured.out
    assert "%" in captured.out
    assert f"{corrupt}: error: not a readable PNG/JPEG" in captured.err
    assert "missing.png: error: no such file" in captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "lenet-5"], "Did you mean 'lenet5'"),
        (["--dataset", "fashion_mnst"], "Did you mean: fashion_mnist"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--model", "alexnet", "--model-option", "resize=False"], "at least"),
        (["--model-option", "kernel=7"], "does not take ['kernel']"),
        (["--augment", "blur"], "augment must name some of"),
        (["--epochs", "-1"], "epochs must be a positive integer"),
        (["--steps-per-execution", "0"], "steps_per_execution must be a positive"),
        (["--learning-rate", "inf"], "learning_rate must be > 0 and finite"),
        (["--model", "dcgan"], "dcgan is a generation model (dcgan family), not an"),
        (["--model", "transformer"], "not an image classifier. The image classif"),
        (["--model-option", "include_top=False"], "['include_top'] cannot be set"),
        (
            ["--model-option", "classifier_activation=None"],
            "['classifier_activation'] cannot be set with --model-option",
        ),
    ],
)
def test_bad_arguments_fail_before_training(tmp_path, capsys, argv, message):
    # argparse keeps a flag's last value: a case's --model replaces lenet5.
    base = ["train", "--model", "lenet5", "--dataset", "fashion_mnist"]
    assert classify.main([*base, "--output", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_unknown_optimizer_is_refused_by_the_parser(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _train(tmp_path, "--optimizer", "lbfgs")
    assert exit_info.value.code == 2


def test_missing_model_path_is_a_clear_error(tmp_path, capsys):
    code = classify.main(
        ["predict", "--model-path", str(tmp_path / "no.keras"), "x.png"]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err


# Odd images, odd flags, damaged model files (issue 19): one line each


def _predict(model_path, *images):
    argv = ["predict", "--model-path", str(model_path), *map(str, images)]
    return classify.main(argv)


def test_predict_names_an_oversized_image_and_predicts_the_rest(
    trained_run, huge_png, tmp_path, capsys
):
    good = tmp_path / "good.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(good)
    model = trained_run / "model.keras"
    assert _predict(model, huge_png, good) == 1
    captured = capsys.readouterr()
    assert f"{good}: " in captured.out and "%" in captured.out
    assert (
        f"{huge_png}: error: 20000x20000 is 400,000,000 pixels, more than "
        "--max-pixels 40,000,000" in captured.err
    )
    assert "Traceback" not in captured.out + captured.err
    assert _predict(model, "--max-pixels", "700", good) == 1
    assert "28x28 is 784 pixels, more than --max-pixels 700" in capsys.readouterr().err


def test_sixteen_bit_pngs_keep_their_full_range(tmp_path):
    for value, expected in ((65535, 255), (32896, 128), (257, 1)):
        path = tmp_path / f"{value}.png"
        Image.fromarray(np.full((4, 4), value, np.uint16)).save(path)
        assert classification.read_image(path, 1)[0, 0, 0] == expected
        assert list(classification.read_image(path, 3)[0, 0]) == [expected] * 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--batch-size", "0"], "--batch-size must be a positive integer"),
        (["evaluate", "--steps", "0"], "--steps must be a positive integer. Rec"),
        (["predict", "--max-pixels", "0", "x.png"], "--max-pixels must be a positive"),
        (["export", "--name", "m", "--max-pixels", "-1"], "--max-pixels must be a"),
    ],
)
def test_bad_evaluate_predict_and_export_flags(
    trained_run, tmp_path, capsys, argv, message
):
    command, *rest = argv
    model = ["--model-path", str(trained_run / "model.keras")]
    if command == "evaluate":
        rest += ["--dataset", "fashion_mnist"]
    if command == "export":
        rest += ["--export-dir", str(tmp_path / "exports")]
    assert classify.main([command, *model, *rest]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "exports").exists()


def test_evaluate_refuses_a_dataset_with_another_number_of_classes(
    fashion_mnist, trained_run, tmp_path, capsys
):
    import apps

    apps.build("lenet5", classes=3).save(tmp_path / "model.keras")
    spec = json.loads((trained_run / classify.PREPROCESSING_FILE).read_text())
    spec["class_names"] = ["ant", "bee", "cat"]
    (tmp_path / classify.PREPROCESSING_FILE).write_text(json.dumps(spec))
    argv = ["evaluate", "--model-path", str(tmp_path / "model.keras")]
    assert classify.main([*argv, "--dataset", "fashion_mnist"]) == 2
    assert "the model has 3 classes, the dataset 10" in capsys.readouterr().err


def _model_dir(trained_run, directory, spec_text=None, model_bytes=None):
    directory.mkdir()
    model = (trained_run / "model.keras").read_bytes()
    if model_bytes is not None:
        model = model_bytes(model)
    (directory / "model.keras").write_bytes(model)
    spec = (trained_run / classify.PREPROCESSING_FILE).read_text()
    if spec_text is not None:
        spec = spec_text(json.loads(spec))
    (directory / classify.PREPROCESSING_FILE).write_text(spec)
    return directory / "model.keras"


@pytest.mark.parametrize(
    "spec_text, message",
    [
        (lambda spec: "{not json", "Expecting property name"),
        (lambda spec: '{"input_shape": [28, 28', "Expecting ',' delimiter"),
        (
            lambda spec: json.dumps({**spec, "input_shape": [28]}),
            "input_shape must be [height, width, channels]",
        ),
        (
            lambda spec: json.dumps({**spec, "normalization": "bogus"}),
            "normalization must be one of",
        ),
        (lambda spec: json.dumps([spec]), "spec must be a dict"),
    ],
)
def test_a_damaged_preprocessing_json_is_one_line_with_exit_1(
    trained_run, tmp_path, capsys, spec_text, message
):
    model = _model_dir(trained_run, tmp_path / "run", spec_text=spec_text)
    assert _predict(model, "x.png") == 1
    err = capsys.readouterr().err
    assert "the model dir's preprocessing.json is unreadable" in err
    assert message in err and "re-train the model" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_preprocessing_json_of_another_model_is_exit_1(trained_run, tmp_path, capsys):
    def three_classes(spec):
        return json.dumps({**spec, "class_names": ["ant", "bee", "cat"]})

    model = _model_dir(trained_run, tmp_path / "run", spec_text=three_classes)
    assert _predict(model, "x.png") == 1
    assert "has 10 classes but the spec names 3" in capsys.readouterr().err


def test_a_truncated_model_file_is_named_as_such(trained_run, tmp_path, capsys):
    def truncated(data):
        return data[: len(data) // 2]

    model = _model_dir(trained_run, tmp_path / "run", model_bytes=truncated)
    assert _predict(model, "x.png") == 1
    err = capsys.readouterr().err
    assert f"{model} is not a readable .keras file (truncated or corrupt" in err
    assert "File not found" not in err


def _cli(*args):
    return [sys.executable, "-m", "apps.classify", *args]


def _run_metrics(tmp_path, name, *extra):
    output = tmp_path / name
    flags = tiny_flags(steps_per_epoch=4, batch_size=None, validation_split=0)
    command = _cli("train", "--model", "lenet5", *flags, "--output", str(output))
    command += extra
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return json.loads((output / "metrics.json").read_text())


# slow (52 s): MirroredStrategy stays in the quick suite through test_batch_norm's
# global-batch pass, test_optimizers' two-replica L2 and layers' mirrored subprocess.
@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(fashion_mnist, tmp_path):
    single = _run_metrics(tmp_path, "single", "--batch-size", "32")
    mirrored = _run_metrics(
        tmp_path,
        "mirrored",
        "--batch-size",
        "16",
        "--strategy",
        "mirrored",
        "--devices",
        "2",
    )
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    assert mirrored["global_batch_size"] == single["global_batch_size"] == 32
    assert mirrored["test_loss"] == pytest.approx(single["test_loss"], rel=1e-4)
    assert mirrored["final"]["loss"] == pytest.approx(single["final"]["loss"], rel=1e-4)


TINY_RESNET = [
    "--model",
    "resnet",
    "--model-option",
    "block=basic",
    "--model-option",
    "blocks_per_stage=(1,)",
    "--model-option",
    "width=4",
    "--model-option",
    "small_inputs=True",
    "--model-option",
    "batch_norm_momentum=0.99",
]


def test_batch_norm_pass_runs_and_evaluate_agrees_with_train(
    fashion_mnist, tmp_path, capsys
):
    """train recomputes the BN statistics before its test; evaluate on model.keras
    then reports the accuracy train printed, on the same test images."""
    argv = ["train", *TINY_RESNET, "--dataset", "fashion_mnist", *TINY]
    argv += ["--bn-recalibration-steps", "3", "--output", str(tmp_path / "run")]
    assert classify.main(argv) == 0
    printed = capsys.readouterr().out
    assert "BatchNorm statistics recomputed over 3 training batches" in printed
    accuracy = printed.split("test accuracy ")[1].split(" ")[0]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["options"]["bn_recalibration_steps"] == 3
    model_path = str(tmp_path / "run" / "model.keras")
    evaluate = ["evaluate", "--model-path", model_path, "--dataset", "fashion_mnist"]
    assert classify.main([*evaluate, "--batch-size", "16", "--steps", "2"]) == 0
    assert f"accuracy {accuracy}" in capsys.readouterr().out


@pytest.mark.parametrize("steps", ["5", "100"])  # 100: the default's number, given
def test_batch_norm_pass_on_a_model_without_batch_norm_says_so(
    trained_run, capsys, steps
):
    # Said while the arguments are checked, so the finished run is enough.
    assert _train(trained_run, "--bn-recalibration-steps", steps) == 0
    captured = capsys.readouterr()
    assert "--bn-recalibration-steps has no effect: lenet5 has no Batch" in captured.err
    assert "holds a finished run" in captured.out


def test_a_model_without_batch_norm_records_no_pass_and_is_not_told(
    trained_run, capsys
):
    run = json.loads((trained_run / "run.json").read_text())
    assert run["options"]["bn_recalibration_steps"] == 0
    assert _train(trained_run) == 0
    assert "no effect" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model-option", "batch_norm_momentum=1.5"], "must be a number in [0, 1)"),
        (["--bn-recalibration-steps", "-1"], "bn_recalibration_steps must be a"),
    ],
)
def test_bad_batch_norm_arguments_fail_before_training(
    tmp_path, capsys, extra, message
):
    argv = ["train", *TINY_RESNET[:-2], "--dataset", "fashion_mnist", *extra]
    assert classify.main([*argv, "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_users_folder_as_output_is_refused_untouched(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "state").mkdir(parents=True)
    for name in ("notes.txt", "model.keras", "history.csv", "state/keep.txt"):
        (mine / name).write_text("the user's")
    assert _train(mine) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert sorted(p.name for p in mine.rglob("*")) == sorted(
        ["state", "notes.txt", "model.keras", "history.csv", "keep.txt"]
    )
    assert all(
        (mine / name).read_text() == "the user's"
        for name in ("notes.txt", "model.keras", "history.csv", "state/keep.txt")
    )


def test_another_model_on_a_run_directory_is_refused(trained_run, tmp_path, capsys):
    import shutil

    unfinished = tmp_path / "unfinished"
    shutil.copytree(trained_run, unfinished)
    (unfinished / "metrics.json").unlink()  # as if interrupted
    argv = ["train", "--model", "mlp", "--dataset", "fashion_mnist", *TINY]
    assert classify.main([*argv, "--output", str(unfinished)]) == 2
    assert "holds a run of lenet5 on fashion_mnist" in capsys.readouterr().err


def test_overwrite_with_a_bad_option_keeps_the_old_run(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = (run / "metrics.json").read_bytes()
    assert _train(run, "--overwrite", "--model-option", "kernel=7") == 2
    assert (run / "metrics.json").read_bytes() == before


def test_overwrite_replaces_the_run_without_appending(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "notes-of-the-old-run.txt").write_text("old")
    assert _train(run, "--overwrite", "--epochs", "1") == 0
    assert not (run / "notes-of-the-old-run.txt").exists()
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith("epoch")  # header + 1 epoch
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1


def test_a_second_train_on_a_busy_directory_fails_at_once(tmp_path, capsys):
    from apps import runs

    busy = runs.RunDirectory(tmp_path / "run", "apps.classify train", "lenet5", None)
    busy.open()
    try:
        assert _train(tmp_path / "run") == 2
    finally:
        busy.close()
    assert "is in use by pid" in capsys.readouterr().err


def test_ctrl_c_is_one_line_saying_how_to_resume(monkeypatch, tmp_path, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(classify, "train", interrupted)
    assert _train(tmp_path / "run") == 130
    err = capsys.readouterr().err
    assert "continues from its last saved state" in err and "Traceback" not in err


# Image folders (issue 19): the default command, a stratified saved split, bad files


def _bug_folder(root, per_class=40, classes=("ant", "bee", "cat")):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 255, (28, 28), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def _folder_train(root, run, *extra):
    argv = ["train", "--model", "lenet5", "--dataset", str(root), "--output", str(run)]
    return classify.main([*argv, *extra])


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """The default command on 3 classes x 40 images (the recipe's epochs of one
    batch)."""
    base = tmp_path_factory.mktemp("folder")
    root, run = _bug_folder(base / "bugs"), base / "run"
    assert _folder_train(root, run) == 0
    return root, run


def test_default_command_trains_on_a_folder_with_every_class_tested(folder_run):
    root, run = folder_run
    split = json.loads((run / "split.json").read_text())
    assert split["counts"] == {"train": 87, "validation": 9, "test": 24}
    assert split["class_counts"]["test"] == [8, 8, 8]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_examples"] == 24
    assert metrics["epochs"] == apps.get_model_info("lenet5").recipe.epochs
    assert sorted(metrics["per_class_accuracy"]) == ["ant", "bee", "cat"]
    spec = json.loads((run / "preprocessing.json").read_text())
    assert spec["input_shape"] == [28, 28, 1] and spec["channels"] == 1


def test_evaluate_uses_the_runs_test_split(folder_run, tmp_path, capsys):
    root, run = folder_run
    argv = ["evaluate", "--model-path", str(run / "model.keras")]
    assert classify.main([*argv, "--dataset", str(root)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert "split read from" in out and "test, 24 images" in out
    assert f"accuracy {metrics['test_accuracy']:.2%}" in out
    other = _bug_folder(tmp_path / "other", per_class=3, classes=("ant", "bee"))
    assert classify.main([*argv, "--dataset", str(other)]) == 2
    assert "was trained on the classes ['ant', 'bee', 'cat']" in capsys.readouterr().err


def test_a_truncated_jpeg_is_named_in_one_line_with_exit_1(
    folder_run, tmp_path, capsys
):
    import io

    root = _bug_folder(tmp_path / "bugs", per_class=4)
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    (root / "bee" / "cut.jpg").write_bytes(buffer.getvalue()[:900])
    assert _folder_train(root, tmp_path / "run") == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "cut.jpg (image file is truncated" in lines[0]
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "run").exists()
    model = str(folder_run[1] / "model.keras")
    argv = ["evaluate", "--model-path", model, "--dataset", str(root)]
    assert classify.main(argv) == 1
    assert "cut.jpg" in capsys.readouterr().err


def test_a_folder_smaller_than_one_batch_trains_with_a_smaller_batch(tmp_path, capsys):
    root = _bug_folder(tmp_path / "bugs", per_class=4)
    assert _folder_train(root, tmp_path / "run", "--epochs", "1") == 0
    captured = capsys.readouterr()
    assert "train 6, validation 3, test 3" in captured.out
    assert "fewer than one batch of 128: training with batches of 6" in captured.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["batch_size"] == metrics["global_batch_size"] == 6


def test_a_resumed_folder_run_reads_its_split(folder_run, capsys):
    root, run = folder_run
    before = (run / "split.json").read_bytes()
    (run / "metrics.json").unlink()  # as if the run had been interrupted
    _bug_folder(root, per_class=43)  # images added since: a resumed run ignores them
    try:
        assert _folder_train(root, run, "--validation-split", "0.3") == 2
        assert "a resumed run must see the same data" in capsys.readouterr().err
        assert _folder_train(root, run) == 0
        captured = capsys.readouterr()
        assert f"split read from {run / 'split.json'}" in captured.out
        assert "9 image(s) added to the folder since the split" in captured.err
        assert (run / "split.json").read_bytes() == before
    finally:
        for name in ("ant", "bee", "cat"):
            for index in (40, 41, 42):
                (root / name / f"{index}.png").unlink()


def test_run_json_records_the_resolved_recipe(trained_run):
    record = json.loads((trained_run / "run.json").read_text())
    assert record["recipe"]["learning_rate"] == "recipe"
    assert record["recipe"]["epochs"] == "flag"
    assert record["options"]["learning_rate"] == 2e-3
    assert "activation='relu'" in record["arguments"]["model_option"]
