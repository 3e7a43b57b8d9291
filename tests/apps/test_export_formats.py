"""apps.export.formats: ONNX and LiteRT files verified in their own runtimes, through
the export commands; bad requests refused before anything is done; nothing
published when the file disagrees or the export is killed; the export name lock."""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from tiny import preprocessing_spec

import apps
from apps import classify, cli, export, generate, translate
from apps.export import formats

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

CLASS_NAMES = [f"class {i}" for i in range(10)]
SPEC = preprocessing_spec(CLASS_NAMES)
FEW = ["--verify-examples", "16"]  # keeps the runtimes' share of the tests small

# Exports, then stalls where the staged file is verified, until it is SIGKILLed.
KILLED_EXPORT = r"""
import sys, time
from apps import classify
from apps.export import formats

def stall(*args, **kwargs):
    print("staged", flush=True)
    time.sleep(600)

formats.verify = stall
classify.main(["export", "--model-path", sys.argv[1], "--name", "m",
               "--export-dir", sys.argv[2], "--format", sys.argv[3]])
"""
# Holds an export name's lock as apps.export.export_lock does (flock, our pid).
HOLD_LOCK = r"""
import fcntl, os, sys, time
lock = open(sys.argv[1], "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
lock.seek(0); lock.truncate(); lock.write(str(os.getpid())); lock.flush()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def idx_files():
    """The Fashion-MNIST IDX files the exports verify on (read directly, no tfds)."""
    from apps.data import datasets

    if datasets.local_idx_dir("fashion_mnist") is None:
        pytest.fail(
            "Fashion-MNIST IDX files are missing: apt-get install "
            "dataset-fashion-mnist or set FASHION_MNIST_DIR."
        )


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """A LeNet-5 with random weights, saved as a classify training run saves it."""
    keras.utils.set_random_seed(0)
    run = tmp_path_factory.mktemp("lenet_run")
    apps.build("lenet5", classes=10).save(run / "model.keras")
    (run / classify.PREPROCESSING_FILE).write_text(json.dumps(SPEC))
    return run / "model.keras"


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    """A small DCGAN (TransposedConv2D generator), saved as generate train saves it."""
    model = apps.build("dcgan", width=8, latent_dim=8, seed=0)
    model.compile()
    path = tmp_path_factory.mktemp("gan_run") / "model.keras"
    model.save(path)
    return path


def _export(main, model_path, export_dir, *flags, name="m"):
    argv = ["export", "--model-path", str(model_path), "--name", name]
    return main([*argv, "--export-dir", str(export_dir), *flags])


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# Verified files, through the commands


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_classifier_file_is_verified_on_test_images_and_published(
    lenet_run, tmp_path, capsys, idx_files, fmt
):
    code = _export(classify.main, lenet_run, tmp_path, "--format", fmt, *FEW)
    out = capsys.readouterr().out
    assert code == 0, out
    version = tmp_path / "m" / fmt / "1"
    assert f"to {version}" in out
    assert "on 16 fashion_mnist test images: max abs difference from Keras" in out
    assert "top-1 agreement 100.00 %" in out
    filename = formats.MODEL_FILES[fmt]
    assert sorted(p.name for p in version.iterdir()) == sorted(
        [filename, "class_names.txt", "preprocessing.json", "export.json"]
    )
    assert (version / "class_names.txt").read_text().splitlines() == CLASS_NAMES
    record = json.loads((version / "export.json").read_text())
    assert record["verification"]["max_abs_diff"] <= 1e-4
    assert record["verification"]["examples"] == 16
    # the file itself, in its runtime, on other images: the Keras model's numbers
    model = keras.saving.load_model(lenet_run)
    images = np.random.default_rng(3).random((5, 28, 28, 1), dtype=np.float32)
    run = formats.runtime_session(fmt, version / filename)
    np.testing.assert_allclose(
        run({"images": images})["probabilities"], model(images), atol=1e-4
    )
    # the TF Serving base path gained no version
    assert [p.name for p in (tmp_path / "m").iterdir()] == [fmt]


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_generator_file_of_transposed_convolutions(gan_run, tmp_path, capsys, fmt):
    """LiteRT's TRANSPOSE_CONV knows only SAME/VALID padding: the layer passes those
    names where they mean its explicit padding (the old code failed to convert)."""
    code = _export(generate.main, gan_run, tmp_path, "--format", fmt, *FEW)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "on 16 fixed latent vectors (seed 0)" in out
    version = tmp_path / "m" / fmt / "1"
    gan = generate.load_gan(gan_run)
    latent = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    run = formats.runtime_session(fmt, version / formats.MODEL_FILES[fmt])
    images = run({"latent": latent})["images"]
    assert images.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(images, gan.generator(latent), atol=1e-4)


def test_grouped_convolutions_and_exact_gelu_convert_to_onnx(tmp_path):
    """Keras compiles grouped convolutions (AlexNet's towers) with XLA on CPUs, and
    its exact GELU (ViT) uses Erfc, which ONNX lacks: tf2onnx alone leaves both
    unconverted."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 1)(inputs)
    x = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, activation="gelu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    spec = {**SPEC, "input_shape": [8, 8, 1], "class_names": ["a", "b", "c"]}
    spec.pop("dataset")
    target, check = formats.export_classifier_file(
        model, spec, "onnx", name="grouped", export_dir=tmp_path, examples=8
    )
    assert check.max_abs_diff <= 1e-4 and check.source.startswith("8 random images")
    assert (target / "model.onnx").is_file()


def test_first_output_in_float32_of_a_mixed_precision_model(tmp_path):
    """GoogLeNet-like auxiliary heads are dropped; bfloat16 compute is exported as
    float32 (same weights), and compared with the original too."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))
        main = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
        aux = keras.layers.Dense(4, activation="softmax", dtype="float32")(x)
        model = keras.Model(inputs, [main, aux])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    spec = {**SPEC, "input_shape": [8, 8, 1], "class_names": ["a", "b", "c"]}
    spec.pop("dataset")
    target, check = formats.export_classifier_file(
        model, spec, "litert", name="mixed", export_dir=tmp_path, examples=8
    )
    assert check.max_abs_diff <= 1e-4
    assert check.mixed_precision["policy"] == "mixed_bfloat16"
    assert any("against the mixed_bfloat16 Keras model" in x for x in check.lines())
    run = formats.runtime_session("litert", target / "model.tflite")
    outputs = run({"images": np.zeros((2, 8, 8, 1), np.float32)})
    assert list(outputs) == ["probabilities"]
    assert outputs["probabilities"].shape == (2, 3)


# Nothing published unless verified; killed exports


def test_disagreeing_file_is_not_published(lenet_run, tmp_path, capsys, monkeypatch):
    assert _export(classify.main, lenet_run, tmp_path, "--format", "onnx", *FEW) == 0
    first = (tmp_path / "m" / "onnx" / "1" / "model.onnx").read_bytes()
    real = formats.runtime_session

    def off_by_a_little(*args, **kwargs):
        run = real(*args, **kwargs)
        return lambda inputs: {k: v + 1e-3 for k, v in run(inputs).items()}

    monkeypatch.setattr(formats, "runtime_session", off_by_a_little)
    capsys.readouterr()
    code = _export(classify.main, lenet_run, tmp_path, "--format", "onnx", *FEW)
    captured = capsys.readouterr()
    assert code == 1
    assert "differ from Keras by up to 1.00e-03" in captured.err
    assert "over the tolerance 1e-04; nothing was published" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err + captured.out
    assert export.versions(tmp_path / "m" / "onnx") == [1]
    assert (tmp_path / "m" / "onnx" / "1" / "model.onnx").read_bytes() == first
    assert [p.name for p in (tmp_path / "m" / "onnx").iterdir()] == ["1"]


def test_killed_export_leaves_no_version_and_the_old_ones(lenet_run, tmp_path):
    assert _export(classify.main, lenet_run, tmp_path, "--format", "onnx", *FEW) == 0
    base = tmp_path / "m" / "onnx"
    first = (base / "1" / "model.onnx").read_bytes()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_EXPORT, str(lenet_run), str(tmp_path), "onnx"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines = iter(child.stdout.readline, "")  # "converting ...", then "staged"
        assert "staged\n" in lines
        staged = [p for p in base.iterdir() if p.name.startswith(".tmp-")]
        assert len(staged) == 1 and (staged[0] / "model.onnx").is_file()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert export.versions(base) == [1]
    assert (base / "1" / "model.onnx").read_bytes() == first
    # the next export removes the dead one's staging and takes the next number
    assert _export(classify.main, lenet_run, tmp_path, "--format", "onnx", *FEW) == 0
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


# Refused before anything is done


def test_unknown_format_is_an_argparse_choice(lenet_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _export(classify.main, lenet_run, tmp_path, "--format", "tflite")
    assert exit_.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    assert cli.EXPORT_FORMATS == formats.FORMATS
    assert cli.QUANTIZATIONS == formats.QUANTIZATIONS
    with pytest.raises(export.ExportError, match="format must be one of"):
        formats.check_request("tflite")


@pytest.mark.parametrize(
    "main, fmt, module, package",
    [
        (classify.main, "onnx", "onnxruntime", "onnxruntime"),
        (generate.main, "litert", "ai_edge_litert", "ai-edge-litert"),
    ],
)
def test_missing_runtime_names_the_extra(
    lenet_run, gan_run, tmp_path, capsys, monkeypatch, main, fmt, module, package
):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    model_path = lenet_run if main is classify.main else gan_run
    out = tmp_path / "out"
    assert _export(main, model_path, out, "--format", fmt) == 2
    err = capsys.readouterr().err
    assert f"needs {package}, not installed here" in err
    assert 'pip install -e ".[export]"' in err
    assert not out.exists()


@pytest.mark.parametrize(
    "main, flags, message",
    [
        (classify.main, ["--format", "onnx", "--quantize", "int8"], "quantize"),
        (classify.main, ["--tolerance", "1e-3"], "--tolerance check an ONNX"),
        (classify.main, ["--format", "onnx", "--tolerance", "0"], "positive"),
        (classify.main, ["--format", "onnx", "--verify-examples", "0"], "positive"),
        (classify.main, ["--format", "onnx", "--version", "v1"], "version must"),
        (classify.main, ["--format", "onnx", "--name", "../x"], "name must"),
        (generate.main, ["--format", "onnx", "--max-accuracy-drop", "2"], "has none"),
        (translate.main, ["--format", "onnx"], "cannot be held in ONNX"),
        (translate.main, ["--format", "litert"], "cannot be held in LiteRT"),
    ],
)
def test_bad_requests_are_refused_before_the_model_loads(
    tmp_path, capsys, main, flags, message
):
    """The model path does not exist: the request is refused before it is read."""
    out = tmp_path / "out"
    argv = ["export", "--model-path", str(tmp_path / "none.keras"), "--name", "m"]
    assert main([*argv, "--export-dir", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "does not exist" not in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["classify", "generate", "translate"])
@pytest.mark.parametrize("nested", [False, True], ids=["file", "under-a-file"])
def test_export_dir_that_is_a_file(
    lenet_run, gan_run, tmp_path, capsys, command, nested
):
    main, model_path = {
        "classify": (classify.main, lenet_run),
        "generate": (generate.main, gan_run),
        "translate": (translate.main, tmp_path / "never-read"),
    }[command]
    blocker = tmp_path / "saved_models"
    blocker.write_text("mine")
    export_dir = blocker / "sub" if nested else blocker
    assert _export(main, model_path, export_dir) == 2
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a directory" in err or "it is a file" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert blocker.read_text() == "mine"


# The export name lock


def test_an_export_name_in_use_fails_at_once(lenet_run, gan_run, tmp_path, capsys):
    with export.export_lock(tmp_path, "m") as lock:  # what another exporter holds
        assert lock == tmp_path / ".m.lock"
        assert lock.read_text() == str(os.getpid())
        with export.export_lock(tmp_path, "m"):  # re-entrant within a process
            pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / ".m.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        for main, model_path in [(classify.main, lenet_run), (generate.main, gan_run)]:
            assert _export(main, model_path, tmp_path, "--format", "onnx") == 2
            err = capsys.readouterr().err
            assert f"export name 'm' in {tmp_path} is in use by pid {holder.pid}" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock"]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# Every hard case, verified (slow: full-size layers)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
@pytest.mark.parametrize(
    "name, options",
    [
        ("alexnet", {"input_shape": (28, 28, 1)}),  # LRN, grouped convolutions
        ("googlenet", {"input_shape": (32, 32, 1), "aux_classifiers": True}),
        ("resnet18", {"input_shape": (32, 32, 3), "small_inputs": True}),
    ],
)
def test_hard_classifiers(tmp_path, name, options, fmt):
    keras.utils.set_random_seed(0)
    model = apps.build(name, classes=10, **options)
    shape = list(options["input_shape"])
    spec = {**SPEC, "input_shape": shape, "channels": shape[-1], "model": name}
    _, check = formats.export_classifier_file(
        model, spec, fmt, name=name, export_dir=tmp_path, examples=64
    )
    assert check.max_abs_diff <= 1e-4 and check.top1_agreement == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_conditional_generator(tmp_path, fmt):
    gan = apps.build("cdcgan", width=8, latent_dim=8, seed=0)
    target, check = formats.export_generator_file(
        gan, fmt, name="cdcgan", export_dir=tmp_path, examples=20
    )
    assert check.max_abs_diff <= 1e-4
    run = formats.runtime_session(fmt, target / formats.MODEL_FILES[fmt])
    latent = np.zeros((2, 8), np.float32)
    classes = np.array([0, 9], np.int32)
    images = run({"latent": latent, "class_ids": classes})["images"]
    np.testing.assert_allclose(images, gan.generator([latent, classes]), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["float16", "int8"])
def test_quantized_litert(lenet_run, tmp_path, capsys, idx_files, quantize):
    code = _export(
        classify.main,
        lenet_run,
        tmp_path,
        "--format",
        "litert",
        "--quantize",
        quantize,
        "--verify-examples",
        "256",
        "--max-accuracy-drop",
        "5",  # random weights: near-uniform probabilities
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "accuracy on those images: Keras float" in out
    assert f"LiteRT ({quantize})" in out
    record = json.loads((tmp_path / "m" / "litert" / "1" / "export.json").read_text())
    assert record["quantization"] == quantize
    if quantize == "int8":
        assert record["calibration"] == "256 fashion_mnist train images"


def test_litert_says_nothing_of_its_delegate(lenet_run, tmp_path, capfd, idx_files):
    # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to file
    # descriptor 2 on a runner's first call; first contact stays quiet.
    assert _export(classify.main, lenet_run, tmp_path, "--format", "litert", *FEW) == 0
    assert "XNNPACK" not in capfd.readouterr().err
