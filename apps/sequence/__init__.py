"""Sequence models, one module per family; importing them registers them.

- :mod:`~apps.sequence.recurrent`: SimpleRNN / LSTM / GRU classifiers (``rnn``,
  ``lstm``, ``gru``, ``bilstm``), images read row by row.
- :mod:`~apps.sequence.seq2seq`: encoder-decoders with attention (``attention``,
  ``luong``); :mod:`~apps.sequence.transformer`: the Transformer
  (``transformer``); both translate characters (:mod:`~apps.sequence.text`) and
  decode with :mod:`~apps.sequence.decoding`.
"""

from apps.sequence import recurrent, seq2seq, text, transformer

__all__ = ["recurrent", "seq2seq", "text", "transformer"]
