"""The one way out: versioned, atomic, warmed-up exports for TensorFlow Serving and
other runtimes.

    python -m apps.classify export --model-path runs/lenet5-fashion-mnist/model.keras \\
        --name lenet5            # -> saved_models/lenet5/1/, a few seconds for LeNet-5

A module a job, each re-exported here (`from apps.export import ExportError`):

- `apps.export.publish`: TF Serving's layout (`EXPORT_DIR/NAME/VERSION/`), versions
  published atomically from a staging directory (`staged_version`), one export of a
  name at a time (`export_lock`), and what dead exports left behind cleared away.
- `apps.export.warmup`: TF Serving warm-up records, written with a version and
  replayed on it before it is published.
- `apps.export.signatures`: `export_signatures`, any dict of `tf.function`s as a
  warmed-up, verified SavedModel version (classifier, GAN generator, translator).
- `apps.export.classifier`: `export_classifier`, the image classifier's two serving
  signatures and the checks of its model and preprocessing spec.
- `apps.export.formats` (its names are not re-exported here): ONNX and LiteRT
  files, each verified in its own runtime, published through `staged_version` under
  `EXPORT_DIR/NAME/FORMAT/VERSION/`.
"""

from apps.export.classifier import (
    BYTES_SIGNATURE,
    CLASS_NAMES_ASSET,
    CLASSIFIER_OUTPUTS,
    IMAGE_SIGNATURE,
    SPEC_KEYS,
    check_classifier_model,
    check_classifier_spec,
    classifier_warmup,
    export_classifier,
)
from apps.export.publish import (
    STALE_AFTER_SECONDS,
    ExportError,
    check_export_dir,
    check_name,
    export_lock,
    next_version,
    parse_version,
    remove_stale,
    staged_version,
    versions,
)
from apps.export.signatures import export_signatures
from apps.export.warmup import WARMUP_FILE, read_warmup_requests, write_warmup_requests

__all__ = [
    "BYTES_SIGNATURE",
    "CLASSIFIER_OUTPUTS",
    "CLASS_NAMES_ASSET",
    "IMAGE_SIGNATURE",
    "SPEC_KEYS",
    "STALE_AFTER_SECONDS",
    "WARMUP_FILE",
    "ExportError",
    "check_classifier_model",
    "check_classifier_spec",
    "check_export_dir",
    "check_name",
    "classifier_warmup",
    "export_classifier",
    "export_lock",
    "export_signatures",
    "next_version",
    "parse_version",
    "read_warmup_requests",
    "remove_stale",
    "staged_version",
    "versions",
    "write_warmup_requests",
]
