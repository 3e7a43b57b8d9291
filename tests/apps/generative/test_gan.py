"""The GAN model: the k-step algorithm, losses, builders, arguments, save/load."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import apps
import apps.generative  # noqa: F401  (registers the GANs)
import layers
from apps.generative import dcgan, gan, mlp_gan
from apps.generative.blocks import SelfAttention2D

GAN_MODELS = apps.list_models(task="generation")
TINY = {
    "dcgan": {"width": 8, "latent_dim": 8},
    "cdcgan": {"width": 8, "latent_dim": 8},
    "mlp_gan": {
        "latent_dim": 8,
        "generator_units": (16,),
        "discriminator_units": (8,),
    },
}


def _images(count, shape=(28, 28, 1), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (count, *shape)).astype("float32")


def _stream(count, batch, shape=(28, 28, 1)):
    labels = (np.arange(count) % 10).astype("int64")
    data = tf.data.Dataset.from_tensor_slices((_images(count, shape), labels))
    return data.batch(batch, drop_remainder=True).repeat()


def _tiny_gan(name="dcgan", **kwargs):
    return apps.build(name, seed=1, **{**TINY[name], **kwargs})


def test_the_generative_models_are_registered():
    assert {"cdcgan", "dcgan", "mlp_gan"} <= set(GAN_MODELS)
    for name in GAN_MODELS:
        info = apps.get_model_info(name)
        assert info.task == "generation" and info.paper
    assert not set(GAN_MODELS) & set(apps.list_models(task="image_classification"))


@pytest.mark.parametrize("name", GAN_MODELS)
def test_every_gan_trains_a_step_and_round_trips(name, tmp_path):
    model = _tiny_gan(name)
    assert isinstance(model, gan.GAN)
    model.compile(d_steps=1)
    history = model.fit(_stream(8, 4), epochs=1, steps_per_epoch=1, verbose=0)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert math.isfinite(history.history[key][0]), key
    images = model.generate(5, seed=3)
    assert images.shape == (5, 28, 28, 1)
    assert np.all(np.abs(images) <= 1.0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.generate(5, seed=3), images)


def test_train_step_makes_k_discriminator_updates_per_generator_update():
    model = _tiny_gan("mlp_gan")
    model.compile(d_steps=3)
    assert int(model.d_optimizer.iterations) == int(model.g_optimizer.iterations) == 0
    model.fit(_stream(24, 12), epochs=1, steps_per_epoch=2, verbose=0)
    assert int(model.d_optimizer.iterations) == 6
    assert int(model.g_optimizer.iterations) == 2
    assert int(model.optimizer.iterations) == 2  # what loops count: G steps


def test_each_discriminator_step_gets_its_own_real_minibatch():
    """images[j::k]: minibatch j is every k-th row, and each row is used once."""
    seen = []

    model = _tiny_gan()
    model.compile(d_steps=2)
    original = model._discriminate

    def recording(images, labels, training=True):
        seen.append(images)
        return original(images, labels, training)

    model._discriminate = recording
    batch = _images(6)
    model.train_step((tf.constant(batch), tf.zeros(6, tf.int64)))
    real = [np.asarray(seen[0]), np.asarray(seen[2])]  # calls: real, fake (x2), G
    np.testing.assert_array_equal(real[0], batch[0::2])
    np.testing.assert_array_equal(real[1], batch[1::2])


def _loss_model(loss, label_smoothing=0.0):
    model = _tiny_gan()
    model.compile(loss=loss, label_smoothing=label_smoothing)
    return model


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_bce_losses_are_summed_over_the_global_batch(smoothing):
    model = _loss_model("bce", smoothing)
    real = tf.constant([[0.0], [2.0]])
    fake = tf.constant([[-1.0], [0.5]])

    def bce(target, logit):
        p = 1 / (1 + math.exp(-logit))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    global_batch = 4  # e.g. 2 examples here, 2 on another replica
    expected_d = (
        sum(bce(1 - smoothing, x) for x in (0.0, 2.0))
        + sum(bce(0.0, x) for x in (-1.0, 0.5))
    ) / global_batch
    expected_g = sum(bce(1.0, x) for x in (-1.0, 0.5)) / global_batch
    assert float(model._d_loss(real, fake, global_batch)) == pytest.approx(expected_d)
    assert float(model._g_loss(fake, global_batch)) == pytest.approx(expected_g)


def test_lsgan_losses():
    model = _loss_model("lsgan")
    real = tf.constant([[1.0], [0.0]])
    fake = tf.constant([[0.0], [2.0]])
    # D: ½(D(x) - 1)² + ½D(G(z))², G: ½(D(G(z)) - 1)², / global batch 2
    assert float(model._d_loss(real, fake, 2)) == pytest.approx((0.5 + 2.0) / 2)
    assert float(model._g_loss(fake, 2)) == pytest.approx((0.5 + 0.5) / 2)


@pytest.mark.parametrize(
    "compile_kwargs, message",
    [
        ({"d_steps": 0}, "d_steps must be a positive integer"),
        ({"d_steps": 1.5}, "d_steps must be a positive integer"),
        ({"loss": "wgan"}, "loss must be one of"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be a float in \[0, 1\)"),
        ({"optimizer": "adam"}, "not optimizer"),
    ],
)
def test_bad_compile_arguments(compile_kwargs, message):
    model = _tiny_gan()
    with pytest.raises(ValueError, match=message):
        model.compile(**compile_kwargs)


def test_one_optimizer_for_both_networks_is_refused():
    model = _tiny_gan()
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="two optimiser objects"):
        model.compile(d_optimizer=shared, g_optimizer=shared)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("dcgan", {"latent_dim": 0}, "latent_dim must be a positive integer"),
        ("mlp_gan", {"latent_dim": -3}, "latent_dim must be a positive integer"),
        ("dcgan", {"input_shape": (27, 27, 1)}, "DCGAN builds images whose sides"),
        ("dcgan", {"input_shape": (6, 6, 3)}, "even sides >= 8"),
        ("cdcgan", {"input_shape": (28, 27, 1)}, "DCGAN builds images"),
        ("dcgan", {"input_shape": (None, None, 3)}, "fixed image size"),
        ("dcgan", {"width": 0}, "width must be a positive integer"),
        ("dcgan", {"attention": "yes"}, "attention must be True or False"),
        ("cdcgan", {"classes": 0}, "classes must be a positive integer"),
    ],
)
def test_bad_builder_arguments(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        apps.build(name, **kwargs)


def test_gan_checks_its_parts():
    generator = dcgan.dcgan_generator(latent_dim=8, width=8)
    discriminator = dcgan.dcgan_discriminator(width=8)
    with pytest.raises(ValueError, match="latent_dim must match"):
        gan.GAN(generator, discriminator, latent_dim=16)
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        gan.GAN(generator, discriminator, latent_dim=0)
    other = dcgan.dcgan_discriminator(input_shape=(32, 32, 3), width=8)
    with pytest.raises(ValueError, match="makes images of shape"):
        gan.GAN(generator, other, latent_dim=8)
    with pytest.raises(ValueError, match="only for conditional"):
        gan.GAN(generator, discriminator, latent_dim=8, num_classes=10)


@pytest.mark.parametrize(
    "input_shape, start, stages",
    [((28, 28, 1), 7, 2), ((32, 32, 3), 4, 3), ((64, 64, 3), 4, 4)],
)
def test_dcgan_sizes_follow_the_paper(input_shape, start, stages):
    assert dcgan.upsampling_plan(*input_shape[:2]) == (start, start, stages)
    generator = dcgan.dcgan_generator(input_shape=input_shape, width=4, latent_dim=4)
    discriminator = dcgan.dcgan_discriminator(input_shape=input_shape, width=4)
    assert generator.output.shape[1:] == input_shape
    assert generator.get_layer("reshape").output.shape[1:3] == (start, start)
    assert generator.get_layer(f"deconv{stages}").activation.__name__ == "tanh"
    deconvs = [
        layer.name
        for layer in generator.layers
        if isinstance(layer, layers.TransposedConv2D)
    ]
    assert deconvs == [f"deconv{stage}" for stage in range(1, stages + 1)]
    # D: strided convs, no pooling, no BN on conv1, no hidden dense layer.
    names = [layer.name for layer in discriminator.layers]
    assert "conv1_bn" not in names and f"conv{stages}_bn" in names
    assert not any(
        "pool" in type(layer).__name__.lower() for layer in discriminator.layers
    )
    dense = [
        layer for layer in discriminator.layers if isinstance(layer, keras.layers.Dense)
    ]
    assert [layer.name for layer in dense] == ["logit"]
    assert discriminator.get_layer("conv1_lrelu").negative_slope == pytest.approx(0.2)


def test_conditional_models_take_labels():
    model = _tiny_gan("cdcgan")
    assert model.conditional and model.num_classes == 10
    assert len(model.generator.inputs) == len(model.discriminator.inputs) == 2
    images = model.generate(4, labels=7)
    assert images.shape == (4, 28, 28, 1)
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 10\)"):
        model.generate(2, labels=10)
    unconditional = _tiny_gan("dcgan")
    with pytest.raises(ValueError, match="only for conditional"):
        unconditional.generate(2, labels=1)
    conditional_mlp = _tiny_gan("mlp_gan", classes=10)
    assert conditional_mlp.conditional


def test_self_attention_starts_as_the_identity_and_round_trips(tmp_path):
    block = SelfAttention2D(name="attention")
    x = keras.random.normal((2, 6, 6, 16), seed=0)
    np.testing.assert_allclose(block(x), x)  # gamma = 0
    assert float(block.gamma.numpy()) == 0.0
    assert block.attention.key_dim == 2 and block.attention.value_dim == 8
    block.gamma.assign(0.5)
    inputs = keras.Input((6, 6, 16))
    model = keras.Model(inputs, SelfAttention2D(name="attention")(inputs))
    model.get_layer("attention").set_weights(block.get_weights())
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x), block(x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(block(x), x)
    generator = dcgan.dcgan_generator(width=8, latent_dim=4, attention=True)
    discriminator = dcgan.dcgan_discriminator(width=8, attention=True)
    assert generator.get_layer("attention").output.shape[1:3] == (14, 14)
    assert discriminator.get_layer("attention").output.shape[1:3] == (14, 14)


def test_mlp_gan_follows_the_paper():
    discriminator = mlp_gan.mlp_discriminator()
    names = [layer.name for layer in discriminator.layers]
    assert "maxout1" in names and "dropout1" in names
    assert discriminator.get_layer("maxout1").output.shape[-1] == 240
    assert discriminator.get_layer("maxout1_linear").units == 240 * 5
    generator = mlp_gan.mlp_generator()
    assert generator.get_layer("fc1").units == 1200
    leaky = mlp_gan.mlp_discriminator(use_maxout=False)
    assert "fc1_lrelu" in [layer.name for layer in leaky.layers]


def test_save_and_load_keep_the_optimisers_and_the_objective(tmp_path):
    model = _tiny_gan()
    model.compile(d_steps=2, loss="lsgan", label_smoothing=0.1)
    model.fit(_stream(16, 8), epochs=1, steps_per_epoch=2, verbose=0)
    path = tmp_path / "gan.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, gan.GAN)
    assert (loaded.d_steps, loaded.loss_name, loaded.label_smoothing) == (
        2,
        "lsgan",
        0.1,
    )
    assert (loaded.latent_dim, loaded.seed) == (model.latent_dim, model.seed)
    for mine, theirs in (
        (model.weights, loaded.weights),
        (model.d_optimizer.variables, loaded.d_optimizer.variables),
        (model.g_optimizer.variables, loaded.g_optimizer.variables),
    ):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(loaded.d_optimizer.iterations) == 4
    # Training goes on from the loaded state exactly as from the original.
    model.fit(_stream(16, 8), epochs=1, steps_per_epoch=1, verbose=0)
    loaded.fit(_stream(16, 8), epochs=1, steps_per_epoch=1, verbose=0)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_optimizer_pair_scales_the_discriminator_rate():
    model = _tiny_gan()
    model.compile(
        d_optimizer=keras.optimizers.Adam(4e-4),
        g_optimizer=keras.optimizers.Adam(1e-4),
    )
    pair = model.optimizer
    assert len(pair.variables) == len(model.d_optimizer.variables) + len(
        model.g_optimizer.variables
    )
    pair.learning_rate = 2e-4
    assert float(model.g_optimizer.learning_rate) == pytest.approx(2e-4)
    assert float(model.d_optimizer.learning_rate) == pytest.approx(8e-4)


def _recording_fakes(model):
    """Records the images `test_step` gives the discriminator as fakes (every
    second call: real, then fake)."""
    calls = []
    original = model._discriminate

    def recording(images, labels, training=True):
        calls.append(np.asarray(images))
        return original(images, labels, training)

    model._discriminate = recording
    return calls


def test_each_validation_batch_gets_its_own_noise():
    """Three validation batches: three different sets of fakes (the counter used to
    depend on the generator step alone), and the same three in a second
    evaluation of the same model (seeded, so a resumed run validates alike)."""
    model = _tiny_gan()
    model.compile(run_eagerly=True)
    calls = _recording_fakes(model)
    images, labels = _images(12), (np.arange(12) % 10).astype("int64")
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    first = model.evaluate(data, verbose=0, return_dict=True)
    fakes = calls[1::2]
    assert len(fakes) == 3
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not np.allclose(fakes[a], fakes[b]), (a, b)
    calls.clear()
    second = model.evaluate(data, verbose=0, return_dict=True)
    for old, new in zip(fakes, calls[1::2], strict=True):
        np.testing.assert_array_equal(old, new)
    assert second == first


def test_validation_losses_are_means_over_examples_not_batches():
    """Batches of 4, 4 and 2: each figure is the mean over the 10 images."""
    model = _tiny_gan()
    model.compile(run_eagerly=True)
    calls = _recording_fakes(model)
    images = _images(10)
    data = tf.data.Dataset.from_tensor_slices((images, np.zeros(10, "int64")))
    result = model.evaluate(data.batch(4), verbose=0, return_dict=True)
    real = np.asarray(model.discriminator(images, training=False), "float64")
    fakes = np.concatenate(calls[1::2])
    fake = np.asarray(model.discriminator(fakes, training=False), "float64")

    def bce(target, logits):
        return np.logaddexp(0, logits) - target * logits

    expected = {
        "d_loss": np.mean(bce(1, real) + bce(0, fake)),
        "g_loss": np.mean(bce(1, fake)),
        "d_real": np.mean(1 / (1 + np.exp(-real))),
        "d_fake": np.mean(1 / (1 + np.exp(-fake))),
    }
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, rel=1e-5), key
