"""Steps per execution train exactly like one step per call.

    python benchmarks/loop_equivalence.py                      # ~2 min

Not a timing: the check behind the core's default of several steps per
`tf.function` call. In one worker process per strategy, the same seeded LeNet-5
(op determinism on, as `--seed` sets it) is trained through `apps.training.fit`
twice on the real Fashion-MNIST pipeline: one step per call, and
`--steps-per-execution` steps per call (callbacks and metrics once per group,
groups cut at every `--checkpoint-every` boundary). The final weights must be
identical bit for bit, the histories equal, and the Throughput callback must count
every step. Run on the default strategy and on MirroredStrategy over 2 logical CPU
devices. Writes benchmarks/results/loop_equivalence.json.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402


def build_parser():
    parser = _harness.parser(__doc__, "loop_equivalence")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=64, help="per replica")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=int, default=7)
    parser.add_argument("--steps-per-execution", type=int, default=4)
    parser.add_argument("--devices", default="1,2", help="replicas to check, e.g. 1,2")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    result = _harness.envelope("loop_equivalence", __file__, argv)
    result["checks"] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-equivalence-"))
    with _harness.LoadSampler() as load:
        for devices in (int(d) for d in args.devices.split(",")):
            kwargs = {
                "model": args.model,
                "batch_size": args.batch_size,
                "steps_per_execution": args.steps_per_execution,
                "devices": devices,
            }
            spec = ("_sides", "loop_equivalence", {}, kwargs)
            workers = _harness.start_workers({"check": spec}, log_dir=work)
            try:
                check = workers["check"].call(
                    "check", args.epochs, args.steps_per_epoch, args.checkpoint_every
                )
            finally:
                _harness.close_workers(workers)
            result["checks"][f"devices={devices}"] = check
            print(
                f"  {check['strategy']} ({check['replicas']} replica(s)): weights "
                f"identical {check['weights_identical']}, steps counted "
                f"{check['throughput_steps_counted']}",
                flush=True,
            )
    result["all_identical"] = all(
        check["weights_identical"] for check in result["checks"].values()
    )
    result["load_average"] = load.report()
    _harness.write_result(args.output, result)
    return result


if __name__ == "__main__":
    main()
