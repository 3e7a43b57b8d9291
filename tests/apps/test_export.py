"""apps.export: signatures checked by saved_model_cli and in a fresh process, versions,
atomic publishing under SIGKILL, warm-up records, errors, and the CLI."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny import preprocessing_spec

import apps
from apps import classify, export
from apps.data.images import preprocess

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
SPEC = preprocessing_spec(CLASS_NAMES)
DENYLIST = {"ReadFile", "WriteFile", "PrintV2"}  # saved_model_cli's default
TOP_K = 5
# Shapes as `saved_model_cli show` prints them; -1 is the dynamic batch dimension.
OUTPUTS = {
    "probabilities": ("DT_FLOAT", "(-1, 10)"),
    "class_ids": ("DT_INT64", "(-1)"),
    "class_names": ("DT_STRING", "(-1)"),
    "top_k_probabilities": ("DT_FLOAT", "(-1, 5)"),
    "top_k_class_ids": ("DT_INT64", "(-1, 5)"),
    "top_k_class_names": ("DT_STRING", "(-1, 5)"),
}
SIGNATURES = {
    "serving_default": {
        "inputs": {"images": ("DT_FLOAT", "(-1, 28, 28, 1)")},
        "outputs": OUTPUTS,
    },
    "predict_images": {
        "inputs": {"image_bytes": ("DT_STRING", "(-1)")},
        "outputs": OUTPUTS,
    },
}

# Run in a fresh process: no apps import, only TensorFlow and the serving protos,
# as a server would see the export.
FRESH_PROCESS = r"""
import contextlib, io, json, pathlib, shutil, sys
import numpy as np
import tensorflow as tf
from tensorflow.python.tools import saved_model_cli
from tensorflow_serving.apis import prediction_log_pb2

export_path, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

def cli(name, *args):  # the `saved_model_cli` command, without another TF import
    sys.argv = ["saved_model_cli", *args]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            saved_model_cli.main()
        except SystemExit as exit:
            assert not exit.code, exit.code
    (work / name).write_text(out.getvalue())

cli("show.txt", "show", "--dir", str(export_path), "--all")
cli("scan.txt", "scan", "--dir", str(export_path), "--tag_set", "serve")
loaded = tf.saved_model.load(str(export_path))
images = np.load(work / "images.npy")
pngs = [p.read_bytes() for p in sorted(work.glob("*.png"))]
results = {}
for name, inputs in [("serving_default", {"images": tf.constant(images)}),
                     ("predict_images", {"image_bytes": tf.constant(pngs)})]:
    for key, value in loaded.signatures[name](**inputs).items():
        value = value.numpy()
        results[f"{name}.{key}"] = value.astype("S") if value.dtype == object else value

warmup = []
records = export_path / "assets.extra" / "tf_serving_warmup_requests"
for record in tf.data.TFRecordDataset(str(records)).as_numpy_iterator():
    request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
    warmup.append([request.model_spec.name, request.model_spec.signature_name,
                   int(outputs["class_ids"].shape[0])])

# The class names come from the asset: edit a copy's asset and the outputs follow.
copy = work / "copy"
shutil.copytree(export_path, copy)
names = (copy / "assets" / "class_names.txt").read_text().splitlines()
(copy / "assets" / "class_names.txt").write_text(
    "".join(name.upper() + "\n" for name in names))
edited = tf.saved_model.load(str(copy)).signatures["serving_default"]
results["edited.class_names"] = edited(images=tf.constant(images))[
    "class_names"].numpy().astype("S")

np.savez(work / "outputs.npz", **results)
(work / "summary.json").write_text(json.dumps(
    {"signatures": sorted(loaded.signatures), "warmup": warmup}))
"""

# Exports in a loop until killed: auto-numbered, then a forced replacement of 1, ...
# (waiting its turn while another exporter holds the name's lock).
EXPORT_LOOP = r"""
import itertools, sys, time
from apps import classify, export
model, spec = classify.load_classifier(sys.argv[1])
for round_ in itertools.count():
    print("exporting", flush=True)
    try:
        export.export_classifier(model, spec, name="lenet5", export_dir=sys.argv[2],
                                 version=1 if round_ % 2 else None,
                                 force=bool(round_ % 2))
    except export.ExportError as error:
        if "in use by pid" not in str(error):
            raise
        time.sleep(0.01)
"""


def _env(tmp):
    """Environment for child processes: quiet TF, scratch files under the test's dir."""
    (tmp / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp / "tmp")}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A LeNet-5 with random weights, saved as a training run would save it."""
    keras.utils.set_random_seed(0)
    model = apps.build("lenet5", classes=10)
    run = tmp_path_factory.mktemp("run")
    model.save(run / "model.keras")
    (run / classify.PREPROCESSING_FILE).write_text(json.dumps(SPEC))
    return model, run


@pytest.fixture(scope="module")
def exported(classifier, tmp_path_factory):
    model, _ = classifier
    export_dir = tmp_path_factory.mktemp("saved_models")
    return export.export_classifier(model, SPEC, name="lenet5", export_dir=export_dir)


@pytest.fixture(scope="module")
def test_images():
    """Float images for serving_default; uint8 images of several sizes as PNG bytes."""
    rng = np.random.default_rng(1)
    images = rng.random((3, 28, 28, 1), dtype=np.float32)
    pixels = [
        rng.integers(0, 256, size=shape, dtype=np.uint8)
        for shape in [(28, 28, 1), (40, 30, 1), (17, 50, 1), (28, 28, 1)]
    ]
    return images, pixels


@pytest.fixture(scope="module")
def fresh_process(exported, test_images, tmp_path_factory):
    """Runs FRESH_PROCESS on the export: `saved_model_cli show --all` and `scan`, then
    `tf.saved_model.load` and both signatures on the test images."""
    work = tmp_path_factory.mktemp("fresh")
    images, pixels = test_images
    np.save(work / "images.npy", images)
    for index, image in enumerate(pixels):
        (work / f"{index}.png").write_bytes(tf.io.encode_png(image).numpy())
    process = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(exported), str(work)],
        capture_output=True,
        text=True,
        env=_env(work),
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return {
        "show": (work / "show.txt").read_text(),
        "scan": (work / "scan.txt").read_text(),
        "outputs": dict(np.load(work / "outputs.npz")),
        "summary": json.loads((work / "summary.json").read_text()),
    }


def _parse_show(text):
    """saved_model_cli show --all -> {signature: {"inputs"/"outputs": {name: (dtype,
    shape)}}}."""
    parsed = {}
    for block in text.split("signature_def['")[1:]:
        name = block.split("'", 1)[0]
        tensors = re.findall(
            r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+"
            r"dtype: (\w+)\s+shape: (\S+(?: \S+)*?)\n",
            block,
        )
        entry = parsed.setdefault(name, {"inputs": {}, "outputs": {}})
        for kind, tensor, dtype, shape in tensors:
            entry[kind][tensor] = (dtype, shape)
    parsed.pop("__saved_model_init_op", None)
    return parsed


def _keras_probabilities(model, images):
    return np.asarray(model(images, training=False))


# The export's contents


def test_export_layout(exported):
    assert exported.name == "1"
    assert sorted(p.name for p in exported.parent.iterdir()) == ["1"]  # no scratch
    for relative in (
        "saved_model.pb",
        "variables/variables.index",
        "assets/class_names.txt",
        "assets.extra/preprocessing.json",
        "assets.extra/tf_serving_warmup_requests",
    ):
        assert (exported / relative).is_file(), relative
    names = (exported / "assets" / "class_names.txt").read_text().splitlines()
    assert names == CLASS_NAMES
    spec = json.loads((exported / "assets.extra" / "preprocessing.json").read_text())
    assert spec["normalization"] == "unit" and spec["input_shape"] == [28, 28, 1]


def test_saved_model_cli_shows_signatures_dtypes_and_shapes(fresh_process):
    assert _parse_show(fresh_process["show"]) == SIGNATURES
    assert fresh_process["summary"]["signatures"] == sorted(SIGNATURES)


def test_no_denylisted_ops(fresh_process, exported):
    scan = fresh_process["scan"]
    assert "does not contain the default denylisted ops" in scan
    assert "contains the following denylisted ops" not in scan
    # saved_model_cli only reads the graph and its direct functions; the map_fn body
    # (decode, resize) is nested deeper, so look at every function too.
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel.FromString(
        (exported / "saved_model.pb").read_bytes()
    )
    graph = saved_model.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    ops |= {
        node.op for function in graph.library.function for node in function.node_def
    }
    assert "DecodeImage" in ops and "LookupTableFindV2" in ops
    assert not ops & DENYLIST


def test_fresh_process_serving_default_matches_keras(
    fresh_process, classifier, test_images
):
    model, _ = classifier
    images, _ = test_images
    outputs = fresh_process["outputs"]
    expected = _keras_probabilities(model, images)
    _check_outputs(outputs, "serving_default", expected)


def test_fresh_process_image_bytes_match_keras_on_the_same_preprocessing(
    fresh_process, classifier, test_images
):
    model, _ = classifier
    _, pixels = test_images
    batch = np.concatenate(
        [
            preprocess(
                image[None],
                image_size=(28, 28),
                channels=1,
                resize_mode="resize",
                normalization="unit",
            )
            for image in pixels
        ]
    )
    expected = _keras_probabilities(model, batch)
    _check_outputs(fresh_process["outputs"], "predict_images", expected)


def _check_outputs(outputs, signature, expected):
    def get(key):
        return outputs[f"{signature}.{key}"]

    np.testing.assert_allclose(get("probabilities"), expected, atol=1e-5)
    np.testing.assert_array_equal(get("class_ids"), expected.argmax(axis=1))
    assert get("class_ids").dtype == np.int64
    assert [name.decode() for name in get("class_names")] == [
        CLASS_NAMES[i] for i in expected.argmax(axis=1)
    ]
    best = np.argsort(-expected, axis=1, kind="stable")[:, :TOP_K]
    np.testing.assert_array_equal(get("top_k_class_ids"), best)
    np.testing.assert_allclose(
        get("top_k_probabilities"),
        np.take_along_axis(expected, best, axis=1),
        atol=1e-5,
    )
    assert get("top_k_class_names")[0, 0].decode() == CLASS_NAMES[best[0, 0]]


def test_class_names_are_read_from_the_asset(fresh_process):
    outputs = fresh_process["outputs"]
    assert [name.decode() for name in outputs["edited.class_names"]] == [
        name.decode().upper() for name in outputs["serving_default.class_names"]
    ]


def test_warmup_records_cover_both_signatures_and_run(fresh_process):
    warmup = fresh_process["summary"]["warmup"]
    assert [signature for _, signature, _ in warmup] == [
        "serving_default",
        "serving_default",
        "predict_images",
        "predict_images",
    ]
    assert {name for name, _, _ in warmup} == {"lenet5"}
    assert [batch for _, _, batch in warmup] == [1, 4, 1, 2]


def test_only_the_first_output_is_served_with_rgb_pad_symmetric(tmp_path):
    """A GoogLeNet-like model (main head first, an auxiliary head after it), RGB
    input, resize_mode="pad" and normalization="symmetric"."""
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Flatten()(inputs)
    main = keras.layers.Dense(4, activation="softmax", name="main")(features)
    aux = keras.layers.Dense(4, activation="softmax", name="aux")(features)
    model = keras.Model(inputs, [main, aux])
    spec = {
        "input_shape": [16, 16, 3],
        "channels": 3,
        "resize_mode": "pad",
        "normalization": "symmetric",
        "class_names": list("abcd"),
    }
    path = export.export_classifier(
        model, spec, name="two_heads", export_dir=tmp_path, top_k=10
    )
    loaded = tf.saved_model.load(str(path))
    pixels = np.random.default_rng(2).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    outputs = loaded.signatures["predict_images"](
        image_bytes=tf.constant([tf.io.encode_png(pixels).numpy()])
    )
    batch = preprocess(
        pixels[None],
        image_size=(16, 16),
        channels=3,
        resize_mode="pad",
        normalization="symmetric",
    )
    expected = np.asarray(model(batch, training=False)[0])
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    assert outputs["top_k_class_names"].shape == (1, 4)  # top_k capped at classes


def test_image_bytes_read_gifs_and_refuse_huge_images_undecoded(exported, huge_png):
    """A GIF (TensorFlow decodes GIFs to RGB only) serves as the same PNG does for
    a grey model; a PNG whose header claims 400 megapixels fails the request."""
    import io

    from PIL import Image

    serve = tf.saved_model.load(str(exported)).signatures["predict_images"]
    pixels = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    encoded = []
    for image_format in ("PNG", "GIF"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, image_format)
        encoded.append(buffer.getvalue())
    probabilities = serve(image_bytes=tf.constant(encoded))["probabilities"]
    np.testing.assert_allclose(probabilities[1], probabilities[0], atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="larger than 40,000,000"):
        serve(image_bytes=tf.constant([huge_png.read_bytes()]))


# Versions


def test_versions_and_next_version(tmp_path):
    for name in ("1", "7", "junk", "8.bak", ".tmp-9-1-ab"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file is not a version")
    assert export.versions(tmp_path) == [1, 7]
    assert export.next_version(tmp_path) == 8
    assert export.next_version(tmp_path / "missing") == 1


def test_next_version_is_one_after_the_highest(classifier, tmp_path):
    model, _ = classifier
    base = tmp_path / "lenet5"
    for name in ("2", "7", "junk"):
        (base / name).mkdir(parents=True)
    target = export.export_classifier(model, SPEC, name="lenet5", export_dir=tmp_path)
    assert target == base / "8" and (target / "saved_model.pb").is_file()
    target = export.export_classifier(
        model, SPEC, name="lenet5", export_dir=tmp_path, version="12"
    )
    assert target == base / "12"
    assert sorted(p.name for p in base.iterdir()) == ["12", "2", "7", "8", "junk"]


def test_existing_version_is_never_overwritten(classifier, tmp_path):
    model, _ = classifier
    version = tmp_path / "lenet5" / "3"
    version.mkdir(parents=True)
    (version / "marker").write_text("old")
    with pytest.raises(export.ExportError, match="version 3 of 'lenet5' exists"):
        export.export_classifier(
            model, SPEC, name="lenet5", export_dir=tmp_path, version=3
        )
    assert [p.name for p in version.iterdir()] == ["marker"]
    assert sorted(p.name for p in version.parent.iterdir()) == ["3"]


def test_force_replaces_a_version(classifier, tmp_path):
    model, _ = classifier
    version = tmp_path / "lenet5" / "3"
    version.mkdir(parents=True)
    (version / "marker").write_text("old")
    target = export.export_classifier(
        model, SPEC, name="lenet5", export_dir=tmp_path, version="3", force=True
    )
    assert target == version and not (version / "marker").exists()
    assert "serving_default" in tf.saved_model.load(str(version)).signatures
    assert sorted(p.name for p in version.parent.iterdir()) == ["3"]  # old one gone


def test_failed_export_leaves_nothing_behind(classifier, tmp_path, monkeypatch):
    model, _ = classifier

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export.signatures, "write_warmup_requests", broken)
    with pytest.raises(OSError, match="disk full"):
        export.export_classifier(model, SPEC, name="lenet5", export_dir=tmp_path)
    assert list((tmp_path / "lenet5").iterdir()) == []


def test_stale_scratch_of_dead_exports_is_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = os.getpid()
    entries = {
        f".tmp-4-{dead.pid}-abc123": "removed",
        f".tmp-5-{alive}-abc123": "kept",  # a live export's staging
        f".old-6-{dead.pid}-abc123": "restored",  # killed mid --force: 6 missing
        f".old-7-{dead.pid}-abc123": "removed",  # 7 was swapped in already
    }
    for name in entries:
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_text(name)
    (tmp_path / "7").mkdir()
    removed = export.remove_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        name for name, fate in entries.items() if fate == "removed"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".tmp-5-{alive}-abc123",
        "6",
        "7",
    ]
    assert (tmp_path / "6" / "saved_model.pb").read_text().startswith(".old-6-")


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "fallback"])
def test_publish_and_swap_with_and_without_renameat2(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(export.publish, "_renameat2", lambda *args: False)
    for name, content in [("new", "new"), ("newer", "newer"), ("1", "old")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_text(content)
    with pytest.raises(FileExistsError):
        export.publish._rename_no_replace(tmp_path / "new", tmp_path / "1")
    export.publish._rename_no_replace(tmp_path / "new", tmp_path / "2")
    export.publish._swap(tmp_path / "newer", tmp_path / "1", tmp_path, 1)
    assert (tmp_path / "1" / "file").read_text() == "newer"
    assert (tmp_path / "2" / "file").read_text() == "new"
    # after an exchange the old version waits in the staging path for its deletion
    left = {"newer"} if exchange else set()
    assert {p.name for p in tmp_path.iterdir()} == {"1", "2"} | left


@pytest.mark.parametrize("rounds", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_killed_exports_never_leave_a_broken_version(classifier, tmp_path, rounds):
    """Three exporters share a base path (taking turns through the name's lock,
    numbering versions and swapping version 1 with force) and are SIGKILLed at
    random moments; every integer-named directory left must load and serve, and the
    next export clears the debris (a dead holder's lock is released)."""
    model, run = classifier
    export_dir = tmp_path / "saved_models"
    seed = int(os.environ.get("EXPORT_KILL_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    for round_ in range(rounds):
        log = tmp_path / f"round{round_}.log"
        with open(log, "w") as errors:
            children = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        EXPORT_LOOP,
                        str(run / "model.keras"),
                        str(export_dir),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    text=True,
                    env=_env(tmp_path),
                )
                for _ in range(3)
            ]
            kills = []
            for child in children:
                line = child.stdout.readline()  # the first export begins
                assert line == "exporting\n", log.read_text()[-3000:]
                kills.append((time.monotonic() + rng.uniform(0.0, 5.0), child))
            for moment, child in sorted(kills, key=lambda kill: kill[0]):
                time.sleep(max(0.0, moment - time.monotonic()))
                child.send_signal(signal.SIGKILL)
                child.wait()  # reaped: its pid is dead for remove_stale
                child.stdout.close()
                assert child.returncode == -signal.SIGKILL, log.read_text()[-3000:]
        base = export_dir / "lenet5"
        for version in export.versions(base):
            loaded = tf.saved_model.load(str(base / str(version)))
            outputs = loaded.signatures["serving_default"](
                images=tf.zeros((1, 28, 28, 1))
            )
            assert outputs["class_names"].shape == (1,), f"seed {seed}"

    target = export.export_classifier(model, SPEC, name="lenet5", export_dir=export_dir)
    leftovers = [p.name for p in target.parent.iterdir() if not p.name.isdigit()]
    assert leftovers == [], f"seed {seed}"


# Bad input


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "feature extractor"}, r"is not a classifier: its \(first\) output"),
        (
            {"spec": {k: v for k, v in SPEC.items() if k != "class_names"}},
            r"spec lacks \['class_names'\]",
        ),
        (
            {"spec": {**SPEC, "class_names": CLASS_NAMES[:9]}},
            "has 10 classes but the spec names 9",
        ),
        ({"spec": {**SPEC, "class_names": ["a\nb"] * 10}}, "one-line"),
        (
            {"spec": {**SPEC, "input_shape": [32, 32, 1]}},
            r"input_shape \[32, 32, 1\] does not fit",
        ),
        ({"spec": {**SPEC, "normalization": "imagenet"}}, "normalization must be"),
        ({"version": "v2"}, "version must be a positive integer"),
        ({"version": "1.5"}, "version must be a positive integer"),
        ({"version": "0"}, "version must be a positive integer"),
        ({"version": -1}, "version must be a positive integer"),
        ({"version": True}, "version must be a positive integer"),
        ({"name": "../lenet5"}, "name must be"),
        ({"name": "a/b"}, "name must be"),
        ({"name": ".hidden"}, "name must be"),
        ({"name": ""}, "name must be"),
        ({"top_k": 0}, "top_k must be a positive integer"),
        ({"max_pixels": 0}, "max_pixels must be a positive integer"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    classifier, tmp_path, change, message
):
    model, _ = classifier
    arguments = {
        "model": model,
        "spec": SPEC,
        "name": "lenet5",
        "version": None,
        **change,
    }
    if arguments["model"] == "feature extractor":
        arguments["model"] = apps.build("lenet5", include_top=False)
    model, spec = arguments.pop("model"), arguments.pop("spec")
    with pytest.raises(export.ExportError, match=message):
        export.export_classifier(model, spec, export_dir=tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


def test_export_signatures_serves_any_functions(tmp_path):
    """The shared machinery with a GAN-like generator (latent -> uint8 image) and a
    translator-like string -> string signature."""
    generator = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Reshape((4, 4, 1)),
        ]
    )

    @tf.function(input_signature=[tf.TensorSpec((None, 8), tf.float32)])
    def generate(latent):
        images = generator(latent, training=False)
        return {"images": tf.cast(tf.round((images + 1) * 127.5), tf.uint8)}

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def translate(text):
        return {"translation": tf.strings.upper(text)}

    path = export.export_signatures(
        {"generate": generate, "translate": translate},
        name="toy",
        export_dir=tmp_path,
        track=[generator],
        warmup={
            "generate": [{"latent": np.zeros((2, 8), np.float32)}],
            "translate": [{"text": np.array([b"hello"], dtype=object)}],
        },
        extra_assets={"README.txt": "toy"},
    )
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == ["generate", "serving_default", "translate"]
    images = loaded.signatures["serving_default"](latent=tf.zeros((3, 8)))["images"]
    assert images.dtype == tf.uint8 and images.shape == (3, 4, 4, 1)
    text = loaded.signatures["translate"](text=tf.constant(["abc"]))["translation"]
    assert text.numpy().tolist() == [b"ABC"]
    records = export.read_warmup_requests(path / "assets.extra" / export.WARMUP_FILE)
    assert [signature for signature, _ in records] == ["generate", "translate"]
    assert (path / "assets.extra" / "README.txt").read_text() == "toy"


@tf.function
def _untyped(x):
    return {"y": x}


@tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
def _echo(text):
    return {"text": text}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"signatures": {"serving_default": _untyped}}, "input_signature"),
        ({"signatures": {}}, "at least one tf.function"),
        ({"signatures": {"not-an-identifier": _echo}}, "Python identifiers"),
        ({"warmup": {"other": []}}, r"warmup names unknown signatures \['other'\]"),
        ({"warmup": {"echo": [{"txt": [b"a"]}]}}, r"exactly the inputs \['text'\]"),
        ({"extra_assets": {"../x": ""}}, "plain file names"),
    ],
)
def test_export_signatures_bad_arguments(tmp_path, arguments, message):
    arguments = {"signatures": {"echo": _echo}, **arguments}
    with pytest.raises(export.ExportError, match=message):
        export.export_signatures(name="m", export_dir=tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()


# The command line


def test_cli_export(classifier, tmp_path, capsys):
    _, run = classifier
    argv = [
        "export",
        "--model-path",
        str(run / "model.keras"),
        "--name",
        "lenet5",
        "--export-dir",
        str(tmp_path),
    ]
    assert classify.main(argv) == 0
    assert f"to {tmp_path / 'lenet5' / '1'}" in capsys.readouterr().out
    assert classify.main([*argv, "--version", "1"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert classify.main([*argv, "--version", "one"]) == 2
    assert "version must be a positive integer" in capsys.readouterr().err
    missing = ["export", "--model-path", str(tmp_path / "no.keras"), "--name", "x"]
    assert classify.main(missing) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "lenet5").iterdir()) == ["1"]
