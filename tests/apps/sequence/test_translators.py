"""The translators: shapes under teacher forcing, masks, save/load, decoding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import apps
import apps.sequence  # noqa: F401  (registers the translators)
from apps.data import dates
from apps.sequence import decoding, text

TRANSLATORS = apps.list_models(task="translation")
# Tiny widths: the code paths are the full models'.
SMALL = {
    "attention": {"embedding_dim": 8, "units": 16},
    "luong": {"embedding_dim": 8, "units": 16},
    "transformer": {
        "num_layers": 2,
        "d_model": 16,
        "num_heads": 2,
        "feed_forward_dim": 32,
        "dropout": 0.0,
    },
}
SOURCES = ["3rd of May 1979", "12/10/2001", "  THU   3 MAY 1979 "]
ANSWERS = ["1979-05-03", "2001-10-12", "1979-05-03"]
TARGET_SIZE = len(dates.TARGET_ALPHABET) + 4  # padding, unknown, START, END
STEPS = dates.ISO_LENGTH + 1


def _inputs(sources=SOURCES, targets=ANSWERS):
    return {"source": tf.constant(sources), "target": tf.constant(targets)}


@pytest.fixture(scope="module", params=TRANSLATORS)
def translator(request):
    keras.utils.set_random_seed(0)
    return apps.build(request.param, **SMALL[request.param])


def test_the_three_translators_are_registered():
    assert TRANSLATORS == ["attention", "luong", "transformer"]


def test_teacher_forcing_shapes(translator):
    logits = translator(_inputs(), training=False)
    assert tuple(logits.shape) == (len(SOURCES), STEPS, TARGET_SIZE)
    assert np.all(np.isfinite(np.asarray(logits)))
    assert tuple(translator.output.shape) == (None, STEPS, TARGET_SIZE)


def test_the_decoder_cannot_see_the_future(translator):
    """Logits at position t depend on the target up to t only."""
    changed = ["1979-99999", "2001-00000", "1979-11111"]  # same first 5 characters
    original = np.asarray(translator(_inputs(), training=False))
    other = np.asarray(translator(_inputs(targets=changed), training=False))
    # Position t sees START and characters 1..t: positions 0..5 are unchanged.
    np.testing.assert_allclose(original[:, :6], other[:, :6], rtol=1e-5, atol=1e-5)
    assert not np.allclose(original[:, 6:], other[:, 6:])


def test_padding_gets_no_attention_and_changes_nothing(translator):
    source = "3 may 1979"
    weights, characters, _ = decoding.attention_map(translator, source, "1979-05-03")
    full = decoding.attention_layer(translator).output[-1]
    probe = keras.Model(translator.inputs, full)
    all_weights = np.asarray(probe(_inputs([source], ["1979-05-03"])))[0]
    padded = all_weights[..., len(characters) :]
    assert padded.shape[-1] == dates.MAX_SOURCE_LENGTH - len(source)
    np.testing.assert_array_equal(padded, 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert weights.shape == (STEPS, len(source))
    # Extra white space is standardised away: same ids, same logits.
    np.testing.assert_allclose(
        np.asarray(translator(_inputs(["3rd of May 1979"], ["1979-05-03"]))),
        np.asarray(translator(_inputs([" 3RD  of may 1979 "], ["1979-05-03"]))),
        rtol=1e-6,
    )


def test_keras_round_trip_keeps_the_vocabularies(translator, tmp_path):
    path = tmp_path / f"{translator.name}.keras"
    translator.save(path)
    loaded = keras.saving.load_model(path)
    assert text.vocabularies(loaded) == text.vocabularies(translator)
    assert text.max_lengths(loaded) == (dates.MAX_SOURCE_LENGTH, dates.ISO_LENGTH)
    np.testing.assert_allclose(
        np.asarray(loaded(_inputs(), training=False)),
        np.asarray(translator(_inputs(), training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_training_step_changes_the_weights(translator):
    _, target_vocabulary = text.vocabularies(translator)
    labels = text.Labeller(target_vocabulary, dates.ISO_LENGTH)(tf.constant(ANSWERS))
    model = keras.models.clone_model(translator)
    model.set_weights(translator.get_weights())
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # one step: tracing would cost more than running it
    )
    before = [np.copy(w) for w in model.get_weights()]
    assert np.isfinite(model.train_on_batch(_inputs(), labels))
    changed = [
        not np.array_equal(old, new)
        for old, new in zip(before, model.get_weights(), strict=True)
    ]
    assert sum(changed) >= len(changed) - 2  # all but maybe an unused bias


def test_labels_are_the_answer_then_end(translator):
    _, vocabulary = text.vocabularies(translator)
    labeller = text.Labeller(vocabulary, dates.ISO_LENGTH)
    labels = np.asarray(labeller(tf.constant(["19-"])))
    expected = [vocabulary.index(c) for c in "19-$"] + [0] * (STEPS - 4)
    assert labels.tolist() == [expected]


def test_beam_one_is_greedy_and_beams_give_dates_of_the_alphabet(translator):
    greedy = decoding.greedy(translator, SOURCES)
    assert decoding.beam_search(translator, SOURCES, beam_width=1) == greedy
    assert decoding.decode(translator, SOURCES) == greedy
    wide = decoding.beam_search(translator, SOURCES, beam_width=3, batch_size=2)
    for output in [*greedy, *wide]:
        assert len(output) <= dates.ISO_LENGTH
        assert set(output) <= set(dates.TARGET_ALPHABET)
    with pytest.raises(ValueError, match="beam_width must be a positive integer"):
        decoding.beam_search(translator, SOURCES, beam_width=0)


def test_translator_refuses_bad_input_and_never_raises(translator):
    results = decoding.Translator(translator).translate(
        ["", "   ", "3" * 41, "3 May 1979 ☃", "31 February 2001", "3rd of May 1979"]
    )
    assert [r.date for r in results[:5]] == [None] * 5
    assert "empty input" in results[0].error and "empty input" in results[1].error
    assert "41 characters long; this model reads at most 40" in results[2].error
    assert "'☃'" in results[3].error
    assert results[4].error  # whatever an untrained model writes, it is refused
    last = results[5]
    assert (last.date is None) != (last.error is None)


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("3rd of May 1979", "3rd of may 1979"),
        ("  MAY\t3,\n1979 ", "may 3, 1979"),
        ("3" * 40, "3" * 40),
    ],
)
def test_check_source_standardises(raw, cleaned):
    vocabulary = ["", "[UNK]", *dates.SOURCE_ALPHABET]
    assert text.check_source(raw, vocabulary, 40) == cleaned


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "empty input"),
        (" \t ", "empty input"),
        ("3" * 41, "41 characters long"),
        ("3 mai 1979 à midi", r"outside the model's vocabulary: 'à'"),
        ("1979_05_03!", r"'!' '_'"),
        ("ÉTÉ 1979", "'é'"),
    ],
)
def test_check_source_refuses(raw, message):
    vocabulary = ["", "[UNK]", *dates.SOURCE_ALPHABET]
    with pytest.raises(text.InvalidInput, match=message):
        text.check_source(raw, vocabulary, 40)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("transformer", {"d_model": 30, "num_heads": 4}, "multiple of num_heads"),
        ("transformer", {"num_layers": 0}, "num_layers must be a positive integer"),
        ("transformer", {"dropout": 1}, r"dropout must be a number in \[0, 1\)"),
        ("attention", {"units": 0}, "units must be a positive integer"),
        ("attention", {"attention_units": -2}, "attention_units must be"),
        ("luong", {"source_alphabet": "aab"}, "distinct single characters"),
        ("luong", {"target_alphabet": "0123^"}, "without the START/END markers"),
        ("luong", {"max_source_length": 0}, "max_source_length must be"),
        ("attention", {"name": ""}, "name must be a non-empty string"),
    ],
)
def test_bad_builder_arguments(name, options, message):
    with pytest.raises(ValueError, match=message):
        apps.build(name, **options)


def test_other_alphabets_and_lengths():
    model = apps.build(
        "luong",
        source_alphabet="abc",
        target_alphabet="xy",
        max_source_length=5,
        max_target_length=3,
        units=4,
        embedding_dim=2,
    )
    logits = model({"source": tf.constant(["abc"]), "target": tf.constant(["xy"])})
    assert tuple(logits.shape) == (1, 4, 6)
    assert text.max_lengths(model) == (5, 3)


def test_calendar_check_in_the_graph():
    candidates = [
        "2000-02-29",
        "1900-02-29",
        "2001-02-31",
        "1979-05-03",
        "1979-13-01",
        "1979-00-10",
        "1979-05-00",
        "1979-5-3",
        "",
    ]
    found = decoding._calendar_date(tf.constant(candidates)).numpy().tolist()
    assert found == [True, False, False, True, False, False, False, False, False]
