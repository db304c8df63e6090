"""Words for people: a count with its noun."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``1 run``, ``12 runs`` (the noun's plural is the noun and an s).

    Args:
        number: How many.
        noun: The singular noun.
    """
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
