"""Decoding a translator: greedy, beam search, checked translations, attention maps.

A translator (:mod:`apps.sequence.text`) returns, for a source and the output so far,
the logits of the next character at every position; decoding calls it once per
output character, with the output so far as ``target`` and reads position ``t``.
The decoder is causal, so what lies after position ``t`` does not matter.

>>> translator = Translator(keras.saving.load_model("runs/dates/model.keras"))
>>> translator.translate(["3rd of May 1979", "31 February 2001"])
[Translation(text='3rd of May 1979', date='1979-05-03', error=None),
 Translation(text='31 February 2001', date=None, error="'31 February 2001' names
 no calendar date (...)")]
"""

from __future__ import annotations

import dataclasses
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from apps.data import dates
from apps.errors import require_positive_int
from apps.sequence import text

DEFAULT_BATCH_SIZE = 512
DEFAULT_LENGTH_PENALTY = 0.6  # GNMT's alpha (Wu et al. 2016)
_STEP_FUNCTIONS = weakref.WeakKeyDictionary()


def _step_function(model):
    """The model's forward pass as one traced function (eager calls are slow)."""
    if model not in _STEP_FUNCTIONS:

        @tf.function(reduce_retracing=True)
        def step(sources, targets):
            logits = model({"source": sources, "target": targets}, training=False)
            return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)

        _STEP_FUNCTIONS[model] = step
    return _STEP_FUNCTIONS[model]


def _never_written(vocabulary):
    """The ids no output contains: padding, unknown and START."""
    return [text.PADDING_ID, text.UNKNOWN_ID, vocabulary.index(text.START_TOKEN)]


class _Decoder:
    """What greedy and beam search share: the vocabulary and the scoring of a step."""

    def __init__(self, model):
        self.model = model
        _, self.vocabulary = text.vocabularies(model)
        _, self.max_length = text.max_lengths(model)
        self.end_id = self.vocabulary.index(text.END_TOKEN)
        self.forbidden = _never_written(self.vocabulary)
        self.step = _step_function(model)

    def log_probabilities(self, sources, prefixes, position):
        """``(N, V)`` log-probabilities of the character after each prefix."""
        scores = self.step(
            tf.constant(sources, tf.string), tf.constant(prefixes, tf.string)
        )[:, position].numpy()
        scores[:, self.forbidden] = -np.inf
        return scores


def greedy(model, sources, *, batch_size=DEFAULT_BATCH_SIZE):
    """The most likely character at every step, until END or the longest output.

    Args:
        model: a translator.
        sources: texts (already checked: see :class:`Translator` for user input).
        batch_size: sources decoded together.

    Returns:
        The outputs, a list of strings.
    """
    decoder = _Decoder(model)
    outputs = []
    for start in range(0, len(sources), batch_size):
        chunk = list(sources[start : start + batch_size])
        prefixes = [""] * len(chunk)
        finished = np.zeros(len(chunk), bool)
        for position in range(decoder.max_length + 1):
            best = decoder.log_probabilities(chunk, prefixes, position).argmax(-1)
            for index, token in enumerate(best):
                if finished[index]:
                    continue
                if token == decoder.end_id or position == decoder.max_length:
                    finished[index] = True
                else:
                    prefixes[index] += decoder.vocabulary[token]
            if finished.all():
                break
        outputs.extend(prefixes)
    return outputs


def length_penalty_factor(length, alpha):
    """GNMT's length penalty ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016).

    Beam search ranks outputs by ``log P(Y | X) / lp(Y)``; ``|Y|`` counts the
    characters and END. ``alpha = 0`` is no normalisation (summed
    log-probabilities, which favour short outputs); 0.6 is GNMT's choice.
    """
    return ((5.0 + length) / 6.0) ** alpha


def _check_length_penalty(alpha):
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not 0 <= alpha < math.inf
    ):
        raise ValueError(
            "length_penalty must be a finite number >= 0. "
            f"Received: length_penalty={alpha!r}"
        )


def beam_search(
    model,
    sources,
    *,
    beam_width=4,
    length_penalty=DEFAULT_LENGTH_PENALTY,
    batch_size=DEFAULT_BATCH_SIZE,
):
    """Keeps the ``beam_width`` best outputs at every step; returns the best.

    An output's score is its summed log-probabilities, END included, divided by
    :func:`length_penalty_factor` (GNMT, ``alpha = length_penalty``); finished
    outputs compete with open ones on that score. After the longest output only
    END may follow. At any step every open candidate has the same length, so
    ``beam_width=1`` ranks them by log-probability as :func:`greedy` does; ties go
    to the earlier beam and the smaller character id, as ``argmax`` does, so
    ``beam_width=1`` is exactly :func:`greedy`.

    Args:
        model: a translator.
        sources: texts (already checked).
        beam_width: beams kept per source, a positive int.
        length_penalty: GNMT's ``alpha``, a number >= 0 (0: no normalisation).
        batch_size: sources decoded together (each with up to ``beam_width``
            beams).

    Returns:
        The best output of each source, a list of strings.
    """
    require_positive_int("beam_width", beam_width)
    _check_length_penalty(length_penalty)
    decoder = _Decoder(model)

    def candidate(prefix, log_probability, finished):
        # |Y|: the tokens written, END included. At any step every open
        # candidate and every candidate that just ended has one token more than
        # its beam: a common |Y|, so they are ranked by log-probability alone.
        length = len(prefix) + int(finished)
        ranked = log_probability / length_penalty_factor(length, length_penalty)
        return (ranked, log_probability, prefix, finished)

    outputs = []
    for start in range(0, len(sources), batch_size):
        chunk = list(sources[start : start + batch_size])
        # Per source: beams (ranked score, log-probability, prefix, finished),
        # best first.
        beams = [[candidate("", 0.0, False)] for _ in chunk]
        for position in range(decoder.max_length + 1):
            open_beams = [
                (index, beam[2])
                for index, source_beams in enumerate(beams)
                for beam in source_beams
                if not beam[3]
            ]
            if not open_beams:
                break
            scores = decoder.log_probabilities(
                [chunk[index] for index, _ in open_beams],
                [prefix for _, prefix in open_beams],
                position,
            )
            last = position == decoder.max_length
            row = 0
            for index, source_beams in enumerate(beams):
                candidates = []
                for beam in source_beams:
                    _, score, prefix, finished = beam
                    if finished:
                        candidates.append(beam)
                        continue
                    # Python floats: sums in float64, so that adding a beam's
                    # score never makes two of its tokens' scores equal.
                    for token, token_score in enumerate(scores[row].tolist()):
                        if token_score == -math.inf:
                            continue
                        if token == decoder.end_id:
                            candidates.append(
                                candidate(prefix, score + token_score, True)
                            )
                        elif not last:  # the longest output is followed by END
                            candidates.append(
                                candidate(
                                    prefix + decoder.vocabulary[token],
                                    score + token_score,
                                    False,
                                )
                            )
                    row += 1
                order = sorted(
                    range(len(candidates)), key=lambda i: -candidates[i][0]
                )  # sorted is stable: ties keep beam, then token order
                beams[index] = [candidates[i] for i in order[:beam_width]]
        outputs.extend(source_beams[0][2] for source_beams in beams)
    return outputs


def decode(
    model,
    sources,
    *,
    beam_width=1,
    length_penalty=DEFAULT_LENGTH_PENALTY,
    batch_size=DEFAULT_BATCH_SIZE,
):
    """:func:`greedy` for ``beam_width=1``, else :func:`beam_search`."""
    if beam_width == 1:
        return greedy(model, sources, batch_size=batch_size)
    return beam_search(
        model,
        sources,
        beam_width=beam_width,
        length_penalty=length_penalty,
        batch_size=batch_size,
    )


def exact_match(
    model,
    pairs,
    *,
    beam_width=1,
    length_penalty=DEFAULT_LENGTH_PENALTY,
    batch_size=DEFAULT_BATCH_SIZE,
):
    """Share of ``(text, answer)`` pairs translated exactly right, and the outputs."""
    sources = [source for source, _ in pairs]
    outputs = decode(
        model,
        sources,
        beam_width=beam_width,
        length_penalty=length_penalty,
        batch_size=batch_size,
    )
    hits = [
        output == answer for output, (_, answer) in zip(outputs, pairs, strict=True)
    ]
    return float(np.mean(hits)) if hits else float("nan"), outputs


@dataclasses.dataclass(frozen=True)
class Translation:
    """One input and what came of it: ``date`` (ISO 8601) or ``error`` (why not)."""

    text: str
    date: str | None = None
    error: str | None = None


class Translator:
    """Translates user input: checks it, decodes it, checks the output.

    Every input gets a :class:`Translation`; nothing raises for bad input:

    - an empty text, one longer than the model reads, or one with characters
      outside its vocabulary is refused before decoding
      (:func:`apps.sequence.text.check_source`);
    - an output that is no calendar date (``31 February 2001`` read as
      ``2001-02-31``), or that does not match the input, is refused after
      (:func:`apps.data.dates.check_output`).

    Args:
        model: a translator (``.keras`` file loaded with ``keras.saving``).
        check_dates: apply :func:`apps.data.dates.check_output` to the outputs
            (date translators; turn off for other tasks).
    """

    def __init__(self, model, check_dates=True):
        self.model = model
        self.check_dates = check_dates
        self.source_vocabulary, _ = text.vocabularies(model)
        self.max_source_length, _ = text.max_lengths(model)

    def translate(self, texts, *, beam_width=1, length_penalty=DEFAULT_LENGTH_PENALTY):
        """A :class:`Translation` for each of ``texts``, in order (see :func:`decode`
        for ``beam_width`` and ``length_penalty``)."""
        results = [None] * len(texts)
        readable = {}
        for index, raw in enumerate(texts):
            try:
                readable[index] = text.check_source(
                    raw, self.source_vocabulary, self.max_source_length
                )
            except text.InvalidInput as error:
                results[index] = Translation(raw, error=str(error))
        outputs = decode(
            self.model,
            list(readable.values()),
            beam_width=beam_width,
            length_penalty=length_penalty,
        )
        for (index, cleaned), output in zip(readable.items(), outputs, strict=True):
            raw = texts[index]
            if self.check_dates:
                try:
                    dates.check_output(cleaned, output)
                except dates.DateError as error:
                    results[index] = Translation(raw, error=str(error))
                    continue
            results[index] = Translation(raw, date=output)
        return results


def attention_layer(model):
    """The layer whose attention weights explain the output (its last output).

    The last cross-attention of a Transformer, ``decoder_attention`` (Bahdanau) or
    ``attention`` (Luong).
    """
    names = [layer.name for layer in model.layers]
    cross = [name for name in names if name.endswith("cross_attention")]
    if cross:
        return model.get_layer(cross[-1])
    for name in ("decoder_attention", "attention"):
        if name in names:
            return model.get_layer(name)
    raise ValueError(f"{model.name!r} has no attention layer to show.")


def attention_map(model, source, output):
    """The attention weights of ``model`` writing ``output`` for ``source``.

    Args:
        model: a translator.
        source: the (checked) input text.
        output: its translation.

    Returns:
        ``(weights, source_characters, output_characters)``: ``weights`` is
        ``(len(output) + 1, len(source))``, row ``t`` the attention while
        writing output character ``t`` (the last row: END), averaged over heads.
    """
    cleaned = text.standardize(tf.constant(source)).numpy().decode("utf-8")
    weights_tensor = attention_layer(model).output[-1]
    probe = keras.Model(model.inputs, weights_tensor)
    weights = np.asarray(
        probe({"source": tf.constant([source]), "target": tf.constant([output])})
    )[0]
    if weights.ndim == 3:  # (heads, T, S)
        weights = weights.mean(axis=0)
    rows, columns = len(output) + 1, len(cleaned)
    return (
        weights[:rows, :columns],
        list(cleaned),
        [*output, text.END_TOKEN],
    )


def serving_function(model, check_dates=True):
    """Greedy decoding as one ``tf.function``: ``text`` string ``(B,)`` in, dates out.

    For export (TF Serving). Decodes for the model's longest output
    (``max_target_length + 1`` steps, a fixed bound) in the graph. Returns
    ``{"date": string (B,), "valid": bool (B,)}``; an input the
    :class:`Translator` would refuse before decoding (empty, too long, characters
    outside the vocabulary) and, with ``check_dates``, an output that is no
    ``YYYY-MM-DD`` calendar date get ``date=""`` and ``valid=False``. (The check
    that the output's numbers are written in the input is the command line's
    only.)
    """
    source_vocabulary, target_vocabulary = text.vocabularies(model)
    max_source_length, max_length = text.max_lengths(model)
    end_id = target_vocabulary.index(text.END_TOKEN)
    forbidden = np.zeros(len(target_vocabulary), np.float32)
    forbidden[_never_written(target_vocabulary)] = -np.inf
    characters = "".join(source_vocabulary[text.UNKNOWN_ID + 1 :])
    readable = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in characters) + "]*"
    standardize = text.standardize

    # The argument's name is the signature's input name.
    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="text")])
    def translate(text):  # noqa: F811  (shadows the module inside, on purpose)
        cleaned = standardize(text)
        length = tf.strings.length(cleaned, unit="UTF8_CHAR")
        ok = (
            (length > 0)
            & (length <= max_source_length)
            & tf.strings.regex_full_match(cleaned, readable)
        )
        vocabulary = tf.constant(target_vocabulary)
        outputs = tf.fill(tf.shape(text), "")
        finished = tf.zeros(tf.shape(text), tf.bool)
        # A graph loop: the model is traced once, not once per output character.
        for position in tf.range(max_length + 1):
            logits = model({"source": cleaned, "target": outputs}, training=False)
            scores = tf.cast(logits[:, position], tf.float32) + forbidden
            best = tf.argmax(scores, axis=-1, output_type=tf.int32)
            ends = tf.equal(best, end_id) | (position == max_length)
            outputs = tf.where(
                finished | ends,
                outputs,
                tf.strings.join([outputs, tf.gather(vocabulary, best)]),
            )
            finished = finished | ends
        if check_dates:
            ok = ok & _calendar_date(outputs)
        return {"date": tf.where(ok, outputs, ""), "valid": ok}

    return translate


def _calendar_date(iso):
    """Whether each string is a real ``YYYY-MM-DD`` calendar date, in the graph."""
    shaped = tf.strings.regex_full_match(iso, r"\d{4}-\d{2}-\d{2}")
    safe = tf.where(shaped, iso, "0001-01-01")
    year = tf.strings.to_number(tf.strings.substr(safe, 0, 4), tf.int32)
    month = tf.strings.to_number(tf.strings.substr(safe, 5, 2), tf.int32)
    day = tf.strings.to_number(tf.strings.substr(safe, 8, 2), tf.int32)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    lengths = tf.constant([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    days = tf.gather(lengths, tf.clip_by_value(month - 1, 0, 11))
    days += tf.cast(leap & (month == 2), tf.int32)
    return shaped & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days)
