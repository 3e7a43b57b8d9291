"""How to train: the training core's options, without TensorFlow.

`TrainOptions` is what `apps.training.fit` takes; each field's metadata holds its
command-line help, from which `apps.cli.add_training_flags` makes the flags every
training command shares (so `--help` answers without importing TensorFlow, and the
flags cannot drift apart between commands).
"""

from __future__ import annotations

import dataclasses
import math

from apps.errors import require_positive_int

OPTIMIZERS = ("sgd", "momentum", "adam", "adagrad", "rmsprop")
DEFAULT_LEARNING_RATES = {
    "sgd": 0.01,
    "momentum": 0.01,
    "adam": 1e-3,
    "adagrad": 0.01,
    "rmsprop": 1e-3,
}
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
LR_SCHEDULES = ("constant", "cosine", "plateau", "rsqrt")
# The BN-statistics pass by default (apps.batch_norm): 12,800 images at batch 128.
DEFAULT_BN_RECALIBRATION_STEPS = 100

OPTIMISATION = "Optimisation"
DISTRIBUTION = "Distribution and speed"
OUTPUT = "Output"


def _flag(
    default,
    help: str,
    *,
    group=OPTIMISATION,
    flag=True,
    default_text=None,
    **argparse_options,
):
    """A TrainOptions field whose metadata describes its command-line flag;
    `default_text` says what a default of None means."""
    metadata = {
        "help": help,
        "group": group,
        "flag": flag,
        "default_text": default_text,
        **argparse_options,
    }
    return dataclasses.field(default=default, metadata=metadata)


def flag_fields():
    """The TrainOptions fields that are command-line flags, in declaration order."""
    return [f for f in dataclasses.fields(TrainOptions) if f.metadata.get("flag")]


@dataclasses.dataclass
class TrainOptions:
    """Everything the core needs to know about how to train.

    Attributes mirror the command-line flags of `python -m apps.classify train`.
    `batch_size` is per replica; the global batch is `batch_size * replicas`.
    `bn_recalibration_steps`: training batches over which `fit` recomputes the
    BatchNorm statistics with the final weights before saving (`apps.batch_norm`;
    0 = off; models without BatchNormalization are left alone).
    `warmup_epochs`: the learning rate rises linearly over the first epochs
    (`constant` and `cosine` schedules; the cosine then decays over the rest).
    `label_smoothing`: classifiers train on `(1 - eps) * one_hot + eps / classes`.
    """

    epochs: int = _flag(10, "training epochs")
    steps_per_epoch: int | None = _flag(
        None,
        "training batches per epoch",
        default_text="one pass over the training split",
        metavar="N",
    )
    batch_size: int = _flag(128, "examples per replica and step")
    learning_rate: float | None = _flag(
        None,
        "the learning rate",
        default_text="the optimiser's usual rate ("
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LEARNING_RATES.items())
        + ")",
        metavar="LR",
    )
    optimizer: str = _flag("adam", "the optimiser", choices=OPTIMIZERS)
    momentum: float = _flag(
        0.9, "momentum of the momentum optimiser (and rmsprop's)", flag=False
    )
    weight_decay: float = _flag(
        0.0,
        "as the optimiser's paper meant it: an L2 penalty's gradient (carried by the "
        "momentum) for sgd/momentum/adagrad/rmsprop, decoupled (AdamW) for adam; "
        "biases and BatchNorm/LayerNorm parameters are not decayed",
    )
    lr_schedule: str = _flag(
        "cosine", "learning-rate schedule over the run", choices=LR_SCHEDULES
    )
    warmup_epochs: int = _flag(
        0,
        "linear learning-rate warm-up over the first N epochs (constant and cosine "
        "schedules)",
        metavar="N",
    )
    label_smoothing: float = _flag(
        0.0, "train on (1 - EPS) * one_hot + EPS / classes", metavar="EPS"
    )
    early_stopping: int | None = _flag(
        None,
        "stop after PATIENCE epochs without a better validation loss, with the best "
        "weights",
        default_text="off",
        metavar="PATIENCE",
    )
    strategy: str = _flag(
        "auto",
        "tf.distribute strategy; auto: multi-worker when TF_CONFIG is set, mirrored "
        "with several GPUs (or --devices), else default (one device)",
        choices=STRATEGIES,
        group=DISTRIBUTION,
    )
    devices: int | None = _flag(
        None,
        "replicas; on a CPU-only machine, logical CPU devices",
        group=DISTRIBUTION,
    )
    mixed_precision: bool = _flag(
        False,
        "bfloat16 compute on CPUs, float16 on GPUs (ResNet-18 1.4x faster on an "
        "AVX-512 BF16 CPU; accuracy may differ slightly)",
        group=DISTRIBUTION,
    )
    jit: bool = _flag(
        False,
        "XLA-compile the step (on CPUs 2-3x slower than TensorFlow's oneDNN kernels; "
        "for GPUs)",
        group=DISTRIBUTION,
    )
    steps_per_execution: int = _flag(
        8,
        "training steps per tf.function call; callbacks and the progress bar update "
        "once per group",
        group=DISTRIBUTION,
    )
    checkpoint_every: int | None = _flag(
        None,
        "also save the run state every N steps (it is saved every epoch)",
        metavar="STEPS",
    )
    bn_recalibration_steps: int | None = _flag(
        None,
        "after training, recompute the BatchNorm statistics over N training batches "
        "with the final weights (precise BN; 0 = off; a model without "
        "BatchNormalization ignores it, and says so when it is given)",
        metavar="N",
        default_text=f"{DEFAULT_BN_RECALIBRATION_STEPS} where the model has BatchNorm",
    )
    seed: int | None = _flag(None, "seeded, deterministic run", group=OUTPUT)
    verbose: str | int = _flag("auto", "Keras's progress output", flag=False)

    def __post_init__(self):
        require_positive_int("epochs", self.epochs)
        require_positive_int("batch_size", self.batch_size)
        require_positive_int("steps_per_execution", self.steps_per_execution)
        if self.steps_per_epoch is not None:
            require_positive_int("steps_per_epoch", self.steps_per_epoch)
        if self.early_stopping is not None:
            require_positive_int("early_stopping", self.early_stopping)
        if self.devices is not None:
            require_positive_int("devices", self.devices)
        if self.checkpoint_every is not None:
            require_positive_int("checkpoint_every", self.checkpoint_every)
        if self.bn_recalibration_steps not in (None, 0):
            require_positive_int("bn_recalibration_steps", self.bn_recalibration_steps)
        _require_choice("optimizer", self.optimizer, OPTIMIZERS)
        _require_choice("strategy", self.strategy, STRATEGIES)
        _require_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.learning_rate is not None and not 0 < self.learning_rate < math.inf:
            raise ValueError(
                "learning_rate must be > 0 and finite. "
                f"Received: learning_rate={self.learning_rate!r}"
            )
        if not 0 <= self.weight_decay < 1:
            raise ValueError(
                "weight_decay must be in [0, 1). "
                f"Received: weight_decay={self.weight_decay!r}"
            )
        self._check_warmup_and_smoothing()

    def _check_warmup_and_smoothing(self):
        if (
            not isinstance(self.warmup_epochs, int)
            or isinstance(self.warmup_epochs, bool)
            or not 0 <= self.warmup_epochs < self.epochs
        ):
            raise ValueError(
                f"warmup_epochs must be an integer in [0, epochs={self.epochs}). "
                f"Received: warmup_epochs={self.warmup_epochs!r}"
            )
        if self.warmup_epochs and self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                "warmup_epochs works with the constant and cosine schedules "
                f"(rsqrt has its own warm-up). Received: lr_schedule="
                f"{self.lr_schedule!r}, warmup_epochs={self.warmup_epochs}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                "label_smoothing must be in [0, 1). "
                f"Received: label_smoothing={self.label_smoothing!r}"
            )

    @property
    def resolved_bn_recalibration_steps(self) -> int:
        """The batches of the BN-statistics pass (None: the default's)."""
        if self.bn_recalibration_steps is None:
            return DEFAULT_BN_RECALIBRATION_STEPS
        return self.bn_recalibration_steps

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LEARNING_RATES[self.optimizer]


def _require_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}. Received: {name}={value!r}")
