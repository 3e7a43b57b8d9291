"""Hyper-parameter search over the registry's families with Keras Tuner.

- :mod:`tuning.hypermodels`: the registry's search spaces (``hyperparameters=`` of
  each tunable model: mlp, vgg, resnet, lenet5, the recurrent rnn/lstm/gru/bilstm)
  as Keras Tuner hypermodels, with the ``learning_rate`` and ``dropout`` every one
  tunes; trials train through `apps.training`.
- :mod:`tuning.search`: the search (`SearchConfig`, `prepare`, `run`), resumable
  and distributable (Keras Tuner's chief/worker mode), and its record.
- :mod:`tuning.oracles`: every override of a Keras Tuner internal, each with the
  test that shows the behaviour it fixes (tests/tuning/test_oracles.py).
- :mod:`tuning.trial_data`: what the trials train on.
- ``python -m tuning search|show`` (:mod:`tuning.__main__`).

Nothing is imported here, so that ``python -m tuning show`` starts without
TensorFlow: ``from tuning import hypermodels``.
"""
