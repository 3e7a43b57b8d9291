"""Callbacks the tests pass as a training command's extra callbacks, to see what the
loop did (tests/ is on ``sys.path`` because it holds the root conftest.py)."""

import keras


class StepGroups(keras.callbacks.Callback):
    """Records the batches of each call of the step function: ``calls`` holds
    ``(first, last)`` batch indices per call, ``groups`` the steps each call ran."""

    def __init__(self):
        super().__init__()
        self.calls = []

    @property
    def groups(self):
        return [last + 1 - first for first, last in self.calls]

    def on_train_batch_begin(self, batch, logs=None):
        self._first = batch

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append((self._first, batch))
