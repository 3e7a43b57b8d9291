"""Vision Transformer (Dosovitskiy et al., ICLR 2021): a Transformer encoder on patches.

The image is cut into ``patch_size x patch_size`` patches, each linearly embedded
(``patch_embedding``, a convolution with stride ``patch_size``, the same map); a
learned ``[class]`` token is put first (``class_token``, or none with
``representation="mean"``), a learned position embedding added
(``position_embedding``: our ``PositionalEncoding(mode="learned")``); ``depth``
encoder blocks follow, pre-norm as in the paper (eq. 2-3)::

    z' = MSA(LN(z)) + z          (encoder_1_norm_1, encoder_1_attention)
    z  = MLP(LN(z')) + z'        (encoder_1_norm_2, encoder_1_mlp_1/2, GELU)

then a final LayerNorm (``encoder_norm``) and the head on the class token's output
(or on the mean of the patch outputs), ``predictions``. Attention is our
``MultiHeadAttention``.

Departures for 28x28 inputs: tiny widths by default (the paper's ViT-B/16 is
``hidden_size=768, depth=12, num_heads=12, mlp_dim=3072`` at 224x224), no
pre-training; the head is a single linear layer, as the paper uses for fine-tuning.
"""

import keras
from keras import layers as kl
from keras import ops

import layers
from apps.recipes import Recipe
from apps.registry import register_model
from apps.vision import blocks

PAPER = (
    'Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image '
    'Recognition at Scale", ICLR 2021'
)
DEFAULT_INPUT_SHAPE = (28, 28, 1)
DEFAULT_PATCH_SIZE = 4
REPRESENTATIONS = ("class_token", "mean")


# "apps.sequence": where vit.py lived; kept so that saved models still load.
@keras.saving.register_keras_serializable(package="apps.sequence")
class ClassToken(kl.Layer):
    """Puts a learned ``[class]`` token before a sequence: ``(B, N, D) -> (B, N+1, D)``.

    The token starts at zero, as in the paper's code.
    """

    def build(self, input_shape):
        self.token = self.add_weight(
            name="token", shape=(1, 1, input_shape[-1]), initializer="zeros"
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        token = ops.broadcast_to(
            ops.cast(self.token, inputs.dtype), (batch, 1, inputs.shape[-1])
        )
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])


def encoder_block(x, hidden_size, num_heads, mlp_dim, dropout, attention_dropout, name):
    """One pre-norm Transformer encoder block of ViT."""
    y = kl.LayerNormalization(epsilon=1e-6, name=f"{name}_norm_1")(x)
    y = layers.MultiHeadAttention(
        num_heads,
        hidden_size // num_heads,
        dropout=attention_dropout,
        name=f"{name}_attention",
    )(y, y)
    if dropout:
        y = kl.Dropout(dropout, name=f"{name}_attention_dropout")(y)
    x = kl.Add(name=f"{name}_attention_residual")([x, y])

    y = kl.LayerNormalization(epsilon=1e-6, name=f"{name}_norm_2")(x)
    y = kl.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp_1")(y)
    if dropout:
        y = kl.Dropout(dropout, name=f"{name}_mlp_dropout_1")(y)
    y = kl.Dense(hidden_size, name=f"{name}_mlp_2")(y)
    if dropout:
        y = kl.Dropout(dropout, name=f"{name}_mlp_dropout_2")(y)
    return kl.Add(name=f"{name}_mlp_residual")([x, y])


# Transformers want a warm-up and decoupled weight decay (AdamW).
RECIPES = {
    "vit": Recipe(
        epochs=20,
        learning_rate=1e-3,
        warmup_epochs=2,
        weight_decay=0.05,
        augment="flip",
        input="28x28 cut into 49 patches of 4x4",
    ),
}


@register_model(
    family="vit",
    paper=PAPER,
    default_input_shape=DEFAULT_INPUT_SHAPE,
    min_input_size=DEFAULT_PATCH_SIZE,
    hyperparameters=(
        "patch_size",
        "hidden_size",
        "depth",
        "num_heads",
        "mlp_dim",
        "dropout",
        "representation",
    ),
    recipe=RECIPES["vit"],
)
def vit(
    include_top=True,
    input_shape=None,
    classes=10,
    pooling=None,
    classifier_activation="softmax",
    dropout=0.0,
    weights=None,
    name="vit",
    patch_size=DEFAULT_PATCH_SIZE,
    hidden_size=64,
    depth=4,
    num_heads=4,
    mlp_dim=128,
    attention_dropout=0.0,
    representation="class_token",
):
    """Vision Transformer over image patches (Dosovitskiy et al., 2021).

    Args:
        include_top: whether to add ``predictions``.
        input_shape: ``(height, width, channels)``, height and width multiples of
            ``patch_size``; defaults to ``(28, 28, 1)``.
        classes: number of classes.
        pooling: with ``include_top=False``: ``None`` (the token sequence after
            ``encoder_norm``, ``(B, tokens, hidden_size)``), ``"avg"`` or
            ``"max"`` over the tokens.
        classifier_activation: activation of ``predictions``; ``None`` for logits.
        dropout: dropout rate after the position embedding, the attention and
            each MLP layer, in [0, 1) (the paper: 0.1 for ImageNet-scale models).
        weights: ``None`` or the path of a weights file to load.
        name: model name.
        patch_size: side of the square patches (4 or 7 for 28x28: 49 or 16
            patches).
        hidden_size: ``D``, width of the tokens; a multiple of ``num_heads``.
        depth: number of encoder blocks.
        num_heads: attention heads.
        mlp_dim: hidden width of each block's MLP.
        attention_dropout: dropout on the attention weights, in [0, 1).
        representation: what the head reads, ``"class_token"`` (the paper) or
            ``"mean"`` of the patch outputs (no class token).

    Returns:
        An uncompiled ``keras.Model`` mapping images to ``(batch, classes)``.
    """
    input_shape = blocks.check_common(locals(), DEFAULT_INPUT_SHAPE)
    for argument, value in (
        ("patch_size", patch_size),
        ("hidden_size", hidden_size),
        ("depth", depth),
        ("num_heads", num_heads),
        ("mlp_dim", mlp_dim),
    ):
        blocks.check_positive_int(argument, value)
    blocks.check_rate("attention_dropout", attention_dropout)
    blocks.check_choice("representation", representation, REPRESENTATIONS)
    if hidden_size % num_heads:
        raise ValueError(
            "hidden_size must be a multiple of num_heads. Received: "
            f"hidden_size={hidden_size}, num_heads={num_heads}"
        )
    height, width, _ = input_shape
    if height is None or width is None:
        raise ValueError(
            "vit has a position embedding per patch, so height and width must be "
            f"known. Received: input_shape={input_shape!r}"
        )
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"input_shape height and width must be multiples of patch_size="
            f"{patch_size}. Received: input_shape={input_shape!r}"
        )
    num_patches = (height // patch_size) * (width // patch_size)
    class_token = representation == "class_token"

    inputs = keras.Input(shape=input_shape)

    # Patch embedding
    x = kl.Conv2D(hidden_size, patch_size, strides=patch_size, name="patch_embedding")(
        inputs
    )
    x = kl.Reshape((num_patches, hidden_size), name="patches")(x)
    if class_token:
        x = ClassToken(name="class_token")(x)
    tokens = num_patches + int(class_token)
    x = layers.PositionalEncoding(
        tokens,
        mode="learned",
        initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="position_embedding",
    )(x)
    if dropout:
        x = kl.Dropout(dropout, name="position_embedding_dropout")(x)

    # Encoder
    for index in range(1, depth + 1):
        x = encoder_block(
            x,
            hidden_size,
            num_heads,
            mlp_dim,
            dropout,
            attention_dropout,
            f"encoder_{index}",
        )
    x = kl.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)

    # Head
    if include_top:
        if class_token:
            x = kl.Cropping1D((0, num_patches), name="class_token_output")(x)
            x = kl.Flatten(name="representation")(x)
        else:
            x = kl.GlobalAveragePooling1D(name="representation")(x)
        x = blocks.predictions(x, classes, classifier_activation)
    elif pooling == "avg":
        x = kl.GlobalAveragePooling1D(name="avg_pool")(x)
    elif pooling == "max":
        x = kl.GlobalMaxPooling1D(name="max_pool")(x)

    model = keras.Model(inputs, x, name=name)
    return blocks.load_weights(model, weights)
