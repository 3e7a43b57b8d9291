"""Hyper-parameter search over the registry's families with Keras Tuner.

- :mod:`tuning.hypermodels`: a ``keras_tuner.HyperModel`` per tunable family (mlp,
  vgg, resnet, lenet5, and the recurrent rnn/lstm/gru), tuning ``learning_rate``,
  ``dropout`` and ``depth``; trials train through `apps.training`.
- :mod:`tuning.search`: the tuners (random, Hyperband, Bayesian), resumable and
  distributable (Keras Tuner's chief/worker mode), and the search's record.
- ``python -m tuning search|show`` (:mod:`tuning.__main__`).

Nothing is imported here, so that ``python -m tuning show`` starts without
TensorFlow: ``from tuning import hypermodels``.
"""
