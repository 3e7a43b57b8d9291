"""The date corpus: deterministic, split by date, every writing covered, checks."""

import datetime
import re

import pytest

from apps.data import dates

NUMERIC = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})$")


@pytest.fixture(scope="module")
def corpus():
    return dates.examples(3000, split="train", seed=7)


def test_same_seed_same_corpus_other_seed_other_corpus():
    assert dates.examples(50, seed=3) == dates.examples(50, seed=3)
    assert dates.examples(50, seed=3) != dates.examples(50, seed=4)
    assert dates.examples(50, seed=3, epoch=0) != dates.examples(50, seed=3, epoch=1)
    assert dates.examples(0) == []


def test_splits_are_disjoint_by_date():
    for split in dates.SPLITS:
        for _, iso in dates.examples(300, split=split, seed=1):
            assert dates.split_of(datetime.date.fromisoformat(iso)) == split
    day = datetime.date(2000, 1, 1)
    counts = {split: 0 for split in dates.SPLITS}
    for offset in range(2000):
        counts[dates.split_of(day + datetime.timedelta(days=offset))] += 1
    assert counts == {"train": 1800, "validation": 100, "test": 100}


def test_every_pair_is_right_and_fits_the_model(corpus):
    for text, iso in corpus:
        date = dates.check_output(text, iso)  # year, month, day, weekday all in text
        assert dates.FIRST_DATE <= date <= dates.LAST_DATE
        assert len(text) <= dates.MAX_SOURCE_LENGTH
        assert set(text.lower()) <= set(dates.SOURCE_ALPHABET)
        assert set(iso) <= set(dates.TARGET_ALPHABET) and len(iso) == dates.ISO_LENGTH


def test_numeric_dates_are_day_first(corpus):
    numeric = [(NUMERIC.match(text), iso) for text, iso in corpus]
    numeric = [(match, iso) for match, iso in numeric if match]
    assert {match[2] for match, _ in numeric} == set(dates.NUMERIC_SEPARATORS)
    for match, iso in numeric:
        day, _, month, year = match.groups()
        assert iso == f"{year}-{int(month):02d}-{int(day):02d}"


@pytest.mark.parametrize(
    "pattern",
    [
        r"^\d{4}-\d{2}-\d{2}$",  # ISO itself
        r"^\d{1,2} [A-Za-z]+\.? \d{4}$",  # 3 May 1979
        r"\d(st|nd|rd|th) of ",  # 3rd of May
        r"^the \d",  # the 3rd of May
        r"^[A-Za-z]+\.? \d{1,2}(st|nd|rd|th)?,? \d{4}$",  # May 3, 1979
        r", \d{4}$",  # comma before the year
        r"(?i)^(monday|tuesday|wednesday|thursday|friday|saturday|sunday)",
        r"(?i)^(mon|tue|wed|thu|fri|sat|sun)\.? ",  # abbreviated weekday
        r"(?i)\b(jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b",
        r"\bSept\b",
        r"^[^a-z]*[A-Z]{3}[^a-z]*$",  # UPPER CASE
        r"^[^A-Z]*[a-z]{3}[^A-Z]*$",  # lower case
        r"[A-Z][a-z]",  # Capitalised
        r"^0\d[/.-]",  # day with a leading zero
        r"\b(1st|2nd|3rd|21st|22nd|23rd|31st)\b",
    ],
)
def test_writings_are_covered(corpus, pattern):
    assert any(re.search(pattern, text) for text, _ in corpus), pattern


@pytest.mark.parametrize(
    "day, expected",
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (23, "23rd"),
        (30, "30th"),
        (31, "31st"),
    ],
)
def test_ordinals(day, expected):
    assert dates.ordinal(day) == expected


def test_training_stream_is_keyed_by_epoch():
    stream = dates.training_stream(seed=5, examples_per_epoch=4)
    pairs = [(a.decode(), b.decode()) for a, b in stream.take(8).as_numpy_iterator()]
    assert pairs[:4] == dates.examples(4, seed=5, epoch=0)
    assert pairs[4:] == dates.examples(4, seed=5, epoch=1)
    resumed = dates.training_stream(seed=5, examples_per_epoch=4, start_epoch=1)
    first = [(a.decode(), b.decode()) for a, b in resumed.take(4).as_numpy_iterator()]
    assert first == pairs[4:]


@pytest.mark.parametrize(
    "text, iso, message",
    [
        ("31 February 2001", "2001-02-31", "names no calendar date"),
        ("29 Feb 1900", "1900-02-29", "February 1900 has no day 29"),
        ("1979-13-01", "1979-13-01", "there is no month 13"),
        ("31 February 2001", "2001-02-28", "does not match"),
        ("3rd of May 1979", "1979-05-04", "does not match"),
        ("3rd of May 1979", "1979-06-03", "does not match"),
        ("3rd of May 1979", "1978-05-03", "does not match"),
        ("Monday, 3 May 1979", "1979-05-03", "says Monday but 1979-05-03 is a Thurs"),
        ("3 May 1979", "1979-5-3", "not a date of the form YYYY-MM-DD"),
        ("3 May 1979", "", "not a date of the form"),
    ],
)
def test_check_output_refuses(text, iso, message):
    with pytest.raises(dates.DateError, match=message):
        dates.check_output(text, iso)


@pytest.mark.parametrize(
    "text, iso",
    [
        ("29 Feb 2000", "2000-02-29"),
        ("THU. 3RD OF MAY, 1979", "1979-05-03"),
        ("Sept. 21st, 2004", "2004-09-21"),
        ("03.05.1979", "1979-05-03"),
    ],
)
def test_check_output_accepts(text, iso):
    assert dates.check_output(text, iso) == datetime.date.fromisoformat(iso)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": 1, "split": "dev"}, "split must be one of"),
        ({"count": -1}, "count must be an integer >= 0"),
        ({"count": 2.5}, "count must be an integer >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dates.examples(**kwargs)
