"""Shared machinery of the side-by-side benchmarks: variants, workers, rounds, JSON.

Every side of a comparison (our training core, a PyTorch peer, a TensorFlow setting)
runs in its own worker process, started once and kept alive: TensorFlow reads its
threading and oneDNN settings when it initialises, and TensorFlow's and PyTorch's
thread pools must not share a process. The parent then runs *rounds*: in each round
every side runs the same number of steps, one side at a time (the others wait,
blocked on a pipe), the order rotating from round to round, so that the background
load of this shared machine hits every side alike. Reported per side: the median
step time over rounds and the best round; ratios are taken from the medians (and,
for reference, from the best rounds, the closest this machine gets to an idle one).

A *variant* is a comma-separated list of settings applied in the worker before
TensorFlow starts (``baseline`` = none):

==============  ==========================================================
intra=N         tf.config.threading intra-op threads (0: TF's default)
inter=N         tf.config.threading inter-op threads (0: TF's default)
onednn=0|1      TF_ENABLE_ONEDNN_OPTS
jit             jit_compile=True (XLA) for the training step
spe=K           K steps per tf.function call (the core's --steps-per-execution)
precision=P     Keras dtype policy, e.g. mixed_bfloat16
determinism     tf.config.experimental.enable_op_determinism() (what --seed does)
batch=B         batch size (per step)
data_threads=N  tf.data private thread pool of N threads for the input pipeline
augment=A       the pipeline's augmentation (e.g. flip; default none)
bare            (tf_cpu_settings) the bare train_function instead of the core
==============  ==========================================================

A boolean setting can be switched off explicitly (``determinism=0``), to take it
out of a baseline that has it.

Worker protocol (JSON lines): the parent sends the side's factory and arguments,
the worker answers ``{"info": ...}`` when built; then ``{"call": method, "args":
[...]}`` -> ``{"value": ...}`` until ``{"stop": true}``. The worker's own stdout
and stderr go to a log file (TensorFlow is verbose); its last lines are shown if it
fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"

_VARIANT_TYPES = {
    "intra": int,
    "inter": int,
    "onednn": int,
    "jit": bool,
    "spe": int,
    "precision": str,
    "determinism": bool,
    "batch": int,
    "data_threads": int,
    "augment": str,
    "bare": bool,
}


# Variants


def parse_variant(text: str | None) -> dict:
    """``"intra=2,inter=1,jit"`` -> ``{"intra": 2, "inter": 1, "jit": True}``."""
    if text is None or text.strip() in ("", "baseline"):
        return {}
    variant = {}
    for item in text.split(","):
        key, separator, value = item.strip().partition("=")
        if key not in _VARIANT_TYPES:
            raise ValueError(
                f"variant settings must be among {sorted(_VARIANT_TYPES)}. "
                f"Received: {key!r} in {text!r}"
            )
        kind = _VARIANT_TYPES[key]
        if kind is bool:
            off = separator and value.lower() in ("0", "false", "no")
            variant[key] = not off
        else:
            if not separator:
                raise ValueError(f"variant setting {key!r} needs a value ({key}=...).")
            variant[key] = kind(value)
    return variant


def variant_label(variant: dict) -> str:
    if not variant:
        return "baseline"
    return ",".join(
        key if value is True else f"{key}={int(value) if value is False else value}"
        for key, value in variant.items()
    )


def configure_tensorflow(variant: dict) -> dict:
    """Applies a variant's process-wide settings; call before TF runs any op.

    Returns the thread settings as TensorFlow reports them.
    """
    if "onednn" in variant:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = str(int(variant["onednn"]))
    import tensorflow as tf

    if variant.get("intra") is not None:
        tf.config.threading.set_intra_op_parallelism_threads(variant["intra"])
    if variant.get("inter") is not None:
        tf.config.threading.set_inter_op_parallelism_threads(variant["inter"])
    if variant.get("determinism"):
        tf.config.experimental.enable_op_determinism()
    return tensorflow_threads()


def tensorflow_threads() -> dict:
    import tensorflow as tf

    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    return {
        "tf_intra_op_threads": intra or f"0 (TF default: {os.cpu_count()} cores)",
        "tf_inter_op_threads": inter or f"0 (TF default: {os.cpu_count()} cores)",
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (on)"),
        "op_determinism": _determinism_enabled(),
    }


def _determinism_enabled():
    try:
        from tensorflow.python.framework import config as tf_config

        return bool(tf_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return None


# Workers


class WorkerError(RuntimeError):
    """A worker process failed; the message holds its traceback and log tail."""


class Worker:
    """One side of a comparison, in its own process (see the module docstring)."""

    def __init__(self, name, module, factory, variant=None, log_dir=None, **kwargs):
        self.name = name
        self.variant = dict(variant or {})
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="bench-logs-"))
        self.log_path = log_dir / f"{_safe(name)}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (kept open while alive)
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), str(BENCHMARKS), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env=env,
            text=True,
        )
        self._send(
            {
                "module": module,
                "factory": factory,
                "variant": self.variant,
                "kwargs": kwargs,
            }
        )
        self.info = None

    def ready(self) -> dict:
        if self.info is None:
            self.info = self._receive()["info"]
        return self.info

    def call(self, method, *args):
        self.ready()
        self._send({"call": method, "args": list(args)})
        return self._receive()["value"]

    def close(self):
        if self.process.poll() is None:
            try:
                self._send({"stop": True})
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._log.close()

    def _send(self, message):
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except OSError as error:
            raise self._failure("it stopped") from error

    def _receive(self):
        line = self.process.stdout.readline()
        if not line:
            raise self._failure(f"it exited with code {self.process.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise self._failure(reply["error"])
        return reply

    def _failure(self, what):
        self._log.flush()
        tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
        return WorkerError(
            f"worker {self.name!r} failed: {what}\n--- {self.log_path} (tail) ---\n"
            + "\n".join(tail)
        )


def start_workers(specs: dict, log_dir=None, failures: dict | None = None) -> dict:
    """Starts `{name: (module, factory, variant, kwargs)}`; waits until all are built.

    Workers start one after the other (each builds and traces its model before the
    next starts), so that start-up never overlaps a measurement and peak memory stays
    that of one start-up. With a `failures` dict, a side that fails to start is
    recorded there (name -> error text) and left out; without, the error is raised.
    """
    workers = {}
    try:
        for name, (module, factory, variant, kwargs) in specs.items():
            worker = Worker(name, module, factory, variant, log_dir, **kwargs)
            try:
                worker.ready()
            except WorkerError as error:
                worker.close()
                if failures is None:
                    raise
                failures[name] = _first_error_line(error)
                print(f"  failed: {name}: {failures[name]}", flush=True)
                continue
            workers[name] = worker
            print(f"  ready: {name}", flush=True)
    except BaseException:
        close_workers(workers)
        raise
    return workers


def close_workers(workers: dict) -> None:
    for worker in workers.values():
        worker.close()


def alternate(
    workers: dict,
    *,
    rounds: int,
    steps: dict | int,
    warmup: dict | int,
    failures: dict | None = None,
):
    """Runs `rounds` rounds, each side `steps` steps per round, the order rotating.

    `steps`/`warmup`: one number for all sides, or a dict per side (a side whose
    calls run several steps at once needs a multiple of that number). Returns
    `{name: [seconds per step, one per round]}`. With a `failures` dict, a side
    that fails is recorded there and dropped (from `workers` too).
    """
    names = list(workers)
    steps = _per_side(steps, names)
    warmup = _per_side(warmup, names)
    times = {name: [] for name in names}

    def call(name, count):
        try:
            return workers[name].call("run", count)
        except WorkerError as error:
            if failures is None:
                raise
            failures[name] = _first_error_line(error)
            print(f"  failed: {name}: {failures[name]}", flush=True)
            workers.pop(name).close()
            times.pop(name)
            names.remove(name)
            return None

    for name in list(names):
        if warmup[name]:
            call(name, warmup[name])
    for index in range(rounds):
        order = list(names)
        shift = index % max(len(order), 1)
        for name in order[shift:] + order[:shift]:
            seconds = call(name, steps[name])
            if seconds is not None:
                times[name].append(seconds / steps[name])
        print(
            f"  round {index + 1}/{rounds}: "
            + ", ".join(f"{n} {times[n][-1] * 1e3:.1f} ms" for n in names)
            + f" (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    return times


def _first_error_line(error) -> str:
    """The end of a worker's traceback: the exception and its message."""
    text = str(error).split("\n--- ", 1)[0]  # without the log tail
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-8:])[-1500:]


def _per_side(value, names):
    return dict(value) if isinstance(value, dict) else {name: value for name in names}


def summarise(times: dict, batch_sizes: dict | int, reference: str | None = None):
    """Per side: median/best step time and images/s; ratios to `reference`.

    `ratio_to_reference` is the median over rounds of (reference's step time /
    this side's step time) in the same round: > 1 means faster than the reference.
    """
    names = list(times)
    batch_sizes = _per_side(batch_sizes, names)
    summary = {}
    for name, values in times.items():
        median, best = statistics.median(values), min(values)
        summary[name] = {
            "step_seconds_median": median,
            "step_seconds_best": best,
            "images_per_second_median": batch_sizes[name] / median,
            "images_per_second_best": batch_sizes[name] / best,
            "step_seconds_rounds": values,
        }
    if reference is not None:
        for name in names:
            ours = summary[name]
            theirs = summary[reference]
            paired = [
                (theirs_t / batch_sizes[reference]) / (ours_t / batch_sizes[name])
                for ours_t, theirs_t in zip(times[name], times[reference], strict=True)
            ]
            ours["ratio_to_reference"] = statistics.median(paired)
            ours["ratio_to_reference_best_rounds"] = (
                ours["images_per_second_best"] / theirs["images_per_second_best"]
            )
            ours["ratio_to_reference_rounds"] = paired
    return summary


# Result files


class LoadSampler:
    """Samples the 1-minute load average every `interval` seconds while in use."""

    def __init__(self, interval: float = 5.0):
        self.interval = interval
        self.samples: list[float] = []
        self._done = threading.Event()

    def __enter__(self):
        self.start = os.getloadavg()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.end = os.getloadavg()

    def _sample(self):
        while not self._done.is_set():
            self.samples.append(os.getloadavg()[0])
            self._done.wait(self.interval)

    def report(self) -> dict:
        samples = self.samples or [self.start[0]]
        return {
            "at_start": list(self.start),
            "at_end": list(getattr(self, "end", os.getloadavg())),
            "one_minute_samples": {
                "min": min(samples),
                "mean": statistics.fmean(samples),
                "max": max(samples),
                "count": len(samples),
            },
            "cpu_cores": os.cpu_count(),
        }


def parser(doc: str, result: str) -> argparse.ArgumentParser:
    """A benchmark's parser: its docstring's first paragraph as the description and
    `--output` (default results/RESULT.json)."""
    made = argparse.ArgumentParser(description=doc.split("\n\n")[0].strip())
    made.add_argument(
        "--output", default=str(RESULTS / f"{result}.json"), help="the JSON written"
    )
    return made


def add_training_flags(
    parser: argparse.ArgumentParser, option_help: str, metavar: str = "FIELD=VALUE"
) -> None:
    """The flags of a benchmark that trains: repeatable ``--option`` (more training
    settings; ``option_help`` says which) and ``--run-dir``."""
    parser.add_argument(
        "--option", action="append", default=[], metavar=metavar, help=option_help
    )
    parser.add_argument(
        "--run-dir",
        help="keep the run directory (or directories) here; default: a temporary "
        "one, removed afterwards",
    )


def option_fields(parser: argparse.ArgumentParser, items) -> dict:
    """``--option`` items (leading dashes dropped, ``-`` read as ``_``) as training
    settings; a malformed one is the parser's error (exit 2), before anything runs."""
    from apps import cli

    fields = {}
    for item in items:
        try:
            fields.update(cli.model_options([item.lstrip("-")]))
        except cli.UsageError:
            parser.error(
                "--option takes FIELD=VALUE, e.g. --option=batch_size=64. "
                f"Received: {item!r}"
            )
    return fields


@contextlib.contextmanager
def run_directory(kept: str | None, prefix: str):
    """Where a benchmark trains: ``kept`` (its ``--run-dir``), left in place, or a
    temporary directory that is removed afterwards, also when the run fails."""
    if kept:
        yield Path(kept)
        return
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as made:
        yield Path(made)


def envelope(benchmark: str, script: str, argv=None) -> dict:
    """The fields every result file starts with; `argv` is the script's arguments
    (None: this process's, as a script's ``main(argv=None)`` parsed them)."""
    argv = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/" + Path(script).name
    if argv:
        command += " " + shlex.join(argv)
    return {
        "benchmark": benchmark,
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "versions": versions(),
        "machine": machine(),
        "git": git_state(),
    }


def git_state() -> dict:
    """The commit and the files changed in the working tree (others edit it too)."""

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    changed = git("status", "--short", "--", "apps", "layers")
    return {
        "commit": git("rev-parse", "HEAD"),
        "changed_in_apps_and_layers": changed.splitlines() if changed else [],
    }


def versions(*packages: str) -> dict:
    """Python's version and the installed versions of the usual packages and
    `packages` (None: not installed)."""
    found = {"python": platform.python_version()}
    usual = ("tensorflow", "keras", "torch", "numpy", "tensorflow-datasets")
    for package in (*usual, *packages):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine() -> dict:
    model = platform.processor()
    flags = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [
                    flag
                    for flag in line.split(":", 1)[1].split()
                    if flag.startswith(("avx512_bf16", "amx", "avx512f", "avx2"))
                ]
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": flags,
        "platform": platform.platform(),
    }


def write_result(path, result: dict) -> None:
    """`result` as JSON at `path` (its folder made), atomically: the suite's one JSON
    writer, `apps.runs.write_json`."""
    from apps.runs import write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    print(f"wrote {path}")


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# The worker process


def _plain(value):
    """A NumPy scalar as a number, anything else `json` cannot write as its repr."""
    return value.item() if hasattr(value, "item") else repr(value)


def _worker_main():
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints, progress bars and C-level output go to the log
    sys.stdout = sys.stderr

    def reply(message):
        # Not apps.runs.jsonable: importing apps loads TensorFlow, and the side
        # configures TensorFlow's threads before it is loaded.
        replies.write(json.dumps(message, default=_plain) + "\n")

    try:
        request = json.loads(sys.stdin.readline())
        module = importlib.import_module(request["module"])
        side = getattr(module, request["factory"])(
            variant=request["variant"], **request["kwargs"]
        )
        reply({"info": side.info()})
    except BaseException:
        reply({"error": traceback.format_exc()})
        return 1
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("stop"):
            break
        try:
            value = getattr(side, message["call"])(*message.get("args", []))
            reply({"value": value})
        except BaseException:
            reply({"error": traceback.format_exc()})
            return 1
    close = getattr(side, "close", None)
    if close is not None:
        close()
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_worker_main())
