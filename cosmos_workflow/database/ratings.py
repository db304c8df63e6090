"""A run's rating: the user's 1-5 score of its output."""

from __future__ import annotations

from cosmos_workflow.errors import ValidationFailure

MIN_RATING = 1
MAX_RATING = 5


def check_rating(value: int, what: str = "rating") -> int:
    """Return ``value`` if it is a whole number from 1 to 5.

    Raises:
        ValidationFailure: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailure(f"{what} must be a whole number, got {value!r}")
    if not MIN_RATING <= value <= MAX_RATING:
        raise ValidationFailure(f"{what} must be from {MIN_RATING} to {MAX_RATING}, got {value}")
    return value
