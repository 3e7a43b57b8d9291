"""apps.data.images: the input pipeline and its augmentations."""

import numpy as np
import pytest
import tensorflow as tf

from apps.data import images, pipeline


def _examples(count=20, size=28, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, size, size, channels), np.uint8)
    labels = np.arange(count)  # distinct, so that orders can be compared
    return tf.data.Dataset.from_tensor_slices((pixels, labels)), pixels


def test_batches_are_normalised_float32():
    dataset, pixels = _examples()
    batch, labels = next(iter(pipeline(dataset, batch_size=8)))
    assert batch.shape == (8, 28, 28, 1) and batch.dtype == tf.float32
    assert labels.dtype == tf.int64
    np.testing.assert_allclose(batch.numpy(), pixels[:8] / 255.0, atol=1e-6)
    symmetric, _ = next(
        iter(pipeline(dataset, batch_size=8, normalization="symmetric"))
    )
    np.testing.assert_allclose(symmetric.numpy(), pixels[:8] / 127.5 - 1, atol=1e-6)


@pytest.mark.parametrize("in_memory", [True, False])
def test_training_is_an_endless_stream_of_full_batches(in_memory):
    dataset, _ = _examples(count=20)
    assert [len(y) for _, y in pipeline(dataset, batch_size=8)] == [8, 8, 4]
    training = pipeline(
        dataset, batch_size=8, training=True, seed=0, in_memory=in_memory
    )
    epochs = [labels.numpy() for _, labels in training.take(6)]
    assert all(len(labels) == 8 for labels in epochs)
    # 2 full batches per epoch; each epoch draws 16 distinct examples of the 20.
    for first, second in zip(epochs[::2], epochs[1::2], strict=True):
        assert len(set(first.tolist() + second.tolist())) == 16
    assert images.epoch_steps(20, 8) == 2
    with pytest.raises(ValueError, match="fewer than one batch"):
        images.epoch_steps(5, 8)


def test_in_memory_needs_a_known_size():
    dataset, _ = _examples(count=20)
    unknown = dataset.filter(lambda image, label: label < 10)
    with pytest.raises(ValueError, match="known, static size"):
        pipeline(unknown, batch_size=4, training=True, in_memory=True)
    assert next(iter(pipeline(unknown, batch_size=4, training=True)))[0].shape[0] == 4


def test_count_examples():
    dataset, _ = _examples(count=20)
    assert images.count_examples(dataset) == 20
    assert images.count_examples(dataset.filter(lambda x, y: y < 5)) == 5


def test_pad_mode_places_image_in_centre_without_interpolation():
    dataset, pixels = _examples()
    batch, _ = next(
        iter(
            pipeline(
                dataset,
                batch_size=2,
                image_size=(32, 32),
                resize_mode="pad",
                normalization="none",
            )
        )
    )
    np.testing.assert_array_equal(batch.numpy()[:, 2:30, 2:30], pixels[:2])
    assert float(tf.reduce_sum(batch[:, :2])) == 0.0


def test_resize_and_channel_conversion():
    dataset, _ = _examples()
    batch, _ = next(
        iter(pipeline(dataset, batch_size=4, image_size=(64, 48), channels=3))
    )
    assert batch.shape == (4, 64, 48, 3)
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])


@pytest.mark.parametrize("in_memory", [True, False])
def test_epoch_order_depends_only_on_seed_and_epoch(in_memory):
    dataset, _ = _examples(count=64)

    def order(seed, start_epoch=0):
        data = pipeline(
            dataset,
            batch_size=64,
            training=True,
            seed=seed,
            start_epoch=start_epoch,
            in_memory=in_memory,
        )
        return [tuple(labels.numpy()) for _, labels in data.take(3)]

    first = order(3)
    assert first == order(3)  # a new iterator replays the same epochs
    assert first[0] != first[1]  # a new order each epoch
    assert order(3, start_epoch=1) == first[1:] + order(3, start_epoch=3)[:1]
    assert order(4) != first


@pytest.mark.parametrize("in_memory", [True, False])
def test_crop_augmentation_shifts_each_image_exactly(in_memory):
    dataset, pixels = _examples(count=16, size=16)
    data = pipeline(
        dataset,
        batch_size=16,
        training=True,
        augment=("crop",),
        seed=1,
        normalization="none",
        in_memory=in_memory,
    )
    batch, labels = (tensor.numpy() for tensor in next(iter(data)))
    padded = np.pad(pixels, [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets = set()
    for image, source in zip(batch, padded[labels], strict=True):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(image, source[dy : dy + 16, dx : dx + 16])
        ]
        assert matches, "a crop is not an exact window of the padded image"
        offsets.add(matches[0])
    assert len(offsets) > 1  # each image gets its own offset


@pytest.mark.parametrize("name", images.AUGMENTATIONS)
def test_each_augmentation_keeps_shape_and_range(name):
    dataset, _ = _examples(count=8, size=28, channels=3)
    batch, _ = next(
        iter(pipeline(dataset, batch_size=8, training=True, augment=(name,), seed=0))
    )
    assert batch.shape == (8, 28, 28, 3)
    assert 0.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0


def test_augmentation_is_off_for_evaluation():
    dataset, pixels = _examples()
    batch, _ = next(iter(pipeline(dataset, batch_size=4, augment=("rotate", "flip"))))
    np.testing.assert_allclose(batch.numpy(), pixels[:4] / 255.0, atol=1e-6)


def test_parse_augment():
    assert images.parse_augment("flip, crop") == ("flip", "crop")
    assert images.parse_augment("none") == ()
    with pytest.raises(ValueError, match="augment must name some of"):
        images.parse_augment("flip,blur")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"resize_mode": "stretch"}, "resize_mode must be one of"),
        ({"normalization": "zscore"}, "normalization must be one of"),
        ({"augment": ("mixup",)}, "augment must name some of"),
        ({"shuffle_buffer": 0}, "shuffle_buffer must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    dataset, _ = _examples()
    with pytest.raises(ValueError, match=message):
        pipeline(dataset, **kwargs)


def test_augmentation_is_a_pure_function_of_seed_epoch_and_batch():
    dataset, _ = _examples(count=32, channels=3)

    def batches(seed, start_epoch=0):
        data = pipeline(
            dataset,
            batch_size=16,
            training=True,
            seed=seed,
            augment=images.AUGMENTATIONS,
            start_epoch=start_epoch,
        )
        return [batch.numpy() for batch, _ in data.take(4)]

    first = batches(7)
    again = batches(7)
    for one, other in zip(first, again, strict=True):
        np.testing.assert_array_equal(one, other)
    resumed = batches(7, start_epoch=1)
    np.testing.assert_array_equal(resumed[0], first[2])  # epoch 1, batch 0
    assert not np.array_equal(batches(8)[0], first[0])


def test_affine_with_zero_ranges_is_the_identity(monkeypatch):
    from apps.data import augment

    monkeypatch.setattr(augment, "ROTATE_DEGREES", 0.0)
    monkeypatch.setattr(augment, "ZOOM_FRACTION", 0.0)
    monkeypatch.setattr(augment, "TRANSLATE_FRACTION", 0.0)
    batch = np.random.default_rng(0).random((3, 9, 7, 2)).astype("float32")
    out = augment.random_affine(
        batch,
        ("rotate", "zoom", "translate"),
        tf.constant([[1, 2], [3, 4], [5, 6]], tf.int64),
    )
    np.testing.assert_allclose(out.numpy(), batch, atol=1e-5)


def test_rotation_turns_the_picture():
    from apps.data import augment

    picture = np.zeros((1, 21, 21, 1), "float32")
    picture[0, 10, 2:19] = 1.0  # a horizontal bar
    seeds = tf.constant([[0, 1], [0, 2], [0, 3]], tf.int64)
    turned = augment.random_affine(picture, ("rotate",), seeds).numpy()
    assert not np.allclose(turned, picture)
    assert abs(turned.sum() - picture.sum()) < 0.1 * picture.sum()  # same bar, turned
