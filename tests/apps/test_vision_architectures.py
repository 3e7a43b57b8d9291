"""Parameter counts and feature-map shapes against the papers and references.

Each reference is computed independently of the builders: by arithmetic from the
papers' layer tables, from keras.applications where it has the same network, or
as the published (torchvision) count. Models are built at the ImageNet size but
never run at it: counting parameters and reading shapes is cheap.
"""

import keras
import pytest

import apps


def conv(kernel, channels_in, filters, bias=True, groups=1):
    """Parameters of a convolution: kernel area x inputs per group x filters."""
    height, width = (kernel, kernel) if isinstance(kernel, int) else kernel
    return height * width * (channels_in // groups) * filters + (filters if bias else 0)


def dense(units_in, units, bias=True):
    return units_in * units + (units if bias else 0)


def trainable(model):
    return sum(int(weight.numpy().size) for weight in model.trainable_weights)


def shape(model, layer):
    return tuple(model.get_layer(layer).output.shape[1:])


@pytest.fixture(scope="module")
def imagenet():
    """Models at the default (ImageNet) configuration, built once per module."""
    cache = {}

    def get(name, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = apps.build(name, **options)
        return cache[key]

    yield get
    cache.clear()
    keras.backend.clear_session()


# LeNet-5


def test_lenet5_table():
    model = apps.build("lenet5", input_shape=(32, 32, 1))
    assert shape(model, "c1") == (28, 28, 6)
    assert shape(model, "s2") == (14, 14, 6)
    assert shape(model, "c3") == (10, 10, 16)
    assert shape(model, "s4") == (5, 5, 16)
    assert shape(model, "c5") == (1, 1, 120)
    assert shape(model, "f6") == (84,)
    assert shape(model, "predictions") == (10,)
    # The paper's 60,840: C1 156, S2 12, C3 1,516 (partial table), S4 32,
    # C5 48,120, F6 10,164, RBF output 84 x 10 = 840.
    paper = 156 + 12 + 1_516 + 32 + 48_120 + 10_164 + 840
    assert paper == 60_840
    # Ours: C3 fully connected (+900), plain pooling (-12 - 32), dense output
    # with bias (+10).
    assert model.count_params() == paper + 900 - 44 + 10
    expected = (
        conv(5, 1, 6)
        + conv(5, 6, 16)
        + conv(5, 16, 120)
        + dense(120, 84)
        + dense(84, 10)
    )
    assert model.count_params() == expected == 61_706


def test_lenet5_pads_28_to_32():
    model = apps.build("lenet5")
    assert model.input_shape == (None, 28, 28, 1)
    assert shape(model, "pad") == (32, 32, 1)
    assert shape(model, "c5") == (1, 1, 120)


# AlexNet


def alexnet_reference(groups, classes=1000):
    """The paper's layer table, by arithmetic (section 3.5, Figure 2)."""
    return (
        conv(11, 3, 96)
        + conv(5, 96, 256, groups=groups)
        + conv(3, 256, 384)
        + conv(3, 384, 384, groups=groups)
        + conv(3, 384, 256, groups=groups)
        + dense(6 * 6 * 256, 4096)
        + dense(4096, 4096)
        + dense(4096, classes)
    )


def test_alexnet_two_towers(imagenet):
    model = imagenet("alexnet")
    assert model.count_params() == alexnet_reference(groups=2)
    assert round(model.count_params() / 1e6, 2) == 60.97  # the paper's "60 million"
    assert shape(model, "conv1") == (55, 55, 96)
    assert shape(model, "lrn1") == (55, 55, 96)
    assert shape(model, "pool1") == (27, 27, 96)
    assert shape(model, "conv2") == (27, 27, 256)
    assert shape(model, "lrn2") == (27, 27, 256)
    assert shape(model, "pool2") == (13, 13, 256)
    assert shape(model, "conv3") == (13, 13, 384)
    assert shape(model, "conv4") == (13, 13, 384)
    assert shape(model, "conv5") == (13, 13, 256)
    assert shape(model, "pool5") == (6, 6, 256)
    assert shape(model, "fc6") == shape(model, "fc7") == (4096,)
    assert shape(model, "predictions") == (1000,)
    assert model.get_layer("conv2").groups == 2
    assert model.get_layer("conv3").groups == 1
    # Order of section 3.5: normalisation, then pooling.
    names = [layer.name for layer in model.layers]
    assert names.index("conv1") < names.index("lrn1") < names.index("pool1")


def test_alexnet_single_tower_and_batchnorm():
    model = apps.build("alexnet", groups=1, include_top=False)
    assert model.count_params() == alexnet_reference(groups=1) - (
        dense(6 * 6 * 256, 4096) + dense(4096, 4096) + dense(4096, 1000)
    )
    assert alexnet_reference(groups=1) == 62_378_344
    batchnorm = apps.build("alexnet", normalization="batchnorm", include_top=False)
    names = {layer.name for layer in batchnorm.layers}
    assert "conv5_bn" in names and "lrn1" not in names
    assert shape(batchnorm, "pool5") == (6, 6, 256)
    for plain in (
        apps.vision.alexnet.alexnet(normalization=None, include_top=False),
        apps.build("alexnet", normalization="none", include_top=False),
    ):
        names = {layer.name for layer in plain.layers}
        assert not {"lrn1", "lrn2", "conv1_bn"} & names


# VGG

VGG_CONFIGURATIONS = {  # Table 1 of the paper: convolutions per stage
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
# torchvision's published counts (trainable parameters).
VGG_PUBLISHED = {
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}


def vgg_reference(convs_per_stage, classes=1000):
    total, channels = 0, 3
    for stage, convs in enumerate(convs_per_stage):
        filters = (64, 128, 256, 512, 512)[stage]
        for _ in range(convs):
            total += conv(3, channels, filters)
            channels = filters
    return total + dense(7 * 7 * 512, 4096) + dense(4096, 4096) + dense(4096, classes)


def _structure(model):
    return [
        (type(layer).__name__, layer.name, [tuple(w.shape) for w in layer.weights])
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def test_vgg16_is_keras_applications_vgg16(imagenet):
    reference = keras.applications.VGG16(weights=None)
    model = imagenet("vgg16", dropout=0)
    assert model.count_params() == reference.count_params() == 138_357_544
    assert _structure(model) == _structure(reference)
    assert model.count_params() == vgg_reference(VGG_CONFIGURATIONS["vgg16"])
    # With the paper's dropout the weighted layers are the same.
    with_dropout = apps.build("vgg16", include_top=False)
    assert [n for n in _structure(with_dropout) if n[2]] == [
        n for n in _structure(reference) if n[2]
    ][:13]
    for stage, (size, channels) in enumerate(
        [(112, 64), (56, 128), (28, 256), (14, 512), (7, 512)], start=1
    ):
        assert shape(model, f"block{stage}_pool") == (size, size, channels)
    del reference


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VGG_PUBLISHED))
def test_vgg_published_counts(name):
    model = apps.build(name)
    assert trainable(model) == VGG_PUBLISHED[name]
    base = name.removesuffix("_bn")
    expected = vgg_reference(VGG_CONFIGURATIONS[base])
    if name.endswith("_bn"):
        channels = sum(
            convs * filters
            for convs, filters in zip(
                VGG_CONFIGURATIONS[base], (64, 128, 256, 512, 512), strict=True
            )
        )
        # gamma and beta trainable; moving mean and variance counted by Keras too.
        assert trainable(model) == expected + 2 * channels
        assert model.count_params() == expected + 4 * channels
    else:
        assert model.count_params() == expected


def test_vgg_family_is_depth_configurable():
    model = apps.build(
        "vgg",
        convs_per_stage=(1, 2, 1),
        width=8,
        fc_units=16,
        input_shape=(28, 28, 1),
        classes=10,
    )
    assert model.count_params() == (
        conv(3, 1, 8)
        + conv(3, 8, 16)
        + conv(3, 16, 16)
        + conv(3, 16, 32)
        + dense(3 * 3 * 32, 16)
        + dense(16, 16)
        + dense(16, 10)
    )
    assert shape(model, "block3_pool") == (3, 3, 32)
    assert "resize" not in {layer.name for layer in model.layers}  # 28 >= 2 ** 3
    assert apps.build("vgg", convs_per_stage=2, width=4, fc_units=8).get_layer(
        "block5_conv2"
    )


# GoogLeNet

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_TABLE = [
    ("inception_3a", 192, (64, 96, 128, 16, 32, 32), 28, 256),
    ("inception_3b", 256, (128, 128, 192, 32, 96, 64), 28, 480),
    ("inception_4a", 480, (192, 96, 208, 16, 48, 64), 14, 512),
    ("inception_4b", 512, (160, 112, 224, 24, 64, 64), 14, 512),
    ("inception_4c", 512, (128, 128, 256, 24, 64, 64), 14, 512),
    ("inception_4d", 512, (112, 144, 288, 32, 64, 64), 14, 528),
    ("inception_4e", 528, (256, 160, 320, 32, 128, 128), 14, 832),
    ("inception_5a", 832, (256, 160, 320, 32, 128, 128), 7, 832),
    ("inception_5b", 832, (384, 192, 384, 48, 128, 128), 7, 1024),
]


def inception_reference(channels_in, filters):
    n1, r3, n3, r5, n5, pool = filters
    return (
        conv(1, channels_in, n1)
        + conv(1, channels_in, r3)
        + conv(3, r3, n3)
        + conv(1, channels_in, r5)
        + conv(5, r5, n5)
        + conv(1, channels_in, pool)
    )


def googlenet_reference(classes=1000):
    stem = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
    modules = sum(inception_reference(c, f) for _, c, f, _, _ in GOOGLENET_TABLE)
    return stem + modules + dense(1024, classes)


def test_googlenet_table(imagenet):
    model = imagenet("googlenet")
    assert model.count_params() == googlenet_reference()
    # Table 1's params column sums to ~6.8M; it leaves out biases and its conv1
    # entry (2.7K) is not 7x7x3x64, so agreement is within a few percent only.
    table_column = (
        2.7 + 112 + 159 + 380 + 364 + 437 + 463 + 580 + 840 + 1072 + 1388 + 1000
    ) * 1e3
    assert abs(model.count_params() - table_column) / table_column < 0.05
    assert shape(model, "conv1") == (112, 112, 64)
    assert shape(model, "pool1") == (56, 56, 64)
    assert shape(model, "conv2") == (56, 56, 192)
    assert shape(model, "pool2") == (28, 28, 192)
    for name, _, _, size, channels in GOOGLENET_TABLE:
        assert shape(model, name) == (size, size, channels), name
    assert shape(model, "pool3") == (14, 14, 480)
    assert shape(model, "pool4") == (7, 7, 832)
    assert shape(model, "avg_pool") == (1024,)
    assert model.get_layer("dropout").rate == 0.4


def test_googlenet_aux_heads_count(imagenet):
    model = imagenet("googlenet", aux_classifiers=True)
    heads = 0
    for channels in (512, 528):  # after inception_4a and inception_4d
        heads += conv(1, channels, 128) + dense(4 * 4 * 128, 1024) + dense(1024, 1000)
    assert model.count_params() == googlenet_reference() + heads
    assert shape(model, "aux1_avg_pool") == (4, 4, 512)
    assert shape(model, "aux2_avg_pool") == (4, 4, 528)
    assert model.get_layer("aux1_dropout").rate == 0.7


# ResNet

# torchvision's published counts (bias-free convolutions + batch norm).
RESNET_PUBLISHED = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
RESNET_TABLE = {  # Table 1 of the paper: block type, blocks per stage
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


def resnet_reference(block, blocks_per_stage, classes=1000, bias=False):
    """Trainable parameters by arithmetic: conv (+bias) and BN gamma/beta."""

    def conv_bn(kernel, channels_in, filters):
        return conv(kernel, channels_in, filters, bias=bias) + 2 * filters

    total = conv_bn(7, 3, 64)
    channels = 64
    expansion = 4 if block == "bottleneck" else 1
    for stage, blocks in enumerate(blocks_per_stage):
        filters = 64 * 2**stage
        for index in range(blocks):
            out = filters * expansion
            if index == 0 and (stage > 0 or channels != out):
                total += conv_bn(1, channels, out)  # projection shortcut
            if block == "basic":
                total += conv_bn(3, channels, filters) + conv_bn(3, filters, filters)
            else:
                total += (
                    conv_bn(1, channels, filters)
                    + conv_bn(3, filters, filters)
                    + conv_bn(1, filters, out)
                )
            channels = out
    return total + dense(channels, classes)


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "resnet34",
        "resnet50",
        pytest.param("resnet101", marks=pytest.mark.slow),
        pytest.param("resnet152", marks=pytest.mark.slow),
    ],
)
def test_resnet_published_counts(name, imagenet):
    model = imagenet(name)
    assert trainable(model) == RESNET_PUBLISHED[name]
    assert trainable(model) == resnet_reference(*RESNET_TABLE[name])
    assert not any(
        layer.use_bias
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    )
    size = 112
    assert shape(model, "conv1_relu") == (size, size, 64)
    if "pool1_pool" in {layer.name for layer in model.layers}:
        size //= 2
    block, blocks_per_stage = RESNET_TABLE[name]
    expansion = 4 if block == "bottleneck" else 1
    for stage, blocks in enumerate(blocks_per_stage):
        if stage:
            size //= 2
        layer = f"conv{stage + 2}_block{blocks}_out"
        assert shape(model, layer) == (size, size, 64 * 2**stage * expansion)
    assert size == 7


def test_resnet50_is_keras_applications_resnet50():
    reference = keras.applications.ResNet50(weights=None)
    model = apps.build("resnet50", conv_bias=True)
    assert model.count_params() == reference.count_params() == 25_636_712
    assert _structure(model) == _structure(reference)
    assert trainable(model) == resnet_reference("bottleneck", (3, 4, 6, 3), bias=True)


def test_resnet_family_and_small_inputs():
    model = apps.build(
        "resnet",
        block="basic",
        blocks_per_stage=(1, 1, 1),
        width=8,
        small_inputs=True,
        input_shape=(28, 28, 1),
        classes=10,
    )
    assert "resize" not in {layer.name for layer in model.layers}
    assert "pool1_pool" not in {layer.name for layer in model.layers}
    assert shape(model, "conv1_conv") == (28, 28, 8)
    assert shape(model, "conv2_block1_out") == (28, 28, 8)
    assert shape(model, "conv3_block1_out") == (14, 14, 16)
    assert shape(model, "conv4_block1_out") == (7, 7, 32)
    small = apps.build("resnet18", small_inputs=True, input_shape=(32, 32, 3))
    assert shape(small, "conv5_block2_out") == (4, 4, 512)
    # The 3x3 stem has 3*3*3*64 weights instead of 7*7*3*64.
    assert trainable(small) == RESNET_PUBLISHED["resnet18"] - (7 * 7 - 3 * 3) * 3 * 64


# MLP


def test_mlp_counts():
    model = apps.build("mlp")
    assert model.count_params() == dense(784, 256) + dense(256, 128) + dense(128, 10)
    deep = apps.build("mlp", depth=3, width=32, classes=5, input_shape=(6,))
    assert deep.count_params() == dense(6, 32) + 2 * dense(32, 32) + dense(32, 5)
    perceptron = apps.build("mlp", hidden_units=(), classes=2, input_shape=(2,))
    assert perceptron.count_params() == dense(2, 2)


# include_top=False and pooling, keras.applications-style


@pytest.mark.parametrize(
    "name, channels",
    [
        ("lenet5", 120),
        ("alexnet", 256),
        ("vgg11", 512),
        ("googlenet", 1024),
        ("resnet18", 512),
    ],
)
def test_feature_extractors(name, channels):
    features = apps.build(name, include_top=False, input_shape=(96, 96, 3))
    assert len(features.output_shape) == 4 and features.output_shape[-1] == channels
    for pooling in ("avg", "max"):
        pooled = apps.build(
            name, include_top=False, pooling=pooling, input_shape=(96, 96, 3)
        )
        assert pooled.output_shape == (None, channels)
        assert pooled.layers[-1].name == f"{pooling}_pool"


def test_feature_extractor_accepts_any_size():
    model = apps.build("resnet18", include_top=False, input_shape=(None, None, 3))
    assert model.output_shape == (None, None, None, 512)
    model = apps.build("vgg16", include_top=False, input_shape=(None, None, 3))
    assert model.output_shape == (None, None, None, 512)
