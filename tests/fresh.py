"""A test's Python script run in a fresh process, for what must be set before
TensorFlow initialises (logical CPU devices for MirroredStrategy). The script
prints its results as one JSON line, last.

    from fresh import run_script
    result = run_script(SCRIPT)
"""

import json
import subprocess
import sys


def run_script(script: str, *arguments, timeout: float = 180) -> dict:
    """Runs ``python -c script arguments...``; its last stdout line, parsed as JSON
    (the test fails with the script's stderr if it exits non-zero)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
