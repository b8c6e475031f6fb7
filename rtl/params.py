"""Validation of component parameters, with the exact messages Amaranth's library uses."""

from __future__ import annotations

__all__ = ["check_choice", "check_positive_int"]


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer of at least ``minimum``, else raise TypeError.

    The message names the parameter and the bad value, e.g.
    "Lane count must be a positive integer, not 0".
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise TypeError(f"{name} must be {kind}, not {value!r}")
    return value


def check_choice(name: str, value: object, choices) -> object:
    """Return ``value`` if it is one of ``choices`` (a tuple, or a dict's keys), else
    raise ValueError naming them all, e.g. "Port must be one of dual, single, banked,
    not 'quad'"."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value
