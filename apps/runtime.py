"""TensorFlow settings the suite applies before TensorFlow initialises.

`apps/__init__` imports this module before anything imports TensorFlow, because
TensorFlow reads these environment variables once, when it loads. A value the user
has set is kept. Measured on a 2-core AVX-512 CPU (`benchmarks/tf_cpu_settings.py`,
README "Performance"):

- ``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow's oneDNN CPU kernels. TensorFlow turns them
  on by itself only on CPUs with AVX512-VNNI, AVX512-BF16, AVX-VNNI or AMX (so not on
  AVX2-only CPUs); turning them off here made LeNet-5 training 2.5x slower
  (0.40x) and ResNet-18 2.2x slower (0.45x).

Left at TensorFlow's defaults, because changing them measured within noise or worse:
the thread pools (intra-op = inter-op = the number of cores), XLA (``--jit``: 0.41x
and 0.43x on this CPU) and tf.data's private thread pool.
"""

import os

DEFAULTS = {"TF_ENABLE_ONEDNN_OPTS": "1"}


def apply_defaults() -> dict[str, str]:
    """Sets each default the user has not set; returns the values now in effect."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in DEFAULTS}


apply_defaults()
