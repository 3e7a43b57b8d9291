"""The old name of `apps.export.formats`, kept for the modules that still import it
(apps/cli.py's export sub-command, benchmarks/export_latency.py and
benchmarks/export_agreement.py); import `apps.export.formats` instead (and patch that
module, not this one)."""

from apps.export.formats import (  # noqa: F401  (re-exported for the old importers)
    MODEL_FILES,
    ConversionError,
    VerificationError,
    export_classifier_file,
    export_generator_file,
    runtime_session,
)
