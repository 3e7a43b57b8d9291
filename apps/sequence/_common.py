"""What the translators share: argument checks and the date task's defaults."""

from apps.data import dates
from apps.vision import blocks

check_bool = blocks.check_bool
check_choice = blocks.check_choice
check_positive_int = blocks.check_positive_int
check_rate = blocks.check_rate


def check_alphabet(argument, alphabet, default):
    """Returns ``alphabet`` (default: ``default``) as a string of distinct characters.

    The characters of the vocabulary; padding, unknown, START and END are added by
    the vectorizers.
    """
    if alphabet is None:
        alphabet = default
    try:
        characters = list(alphabet)
    except TypeError:
        characters = None
    if (
        not characters
        or not all(isinstance(c, str) and len(c) == 1 for c in characters)
        or len(set(characters)) != len(characters)
        or "^" in characters
        or "$" in characters
    ):
        raise ValueError(
            f"{argument} must be a non-empty string (or sequence) of distinct single "
            "characters, without the START/END markers '^' and '$'. "
            f"Received: {argument}={alphabet!r}"
        )
    return "".join(characters)


def check_translation(
    *, source_alphabet, target_alphabet, max_source_length, max_target_length, name
):
    """Validates the arguments every translator takes; returns them resolved.

    ``None`` means the date task's value (``apps.data.dates``).
    """
    source_alphabet = check_alphabet(
        "source_alphabet", source_alphabet, dates.SOURCE_ALPHABET
    )
    target_alphabet = check_alphabet(
        "target_alphabet", target_alphabet, dates.TARGET_ALPHABET
    )
    if max_source_length is None:
        max_source_length = dates.MAX_SOURCE_LENGTH
    if max_target_length is None:
        max_target_length = dates.ISO_LENGTH
    check_positive_int("max_source_length", max_source_length)
    check_positive_int("max_target_length", max_target_length)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
    return source_alphabet, target_alphabet, max_source_length, max_target_length
