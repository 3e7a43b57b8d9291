"""Input-pipeline overhead: training step time, real pipeline vs in-memory tensors.

    python benchmarks/pipeline_overhead.py [--model lenet5] [--batch-size 128]
        [--steps 200] [--rounds 3] [--augment flip]

Both sides train the same model with the same training loop (`apps.loop`); one reads
batches from `apps.data.pipeline` over the real Fashion-MNIST (decode from the cache,
shuffle, batch, normalise, augment, prefetch), the other from one batch held in memory.
Rounds alternate between the two so that background load hits both alike; the
pipeline is measured in its steady state (after the first epoch has filled its cache).
Target: the real pipeline at most 5 % slower.
Writes benchmarks/results/pipeline_overhead.json.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402


def main(argv=None):
    parser = _harness.parser(__doc__, "pipeline_overhead")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--augment", default="flip")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import apps
    from apps import data, loop, training

    options = training.TrainOptions(batch_size=args.batch_size, seed=0, verbose=0)
    strategy = training.setup(options)
    examples = data.load("fashion_mnist", "train")
    augment = data.images.parse_augment(args.augment)
    real = data.pipeline(
        examples, batch_size=args.batch_size, training=True, augment=augment, seed=0
    )
    batch = next(iter(real))
    in_memory = tf.data.Dataset.from_tensors(batch).repeat()

    model = apps.build(args.model, input_shape=(28, 28, 1), classes=10)
    training.compile_classifier(model, options)
    runner = loop.DistributedLoop(model, strategy)
    sources = {"pipeline": iter(real), "in_memory": iter(in_memory)}
    # Warm up: trace, and let the pipeline fill its cache (the first epoch decodes
    # tfds's PNG-encoded records; that one-off cost is timed and reported apart).
    first_epoch = data.images.epoch_steps(len(examples), args.batch_size)
    start = time.perf_counter()
    for _ in range(first_epoch):
        runner.train_function(sources["pipeline"])
    first_epoch_seconds = time.perf_counter() - start
    for _ in range(10):
        runner.train_function(sources["in_memory"])

    times = {name: [] for name in sources}
    for _ in range(args.rounds):
        for name, iterator in sources.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                runner.train_function(iterator)
            float(model.optimizer.iterations.numpy())  # wait for the last step
            times[name].append((time.perf_counter() - start) / args.steps)

    step = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "benchmark": "pipeline_overhead",
        "model": args.model,
        "batch_size": args.batch_size,
        "augment": list(augment),
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "step_seconds": step,
        "all_rounds": times,
        "overhead": step["pipeline"] / step["in_memory"] - 1,
        "first_epoch_seconds_with_cache_fill": first_epoch_seconds,
        "first_epoch_steps": first_epoch,
        "images_per_second": {k: args.batch_size / v for k, v in step.items()},
        "load_average": os.getloadavg(),
        "versions": training.versions(),
    }
    _harness.write_result(args.output, result)
    print(
        f"{args.model}, batch {args.batch_size}: pipeline "
        f"{step['pipeline'] * 1e3:.2f} ms/step, in memory "
        f"{step['in_memory'] * 1e3:.2f} ms/step, overhead "
        f"{result['overhead']:+.1%} (target <= +5%)"
    )
    return result


if __name__ == "__main__":
    main()
