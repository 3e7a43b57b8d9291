"""The applications: model builders, the registry, data, training and export.

Importing ``apps`` imports the model families so that they register::

    import apps

    apps.list_models("vgg*")                 # ['vgg', 'vgg11', ...]
    model = apps.build("vgg16", classes=10, input_shape=(28, 28, 1))

Run as a command (``python -m apps.classify ...``, ``python -m tuning ...``), the
package leaves that to the command, once its command line is parsed
(``apps.cli.parse_args``), so that ``--help`` and a bad flag answer at once, without
loading TensorFlow.
"""

import importlib
import sys

# Neither imports TensorFlow; runtime's settings are in place before anything does.
from apps import registry, runtime
from apps.registry import UnknownModelError, build, get_model_info, list_models

_REGISTERING = ("generative", "optimizers", "sequence", "vision")

__all__ = [
    "UnknownModelError",
    "build",
    "generative",
    "get_model_info",
    "list_models",
    "optimizers",
    "register_models",
    "registry",
    "runtime",
    "sequence",
    "vision",
]


def register_models() -> None:
    """Imports the model families (generative, sequence, vision: they register) and
    the optimisers with coupled L2 decay (registered for loading saved models)."""
    for name in _REGISTERING:
        importlib.import_module(f"apps.{name}")


def __getattr__(name):
    if name in _REGISTERING:  # a command, before it parsed its arguments
        register_models()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_COMMANDS = ("apps.classify", "apps.generate", "apps.translate")


def _starting_a_command() -> bool:
    """Whether one of our command lines is starting: `python -m apps.<command>`
    imports the package while Python is still finding the module (sys.orig_argv
    names it); `python -m tuning` imports it from its running `tuning.__main__`.
    Any other program (`python -m mypackage` whose package imports apps) registers
    at once."""
    arguments = getattr(sys, "orig_argv", [])
    if "-m" in arguments:
        target = arguments[arguments.index("-m") + 1 :][:1]
        if target and target[0] in _COMMANDS and sys.argv[:1] == ["-m"]:
            return True
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(main, "name", None) == "tuning.__main__"


if not _starting_a_command():
    register_models()
