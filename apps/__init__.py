"""The applications: model builders, the registry, data, training and export.

Importing ``apps`` imports the model families so that they register::

    import apps

    apps.list_models("vgg*")                 # ['vgg', 'vgg11', ...]
    model = apps.build("vgg16", classes=10, input_shape=(28, 28, 1))
"""

# runtime first: TensorFlow reads its settings when it loads.
from apps import runtime  # noqa: I001

# generative, sequence, vision: imported for their registrations
from apps import generative, registry, sequence, vision

# the optimisers with coupled L2 decay: registered for loading saved models
from apps import optimizers
from apps.registry import UnknownModelError, build, get_model_info, list_models

__all__ = [
    "UnknownModelError",
    "build",
    "generative",
    "get_model_info",
    "list_models",
    "optimizers",
    "registry",
    "runtime",
    "sequence",
    "vision",
]
