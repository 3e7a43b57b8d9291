"""Input pipelines: from `(uint8 image, label)` examples to batched model inputs.

Order matters for speed: per-example work (resizing, channel conversion) happens once,
before the cache, on uint8 images (4x less memory than float32); shuffling follows the
cache; normalisation and augmentation run on whole batches, vectorised, in parallel with
the training step (prefetch).
"""

from __future__ import annotations

import random

import tensorflow as tf

from apps.data.augment import AUGMENTATIONS, augment_batch
from apps.errors import require_positive_int

NORMALIZATIONS = ("unit", "symmetric", "none")
RESIZE_MODES = ("resize", "pad")
# The largest image (width x height) `predict` and the export's image-bytes signature
# decode: 40 megapixels (a 7300x5500 photo) is 120 MB as uint8 and ~0.5 GB in the
# float resize; a 20000x20000 "decompression bomb" PNG of a few bytes would be 1.2 GB.
MAX_PIXELS = 40_000_000
AUTOTUNE = tf.data.AUTOTUNE
IN_MEMORY_BYTES = 2 << 30


def pipeline(
    dataset: tf.data.Dataset,
    *,
    batch_size: int = 32,
    training: bool = False,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    resize_mode: str = "resize",
    normalization: str = "unit",
    augment=(),
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    cache: bool | str = True,
    drop_remainder: bool = False,
    start_epoch: int = 0,
    in_memory: bool | str = "auto",
) -> tf.data.Dataset:
    """Turns `(uint8 HxWxC image, label)` examples into batches for a model.

    Args:
        dataset: unbatched examples, as `apps.data.load` returns them.
        batch_size: examples per batch (per replica batching is the training core's
            business: pass the global batch here).
        training: an endless stream of epochs, each shuffled, augmented, and cut
            into full batches; train with `steps_per_epoch=epoch_steps(...)`.
            Epoch e's order depends only on `(seed, e)`, never on how many
            iterators were made before (tf.distribute and Keras make extra ones), so
            1 or N replicas, and a run resumed at `start_epoch`, see the same data.
        image_size: `(height, width)` the model expects; None keeps the dataset's.
        channels: 1 or 3 to convert grayscale <-> RGB; None keeps the dataset's.
        resize_mode: `"resize"` (bilinear) or `"pad"` (zero-pad or centre-crop, e.g.
            28 -> 32 px for LeNet-5, no interpolation).
        normalization: `"unit"` -> [0, 1], `"symmetric"` -> [-1, 1] (tanh GANs),
            `"none"` -> float32 in [0, 255].
        augment: names from `AUGMENTATIONS` (training only): horizontal flip, random
            translation (10 %), zoom (10 %), rotation (±10°), and crop with 4-pixel
            (1/8) padding — the augmentations of our sources.
        shuffle_buffer: examples in the shuffle buffer.
        seed: seeds the shuffle and the augmentations.
        cache: True caches in memory, a string caches to that file, False not at all.
        drop_remainder: evaluation only: drop the last partial batch.
        start_epoch: training only: the first epoch of the stream (resuming).
        in_memory: training only: `"auto"` holds a dataset of at most
            `IN_MEMORY_BYTES` in memory and draws each epoch as a full permutation,
            one gather per batch (much cheaper than a shuffle buffer on a CPU);
            larger ones stream through a `shuffle_buffer`. True insists, False never.

    Returns:
        A dataset of `(float32 images (B, H, W, C), int64 labels (B,))`.
    """
    _validate(batch_size, resize_mode, normalization, augment, shuffle_buffer)
    dataset = dataset.map(
        lambda image, label: (
            _fit_image(image, image_size, channels, resize_mode),
            tf.cast(label, tf.int64),
        ),
        num_parallel_calls=AUTOTUNE,
    )
    if cache:
        dataset = dataset.cache(cache if isinstance(cache, str) else "")
    if not training:
        dataset = dataset.batch(batch_size, drop_remainder=bool(drop_remainder))
        dataset = dataset.map(
            lambda images, labels: (_normalize(images, normalization), labels),
            num_parallel_calls=AUTOTUNE,
        )
        return dataset.prefetch(AUTOTUNE)
    augment = tuple(augment)
    base_seed = random.randrange(2**31) if seed is None else int(seed)
    arrays = _small_enough(dataset) if in_memory in ("auto", True) else None
    if in_memory is True and arrays is None:
        raise ValueError("in_memory=True needs a dataset of known, static size.")
    if arrays is not None:
        dataset = _in_memory_epochs(*arrays, batch_size, base_seed, start_epoch)
    else:
        dataset = _epochs(dataset, batch_size, shuffle_buffer, base_seed, start_epoch)
    dataset = dataset.map(
        lambda batch, key: (
            _augment(_normalize(batch[0], normalization), augment, key),
            batch[1],
        ),
        num_parallel_calls=AUTOTUNE,
    )
    return dataset.prefetch(AUTOTUNE)


def _small_enough(dataset):
    """The whole dataset as two tensors when it is small (<= IN_MEMORY_BYTES), else
    None. Reading it is the first epoch's decoding, done once, up front."""
    size = int(dataset.cardinality())
    shape = dataset.element_spec[0].shape
    if size < 0 or not shape.is_fully_defined():
        return None
    if (
        size * shape.num_elements() * dataset.element_spec[0].dtype.size
        > IN_MEMORY_BYTES
    ):
        return None
    images, labels = next(iter(dataset.batch(size)))
    return images, labels


def _in_memory_epochs(images, labels, batch_size, base_seed, start_epoch):
    """Epoch e is a full permutation drawn from (seed, e); a batch is one gather.

    Per-example tf.data work (shuffle buffer, batching) costs more than the training
    step of a small network on a CPU; here each batch is a single op.
    """
    count = int(labels.shape[0])
    steps = epoch_steps(count, batch_size)

    def one_epoch(epoch):
        epoch_seed = tf.constant(base_seed, tf.int64) * 1_000_003 + epoch
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([epoch_seed, tf.constant(0, tf.int64)])
        )
        indices = tf.reshape(order[: steps * batch_size], (steps, batch_size))
        keys = tf.stack(
            [tf.fill([steps], epoch_seed), tf.range(steps, dtype=tf.int64)], axis=1
        )
        return tf.data.Dataset.from_tensor_slices((indices, keys))

    return (
        tf.data.Dataset.range(start_epoch, 2**62)
        .flat_map(one_epoch)
        .map(
            lambda index, key: (
                (tf.gather(images, index), tf.gather(labels, index)),
                key,
            )
        )
    )


def _epochs(examples, batch_size, shuffle_buffer, base_seed, start_epoch):
    def one_epoch(epoch):
        # The shuffle's seed pair becomes (1, epoch seed): a tensor op seed next to a
        # global seed of 0 (`--seed 0`) trips TF's seed handling, and the epoch's
        # order should depend on our seed alone.
        tf.compat.v1.get_default_graph().seed = 1
        epoch_seed = tf.constant(base_seed, tf.int64) * 1_000_003 + epoch
        shuffled = examples.shuffle(
            shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False
        )
        batches = shuffled.batch(batch_size, drop_remainder=True)
        # Each batch's augmentation seed: (epoch seed, batch index).
        keys = tf.data.Dataset.range(2**62).map(
            lambda index: tf.stack([epoch_seed, index])
        )
        return tf.data.Dataset.zip(batches, keys)

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(one_epoch)


def epoch_steps(num_examples: int, batch_size: int) -> int:
    """Full batches per training epoch (the last partial batch is dropped)."""
    steps = num_examples // batch_size
    if steps < 1:
        raise ValueError(
            f"the training split has {num_examples} examples, fewer than one batch "
            f"of {batch_size}. Lower --batch-size."
        )
    return steps


def count_examples(dataset: tf.data.Dataset) -> int:
    """The number of examples, from the cardinality when known, else by counting."""
    known = int(dataset.cardinality())
    if known >= 0:
        return known
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def parse_augment(spec: str | None) -> tuple[str, ...]:
    """Parses a comma-separated `--augment` value ('flip,crop'; 'none' or '' = none)."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return ()
    names = tuple(part.strip().lower() for part in spec.split(",") if part.strip())
    _validate_augment(names)
    return names


def preprocess(
    images,
    *,
    image_size=None,
    channels=None,
    resize_mode="resize",
    normalization="unit",
):
    """The pipeline's deterministic preprocessing for uint8 images outside training
    (prediction, test-time augmentation, the export's image-bytes signature).

    `images`: one uint8 image (H, W, C) or a batch (B, H, W, C).
    """
    return _normalize(
        _fit_image(images, image_size, channels, resize_mode), normalization
    )


def spec_options(spec) -> dict:
    """The `preprocess` / `pipeline` arguments a preprocessing.json `spec` records
    (image size, channels, resize mode, normalisation): one reading for evaluation,
    prediction and every export."""
    height, width, channels = spec["input_shape"]
    return {
        "image_size": (height, width),
        "channels": channels,
        "resize_mode": spec["resize_mode"],
        "normalization": spec["normalization"],
    }


def decode_image_bytes(data, channels: int, max_pixels: int = MAX_PIXELS):
    """Decodes one encoded PNG, JPEG, GIF (first frame) or BMP into uint8
    (H, W, channels), in the graph; an image of more than `max_pixels` is refused
    from its header (InvalidArgumentError) before anything is decoded.

    GIFs decode to RGB only: with `channels=1` they are converted to grey as the
    pipeline converts RGB images.
    """
    width, height = encoded_image_size(data)
    too_big = tf.debugging.assert_less_equal(
        width * height,
        tf.constant(max_pixels, tf.int64),
        message=(
            f"the image is larger than {max_pixels:,} pixels (width x height), "
            "the limit of this model's serving signature; send a smaller image"
        ),
    )
    with tf.control_dependencies([too_big]):
        if channels != 1:
            return tf.io.decode_image(
                data, channels=channels, dtype=tf.uint8, expand_animations=False
            )
        return tf.cond(
            tf.equal(tf.strings.substr(data, 0, 3), b"GIF"),
            lambda: _convert_channels(
                tf.io.decode_image(data, channels=3, expand_animations=False), 1
            ),
            lambda: tf.io.decode_image(
                data, channels=1, dtype=tf.uint8, expand_animations=False
            ),
        )


def encoded_image_size(data):
    """(width, height), int64 scalars, of an encoded image read from its header:
    PNG (IHDR), GIF (logical screen), BMP (info header) and JPEG
    (`tf.image.extract_jpeg_shape`); (0, 0) for anything else or a short header,
    left for the decoder to refuse."""
    # Padding makes every header field readable, even of a few-byte string.
    padded = tf.strings.join([data, tf.constant(b"\0" * 32)])

    def number(start, size, big_endian):
        raw = tf.io.decode_raw(tf.strings.substr(padded, start, size), tf.uint8)
        raw = tf.cast(raw, tf.int64)
        order = tf.range(size, dtype=tf.int64)
        shifts = 8 * (size - 1 - order) if big_endian else 8 * order
        return tf.reduce_sum(tf.bitwise.left_shift(raw, shifts))

    def bmp_height():  # a signed 32-bit field, negative for top-down rows
        value = number(22, 4, False)
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return tf.stack([shape[1], shape[0]])

    magic = tf.strings.substr(padded, 0, 8)
    zero = tf.constant(0, tf.int64)
    size = tf.case(
        [
            (
                tf.equal(magic, b"\x89PNG\r\n\x1a\n"),
                lambda: tf.stack([number(16, 4, True), number(20, 4, True)]),
            ),
            (
                tf.equal(tf.strings.substr(magic, 0, 3), b"GIF"),
                lambda: tf.stack([number(6, 2, False), number(8, 2, False)]),
            ),
            (
                tf.equal(tf.strings.substr(magic, 0, 2), b"BM"),
                lambda: tf.stack([number(18, 4, False), bmp_height()]),
            ),
            (tf.equal(tf.strings.substr(magic, 0, 3), b"\xff\xd8\xff"), jpeg),
        ],
        default=lambda: tf.stack([zero, zero]),
    )
    return size[0], size[1]


def _fit_image(image, image_size, channels, resize_mode):
    image = tf.convert_to_tensor(image)
    if channels is not None:
        image = _convert_channels(image, channels)
    if image_size is None:
        return image
    height, width = image_size
    if resize_mode == "pad":
        return tf.image.resize_with_crop_or_pad(image, height, width)
    resized = tf.image.resize(image, (height, width), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def _convert_channels(image, channels):
    have = image.shape[-1]
    if have == channels or have is None:
        return image
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        return tf.cast(tf.round(tf.image.rgb_to_grayscale(image)), image.dtype)
    raise ValueError(f"cannot convert images with {have} channels to {channels}.")


def _normalize(images, normalization):
    images = tf.cast(images, tf.float32)
    if normalization == "unit":
        return images / 255.0
    if normalization == "symmetric":
        return images / 127.5 - 1.0
    return images


def _augment(images, augment, key):
    return augment_batch(images, augment, key) if augment else images


def _validate(batch_size, resize_mode, normalization, augment, shuffle_buffer):
    require_positive_int("batch_size", batch_size)
    if resize_mode not in RESIZE_MODES:
        raise ValueError(
            f"resize_mode must be one of {RESIZE_MODES}. "
            f"Received: resize_mode={resize_mode!r}"
        )
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {NORMALIZATIONS}. "
            f"Received: normalization={normalization!r}"
        )
    require_positive_int("shuffle_buffer", shuffle_buffer)
    _validate_augment(augment)


def _validate_augment(augment):
    unknown = [name for name in augment if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"augment must name some of {AUGMENTATIONS}. Received unknown: {unknown}"
        )
