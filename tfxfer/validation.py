"""Checks at the boundary, each failing with a message that names the
argument, what was received and what is expected (scikit-learn's
`check_array` / `check_consistent_length`, Keras' `Received: x=...`).

>>> check_choice("bn", "frozen", ("frozen", "train"))
'frozen'
>>> check_choice("bn", "off", ("frozen", "train"))
Traceback (most recent call last):
...
ValueError: bn must be one of ('frozen', 'train'). Received: bn='off'
"""

import numbers


def check_choice(name, value, choices, alternative=""):
    """`value` when it is one of `choices`; `alternative` names what else is
    accepted (`" or None"`)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}{alternative}. Received: {name}={value!r}")
    return value


def check_number(name, value, low=None, high=None, *, integer=False, low_open=False, high_open=False, hint=""):
    """`value` when it is a number (an integer with `integer`) in the range
    given; `hint` says what the number means."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        noun = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {noun}{hint}. Received: {name}={value!r}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        left = "" if low is None else ("(" if low_open else "[") + f"{low}"
        right = "" if high is None else f"{high}" + (")" if high_open else "]")
        span = f"in {left or '(-inf'}, {right or 'inf)'}"
        raise ValueError(f"{name} must be {span}{hint}. Received: {name}={value!r}")
    return value


def check_seed(seed):
    """A seed NumPy, scikit-learn and TensorFlow all take: an integer in [0, 2**32)."""
    return check_number("seed", seed, 0, 2**32, integer=True, high_open=True)


def check_consistent_length(**arrays):
    """Raises when the named arrays (None skipped) differ in length, naming each length."""
    lengths = {name: _length(array) for name, array in arrays.items() if array is not None}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise ValueError(f"The inputs hold different numbers of examples ({listed}); pass one row each.")


def _length(array):
    shape = getattr(array, "shape", None)
    return shape[0] if shape is not None and len(shape) else len(array)


def check_encoding(encoding):
    """Refuses a name Python knows as no text encoding."""
    import codecs

    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(
            f"encoding={encoding!r} is not a text encoding Python knows: pass e.g. utf-8, latin-1, cp1252 or utf-16."
        ) from None
