"""Training images/s of our LeNet-5 and ResNet-18 vs the same networks in PyTorch.

    python benchmarks/torch_peer.py                      # both models, ~6 min
    python benchmarks/torch_peer.py --models lenet5 --rounds 9 --steps 80

For each model, side by side (one worker process each, alternating rounds; see
`_harness`), on the real Fashion-MNIST training split (28x28x1, 10 classes), Adam
(lr 1e-3, epsilon 1e-7 on both sides), the same batch size:

- ``core``: our training core as a run uses it, with its defaults,
  `apps.training.fit` (callbacks, progress bar, NaN guard, the metrics read after
  every group of steps), fed by `apps.data.pipeline` (no augmentation);
- ``bare``: `apps.loop.DistributedLoop.run_steps` alone (no callbacks, no metrics);
- ``core[VARIANT]`` (``--also-variant``, default ``precision=mixed_bfloat16``, what
  ``--mixed-precision`` does on a CPU): the core with one more setting;
- ``torch``: the same layers in PyTorch (parameter counts are checked equal), a
  standard loop (zero_grad, forward, cross-entropy on logits, backward, step,
  loss.item() and the accuracy count per step) over in-memory tensors of the same
  images, `torch.set_num_threads(--torch-threads)`;
- ``torch@1`` (``--torch-reference-threads``, informational): the peer on 1 thread.

TensorFlow runs with its defaults (intra- and inter-op pools of `os.cpu_count()`
threads = 2 here), the same number as the peer's. Ratios are our images/s over
PyTorch's (target >= 1.0): `ratio_to_reference` against the peer on the same threads,
`ratio_to_torch@1` against the peer on one thread (on a loaded machine, OpenMP's
fork-join on 2 threads waits at every operator for a descheduled thread).
Writes benchmarks/results/torch_peer.json.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

DEFAULT_BATCH = {"lenet5": 256, "resnet18": 32}
DEFAULT_STEPS = {"lenet5": 40, "resnet18": 4}


def build_parser():
    parser = _harness.parser(__doc__, "torch_peer")
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument(
        "--batch-size", type=int, help="default: 256 for lenet5, 32 for resnet18"
    )
    parser.add_argument(
        "--steps", type=int, help="steps per side per round (default 40 / 4)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, help="warm-up steps (default: --steps)")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument(
        "--torch-reference-threads",
        type=int,
        default=1,
        help="also run the peer on this many threads (0: don't)",
    )
    parser.add_argument(
        "--also-variant",
        default="precision=mixed_bfloat16",
        help="also time the core with this variant ('' to skip)",
    )
    parser.add_argument("--no-bare", action="store_true")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    result = _harness.envelope("torch_peer", __file__, argv)
    also = _harness.parse_variant(args.also_variant) if args.also_variant else None
    work = Path(tempfile.mkdtemp(prefix="bench-torch-peer-"))
    import _sides

    print("exporting Fashion-MNIST for the PyTorch side ...", flush=True)
    arrays = _sides.export_fashion_mnist(work / "fashion_mnist_train.npz")
    result["data"] = "fashion_mnist train (60,000), apps.data.load; Keras: "
    result["data"] += "apps.data.pipeline (shuffle, batch, /255, prefetch); "
    result["data"] += "PyTorch: the same uint8 images /255 as in-memory tensors"
    result["models"] = {}
    with _harness.LoadSampler() as load:
        for model in args.models.split(","):
            result["models"][model] = _compare(model, args, also, arrays, work)
    result["load_average"] = load.report()
    _harness.write_result(args.output, result)
    return result


def _compare(model, args, also, arrays, work):
    batch = args.batch_size or DEFAULT_BATCH[model]
    steps = args.steps or DEFAULT_STEPS[model]
    warmup = args.warmup if args.warmup is not None else steps
    common = {"model": model, "batch_size": batch}
    specs = {"core": ("_sides", "keras_core", {}, common)}
    if not args.no_bare:
        specs["bare"] = ("_sides", "keras_bare", {}, common)
    if also is not None:
        specs[f"core[{_harness.variant_label(also)}]"] = (
            "_sides",
            "keras_core",
            also,
            common,
        )
    torch_kwargs = {**common, "arrays": arrays}
    specs["torch"] = (
        "_sides",
        "torch_peer",
        {},
        {**torch_kwargs, "threads": args.torch_threads},
    )
    if args.torch_reference_threads:
        specs[f"torch@{args.torch_reference_threads}"] = (
            "_sides",
            "torch_peer",
            {},
            {**torch_kwargs, "threads": args.torch_reference_threads},
        )
    print(f"{model}: batch {batch}, {steps} steps x {args.rounds} rounds", flush=True)
    workers = _harness.start_workers(specs, log_dir=work)
    try:
        infos = {name: worker.ready() for name, worker in workers.items()}
        per_side = dict.fromkeys(workers, steps)
        warm = dict.fromkeys(workers, warmup)
        times = _harness.alternate(
            workers, rounds=args.rounds, steps=per_side, warmup=warm
        )
    finally:
        _harness.close_workers(workers)
    summary = _harness.summarise(times, batch, reference="torch")
    reference = f"torch@{args.torch_reference_threads}"
    if reference in times:  # the same ratios against the peer on fewer threads
        other = _harness.summarise(times, batch, reference=reference)
        for name in times:
            summary[name][f"ratio_to_{reference}"] = other[name]["ratio_to_reference"]
            summary[name][f"ratio_to_{reference}_best_rounds"] = other[name][
                "ratio_to_reference_best_rounds"
            ]
    trainable = {name: info["trainable_parameters"] for name, info in infos.items()}
    keras_all = infos["core"]["all_parameters"]
    torch_all = infos["torch"]["all_parameters"]
    report = {
        "batch_size": batch,
        "steps_per_round": per_side,
        "rounds": args.rounds,
        "sides": {name: {**summary[name], "info": infos[name]} for name in workers},
        "parameters_match": len(set(trainable.values())) == 1
        and keras_all == torch_all,
        "trainable_parameters": trainable,
        "also_variant": _harness.variant_label(also) if also is not None else None,
    }
    for name in workers:
        side = summary[name]
        text = f"  {model} {name}: {side['images_per_second_median']:,.0f} img/s"
        if not name.startswith("torch"):
            text += (
                f", {side['ratio_to_reference']:.2f}x torch (best rounds "
                f"{side['ratio_to_reference_best_rounds']:.2f}x)"
            )
            if f"ratio_to_{reference}" in side:
                text += f", {side[f'ratio_to_{reference}']:.2f}x {reference}"
        print(text)
    return report


if __name__ == "__main__":
    main()
