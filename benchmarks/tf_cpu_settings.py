"""Which TensorFlow/Keras settings make our training core faster on this CPU.

    python benchmarks/tf_cpu_settings.py                       # LeNet-5, ~15 min
    python benchmarks/tf_cpu_settings.py --model resnet18      # ~15 min
    python benchmarks/tf_cpu_settings.py --variants "baseline;spe=1;jit"

Each variant (see `_harness`: threads, oneDNN, XLA, steps per execution, mixed
precision, op determinism, batch size, tf.data threads) trains our model
through the training core (`--side core`: `apps.training.fit` with its callbacks;
`--side bare`: `DistributedLoop.train_function` alone) in its own worker process,
on the real Fashion-MNIST pipeline. Every variant is applied on top of the baseline
(`--baseline`; default for LeNet-5 the README's main run: batch 128, flip
augmentation, op determinism from --seed). Variants run in groups of at most
`--max-workers` processes; every group has its own ``baseline`` (TensorFlow's
defaults, the core as it is) and each variant's ratio is its images/s over that
baseline's, from alternating rounds (> 1: faster).

That steps per execution train exactly like one step per call is checked by
`benchmarks/loop_equivalence.py`.
Writes benchmarks/results/tf_cpu_settings_<model>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

# The baseline is the README's main run (batch 128, flip, --seed -> op determinism)
# for LeNet-5, and the PyTorch comparison's set-up for ResNet-18.
DEFAULT_BASELINE = {
    "lenet5": "batch=128,augment=flip,determinism",
    "resnet18": "batch=32",
}
# Grouped so that related variants share a group (and its baseline).
DEFAULT_VARIANTS = {
    "lenet5": [
        # the loop: callbacks and metrics per group of steps (default 8 per call)
        "bare",
        "spe=1",
        "spe=4",
        "spe=16",
        "spe=64",
        # threads and determinism
        "inter=1",
        "intra=1,inter=1",
        "determinism=0",
        "data_threads=1",
        # kernels and precision
        "onednn=0",
        "jit",
        "jit,determinism=0",
        "precision=mixed_bfloat16",
        # batch size (images/s; not free: it changes the optimisation)
        "batch=256",
        "batch=512",
    ],
    "resnet18": [
        "bare",
        "spe=1",
        "inter=1",
        "onednn=0",
        "jit",
        "determinism",
        "precision=mixed_bfloat16",
        "batch=64",
    ],
}
DEFAULT_STEPS = {"lenet5": 32, "resnet18": 4}
BATCH_FALLBACK = 32


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5", choices=sorted(DEFAULT_VARIANTS))
    parser.add_argument("--side", default="core", choices=("core", "bare"))
    parser.add_argument(
        "--variants",
        help="';'-separated variants (default: the model's list; baseline is added)",
    )
    parser.add_argument(
        "--baseline",
        help="settings of the baseline, under every variant (default: see "
        "DEFAULT_BASELINE)",
    )
    parser.add_argument("--steps", type=int, help="steps per round (default 32 / 4)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--max-workers",
        type=int,
        default=5,
        help="processes per group (fewer: rounds pair more closely in time)",
    )
    parser.add_argument("--output", help="default results/tf_cpu_settings_<model>.json")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    output = args.output or _harness.RESULTS / f"tf_cpu_settings_{args.model}.json"
    base = _harness.parse_variant(
        args.baseline if args.baseline is not None else DEFAULT_BASELINE[args.model]
    )
    batch = base.get("batch", BATCH_FALLBACK)
    steps = args.steps or DEFAULT_STEPS[args.model]
    texts = (
        [t for t in args.variants.split(";") if t.strip()]
        if args.variants
        else DEFAULT_VARIANTS[args.model]
    )
    variants = [_harness.parse_variant(t) for t in texts]
    variants = [v for v in variants if v]  # baseline is in every group
    per_group = max(1, args.max_workers - 1)
    groups = [variants[i : i + per_group] for i in range(0, len(variants), per_group)]
    groups = groups or [[]]
    work = Path(tempfile.mkdtemp(prefix="bench-settings-"))
    factory = "keras_core" if args.side == "core" else "keras_bare"
    result = _harness.envelope(f"tf_cpu_settings_{args.model}", __file__, argv)
    result.update(
        {
            "model": args.model,
            "side": args.side,
            "baseline": _harness.variant_label(base),
            "rounds": args.rounds,
            "groups": [],
            "variants": {},
        }
    )
    with _harness.LoadSampler() as load:
        for index, group in enumerate(groups):
            print(f"group {index + 1}/{len(groups)}", flush=True)
            specs = {
                "baseline": (
                    "_sides",
                    factory,
                    base,
                    {"model": args.model, "batch_size": batch},
                )
            }
            step_counts = {"baseline": steps}
            for variant in group:
                label = _harness.variant_label(variant)
                specs[label] = (
                    "_sides",
                    "keras_bare" if variant.get("bare") else factory,
                    {**base, **variant},
                    {"model": args.model, "batch_size": batch},
                )
                # The same images per round as the baseline.
                wanted = steps * batch / variant.get("batch", batch)
                step_counts[label] = max(1, round(wanted))
            failures = {}
            workers = _harness.start_workers(specs, log_dir=work, failures=failures)
            try:
                infos = {name: w.ready() for name, w in workers.items()}
                times = _harness.alternate(
                    workers,
                    rounds=args.rounds,
                    steps=step_counts,
                    warmup=step_counts,
                    failures=failures,
                )
            finally:
                _harness.close_workers(workers)
            for name, error in failures.items():
                result["variants"][name] = {"error": error, "group": index}
            if "baseline" not in times:
                raise RuntimeError(f"the baseline failed: {failures['baseline']}")
            batches = {name: infos[name]["batch_size"] for name in workers}
            summary = _harness.summarise(times, batches, reference="baseline")
            result["groups"].append(
                {name: {**summary[name], "info": infos[name]} for name in workers}
            )
            for name in workers:
                if name != "baseline":
                    result["variants"][name] = {
                        "speedup_vs_baseline": summary[name]["ratio_to_reference"],
                        "speedup_best_rounds": summary[name][
                            "ratio_to_reference_best_rounds"
                        ],
                        "images_per_second_median": summary[name][
                            "images_per_second_median"
                        ],
                        "baseline_images_per_second_median": summary["baseline"][
                            "images_per_second_median"
                        ],
                        "group": index,
                    }
                    print(
                        f"  {name}: {summary[name]['ratio_to_reference']:.3f}x "
                        f"baseline (best rounds "
                        f"{summary[name]['ratio_to_reference_best_rounds']:.3f}x)",
                        flush=True,
                    )
    result["load_average"] = load.report()
    _harness.write_result(output, result)
    return result


if __name__ == "__main__":
    main()
