"""The date-normalisation corpus: human-written dates and their ISO 8601 form.

Every example is a pair ``(text, iso)``, e.g. ``("3rd of May 1979", "1979-05-03")``.
The corpus is generated, never downloaded: the same seed gives the same examples on
every machine.

Writings covered (any of them in lower, Capitalised or UPPER case):

========================  ===================================================
day-month-year            ``3 May 1979``, ``3rd of May, 1979``, ``the 3rd of May``
month-day-year            ``May 3, 1979``, ``May 3rd 1979``
abbreviated months        ``3 Sep 1979``, ``Sept. 3rd, 1979``
weekday first (optional)  ``Thursday, 3 May 1979``, ``Thu May 3, 1979``
numeric, day first        ``3/5/1979``, ``03-05-1979``, ``3.5.1979``
ISO 8601 itself           ``1979-05-03``
========================  ===================================================

Conventions, which the model learns and the command line documents:

- **Numeric dates are day first**: ``03/05/1979`` is 3 May 1979, whatever the
  separator (``/``, ``-`` or ``.``). Only a leading four-digit year (ISO
  ``1979-05-03``) is read year first.
- Years have four digits and lie in ``FIRST_DATE.year``..``LAST_DATE.year``.
- A weekday, when written, is the right one for the date.

Splits are by *date*, not by writing, so held-out dates are never seen in training
in any writing: a date whose proleptic ordinal is ``0 (mod 20)`` is a test date,
``10 (mod 20)`` a validation date, every other date a training date.

>>> examples(2, split="test", seed=0)  # doctest: +SKIP
[('Friday 14th of June 1991', '1991-06-14'), ('23.07.2060', '2060-07-23')]
"""

from __future__ import annotations

import datetime
import random
import re

import tensorflow as tf

FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)
SPLITS = ("train", "validation", "test")
ISO_LENGTH = 10  # YYYY-MM-DD

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# The usual abbreviations; September has two.
MONTH_ABBREVIATIONS = (
    ("Jan",),
    ("Feb",),
    ("Mar",),
    ("Apr",),
    ("May",),
    ("Jun",),
    ("Jul",),
    ("Aug",),
    ("Sep", "Sept"),
    ("Oct",),
    ("Nov",),
    ("Dec",),
)
WEEKDAYS = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
NUMERIC_SEPARATORS = ("/", "-", ".")

# Every character a normalised input may hold (inputs are lower-cased first), and
# every character of an output.
SOURCE_ALPHABET = " ,-./0123456789abcdefghijklmnopqrstuvwxyz"
TARGET_ALPHABET = "-0123456789"
# The longest writing is 38 characters ("wednesday, the 30th of september, 1970");
# longer inputs are refused rather than cut.
MAX_SOURCE_LENGTH = 40

_SPLIT_RESIDUES = {"test": 0, "validation": 10}
_FIRST, _LAST = FIRST_DATE.toordinal(), LAST_DATE.toordinal()


def split_of(date: datetime.date) -> str:
    """The split a date belongs to: ``"train"``, ``"validation"`` or ``"test"``."""
    residue = date.toordinal() % 20
    for split, wanted in _SPLIT_RESIDUES.items():
        if residue == wanted:
            return split
    return "train"


def ordinal(day: int) -> str:
    """The ordinal: ``1`` -> ``"1st"``, ``11`` -> ``"11th"``, ``23`` -> ``"23rd"``."""
    if 10 <= day % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def write(date: datetime.date, rng: random.Random) -> str:
    """One human writing of ``date``, drawn with ``rng`` (see the module docstring)."""
    # Written dates are the hard part: they get most of the draws.
    style = rng.choice(
        (
            "day_month",
            "day_month",
            "month_day",
            "month_day",
            "numeric",
            "numeric",
            "iso",
        )
    )
    if style == "iso":
        return date.isoformat()
    if style == "numeric":
        separator = rng.choice(NUMERIC_SEPARATORS)
        day, month = date.day, date.month
        if rng.random() < 0.5:
            return f"{day:02d}{separator}{month:02d}{separator}{date.year}"
        return f"{day}{separator}{month}{separator}{date.year}"

    text = _written(date, style, rng)
    if rng.random() < 0.3:
        weekday = WEEKDAYS[date.weekday()]
        if rng.random() < 0.4:
            weekday = weekday[:3] + rng.choice(("", "."))
        text = f"{weekday}{rng.choice((' ', ', '))}{text}"
    case = rng.choice(("as_written", "lower", "upper"))
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    return text  # capitalised: "Thursday, 3rd of May 1979"


def _written(date, style, rng):
    """A date with its month written out, day first or month first."""
    if rng.random() < 0.5:
        month = MONTHS[date.month - 1]
    else:
        month = rng.choice(MONTH_ABBREVIATIONS[date.month - 1])
        if month != MONTHS[date.month - 1]:  # "May" is no abbreviation
            month += rng.choice(("", "."))
    day_style = rng.choice(("plain", "padded", "ordinal", "ordinal"))
    day = {
        "plain": str(date.day),
        "padded": f"{date.day:02d}",
        "ordinal": ordinal(date.day),
    }[day_style]
    year = str(date.year)
    if style == "month_day":
        return f"{month} {day}{rng.choice((', ', ' '))}{year}"
    of = day_style == "ordinal" and rng.random() < 0.6
    the = of and rng.random() < 0.3
    text = f"{'the ' if the else ''}{day} {'of ' if of else ''}{month}"
    return f"{text}{rng.choice((' ', ', '))}{year}"


def random_date(rng: random.Random, split: str = "train") -> datetime.date:
    """A date drawn uniformly from ``split``'s dates."""
    _check_split(split)
    while True:
        date = datetime.date.fromordinal(rng.randint(_FIRST, _LAST))
        if split_of(date) == split:
            return date


def examples(
    count: int, *, split: str = "train", seed: int = 0, epoch: int | None = None
) -> list[tuple[str, str]]:
    """``count`` pairs ``(text, iso)`` of ``split``'s dates, a function of the seed.

    Args:
        count: how many pairs.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        seed: the corpus seed.
        epoch: for training streams, the epoch (each epoch gets fresh pairs, which
            depend only on ``(seed, epoch)``).

    Returns:
        A list of ``(text, iso)`` string pairs.
    """
    _check_split(split)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an integer >= 0. Received: count={count!r}")
    # A string seed is hashed with SHA-512: stable across runs and Python versions.
    rng = random.Random(f"dates/{split}/{seed}/{epoch}")
    pairs = []
    for _ in range(count):
        date = random_date(rng, split)
        pairs.append((write(date, rng), date.isoformat()))
    return pairs


def training_stream(
    *, seed: int, examples_per_epoch: int, start_epoch: int = 0
) -> tf.data.Dataset:
    """An endless ``tf.data`` stream of ``(text, iso)`` string pairs, epoch after epoch.

    Epoch ``e`` holds :func:`examples` ``(examples_per_epoch, split="train",
    seed=seed, epoch=e)``: fresh writings every epoch, and an epoch's data depend
    only on ``(seed, e)``, so a run resumed at ``start_epoch`` sees what it would
    have seen.
    """

    def draw(epoch):
        pairs = examples(examples_per_epoch, split="train", seed=seed, epoch=int(epoch))
        return [text for text, _ in pairs], [iso for _, iso in pairs]

    def one_epoch(epoch):
        # One Python call per epoch, not per example: from_generator would cost a
        # Python round trip for every pair.
        texts, isos = tf.py_function(draw, [epoch], [tf.string, tf.string])
        texts.set_shape([examples_per_epoch])
        isos.set_shape([examples_per_epoch])
        return tf.data.Dataset.from_tensor_slices((texts, isos))

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(one_epoch)


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")


# Checking an answer against its question

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[a-z]+")


class DateError(ValueError):
    """An output that is no date, or not the date the input names."""


def check_output(text: str, iso: str) -> datetime.date:
    """Checks a translation ``text -> iso``; returns the date or raises DateError.

    Not a parser (the model is the parser), a sanity check that catches an
    impossible date and an output made up from nothing:

    - ``iso`` must be ``YYYY-MM-DD`` and a real calendar date (``2001-02-31`` is
      refused: "31 February 2001" has no ISO form);
    - its year must be written in ``text``, its day must be a number in ``text``
      (``3``, ``03``, ``3rd``), its month a number or a month name;
    - a weekday written in ``text`` must be the date's.

    Raises:
        DateError: saying which check failed.
    """
    match = _ISO.match(iso)
    if not match:
        raise DateError(f"the output {iso!r} is not a date of the form YYYY-MM-DD")
    year, month, day = (int(part) for part in match.groups())
    try:
        date = datetime.date(year, month, day)
    except ValueError:
        if 1 <= month <= 12:
            reason = f"{MONTHS[month - 1]} {year} has no day {day}"
        else:
            reason = f"there is no month {month}"
        raise DateError(
            f"{text!r} names no calendar date (the model read it as {iso}, "
            f"and {reason})"
        ) from None
    lowered = text.lower()
    numbers = [int(number) for number in _NUMBER.findall(lowered)]
    words = _WORD.findall(lowered)
    months = {index + 1 for index, name in _month_names() if name in words}
    if (
        year not in numbers
        or day not in numbers
        or not (month in numbers or month in months)
    ):
        raise DateError(
            f"the output {iso} does not match {text!r}; the input may not be a "
            "date of the writings this model knows"
        )
    weekdays = {
        index for index, name in enumerate(WEEKDAYS) if _weekday_in(name, words)
    }
    if weekdays and weekdays != {date.weekday()}:
        written = ", ".join(WEEKDAYS[index] for index in sorted(weekdays))
        raise DateError(
            f"{text!r} says {written} but {iso} is a {WEEKDAYS[date.weekday()]}"
        )
    return date


def _month_names():
    for index, name in enumerate(MONTHS):
        yield index, name.lower()
        for abbreviation in MONTH_ABBREVIATIONS[index]:
            yield index, abbreviation.lower()


def _weekday_in(name, words):
    name = name.lower()
    return name in words or name[:3] in words
