"""What the trials train on: the same loading and pipeline as a classifier's train.

`load` splits an image folder as ``python -m apps.classify train`` does and checks
that a resumed search sees the same split; `datasets` makes the training stream
(read once per process, reused by every trial) and the validation data the
objective is measured on.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tuning import search

# The training stream from epoch 0 of the last search in this process, by its data.
_FIRST_STREAM = {}


def load(config, spec, strategy, augment, role):
    """`(folder split or None, (train, validation, steps) or None)`: what the trials
    train on (the oracle of a distributed search needs none).

    An image folder is split as `apps.classify train` splits it (stratified, the
    same seed), and the split saved in the search directory must be the one the
    folder gives now: trials on other data would not be comparable.

    Raises:
        search.ConfigurationError: the folder's split changed since the search
            began.
        search.SearchError: an unreadable image in the folder.
    """
    from apps import data, training

    global_batch = config.options.batch_size * training.replicas(strategy)
    folder = None
    if data.folders.is_folder(config.dataset):
        folder = _split_folder(config)
        print(folder.summary())
        for note in folder.notes:
            print(f"note: {note}.", file=sys.stderr)
        count = len(folder.files["train"])
        batch = data.folders.fitting_batch(
            count, global_batch, training.replicas(strategy)
        )
        if batch != global_batch:
            print(
                f"note: the training split has {count} images, fewer than one "
                f"batch of {global_batch}: every trial trains with batches of "
                f"{batch}.",
                file=sys.stderr,
            )
            global_batch = batch
    if role is not None and role.chief:
        return folder, None
    return folder, datasets(config, spec, global_batch, augment)


def _split_folder(config):
    from apps import data

    # datasets asks for "train[:P%]": the same fraction, exactly.
    percent = round(100 * (1 - config.validation_split))
    fraction = (100 - percent) / 100
    try:
        folder = data.folders.split_folder(config.dataset, validation_fraction=fraction)
        saved_path = Path(config.output) / data.folders.SPLIT_FILE
        if saved_path.is_file() and not config.overwrite:
            saved = data.folders.read_split(saved_path, config.dataset)
            if saved.files != folder.files:
                raise search.ConfigurationError(
                    f"{config.dataset} is not split as when this search began "
                    f"({saved_path}): images were added or removed, or "
                    "--validation-split changed, so new trials would not be "
                    "comparable. Pass --overwrite to start afresh, or restore it."
                )
    except data.UnreadableImagesError as error:  # a bad file: exit code 1
        raise search.SearchError(str(error)) from None
    return folder


def datasets(config, spec, global_batch, augment):
    """Training stream, validation and steps, as `apps.classify` makes them.

    ``config`` (a `search.SearchConfig`) gives the dataset, the validation split
    (> 0: the objective is measured on it), ``eval_steps`` and the options'
    ``steps_per_epoch`` and ``seed``. Returns ``(train, validation, steps)``.
    ``train`` is a ``start_epoch -> stream`` factory that builds the stream on
    first use (a search with no trial left reads no data) and reuses it for every
    trial that starts at epoch 0, and for the next search in this process with the
    same data: the in-memory training split is read once, not once per trial.
    """
    from apps import data

    common = {
        "image_size": tuple(spec["input_shape"][:2]),
        "channels": spec["channels"],
        "seed": config.options.seed,
    }
    percent = round(100 * (1 - config.validation_split))
    limit = config.eval_steps * global_batch if config.eval_steps else -1
    train_examples = data.load(config.dataset, f"train[:{percent}%]")
    natural_steps = data.images.epoch_steps(
        data.images.count_examples(train_examples), global_batch
    )
    steps = config.options.steps_per_epoch or natural_steps
    key = (config.dataset, percent, global_batch, repr(common), tuple(augment))

    def stream(start_epoch):
        if start_epoch == 0 and key in _FIRST_STREAM:
            return _FIRST_STREAM[key]
        built = data.pipeline(
            train_examples,
            batch_size=global_batch,
            training=True,
            augment=augment,
            start_epoch=start_epoch,
            **common,
        )
        if start_epoch == 0:
            _FIRST_STREAM.clear()  # one at a time: each holds its split in memory
            _FIRST_STREAM[key] = built
        return built

    def train(start_epoch):
        if steps == natural_steps:  # an epoch is a data epoch: start there
            return stream(start_epoch)
        # Epochs of --steps-per-epoch steps: one stream, skipped to the epoch.
        return stream(0).skip(start_epoch * steps)

    held_out = data.load(config.dataset, f"train[{percent}%:]").take(limit)
    validation = data.pipeline(held_out, batch_size=global_batch, **common)
    return train, validation, steps
