"""Prompt names and texts: printable characters only, and a bounded length.

A prompt's name is shown in plan tables and stored with its runs: one line
of printable characters. Its text (and negative prompt), as rendered, goes to
the model: printable characters, newlines and tabs, at most
limits.prompt_chars characters (the models read some 512 tokens of it).
"""

from __future__ import annotations

import unicodedata

# Longer names do not fit a plan table's column or a folder listing.
MAX_NAME_CHARS = 200
_TEXT_WHITESPACE = frozenset("\n\t")
_NAMED = {"\0": "NUL", "\n": "newline", "\r": "carriage return", "\t": "tab", "\x1b": "escape"}


def _first_control(text: str, allowed: frozenset[str]) -> tuple[int, str] | None:
    for index, char in enumerate(text):
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
            return index, char
    return None


def describe(char: str) -> str:
    """A control character as people call it: 'a NUL character (U+0000)'."""
    name = _NAMED.get(char)
    code = f"U+{ord(char):04X}"
    if char == "\0":
        return f"a NUL character ({code})"
    return f"the control character {code}" + (f" ({name})" if name else "")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a prompt, or None."""
    if not name.strip():
        return "a prompt name cannot be empty"
    found = _first_control(name, frozenset())
    if found is not None:
        return (
            f"the prompt name {name!r} has {describe(found[1])}: a name is one line of "
            "printable characters"
        )
    if len(name) > MAX_NAME_CHARS:
        return f"the prompt name is {len(name)} characters long, more than {MAX_NAME_CHARS}"
    return None


def text_problem(text: str, max_chars: int) -> str | None:
    """Why ``text`` cannot be a prompt's text (or negative prompt), or None.

    Args:
        text: The text as the model would get it (rendered).
        max_chars: limits.prompt_chars.
    """
    found = _first_control(text, _TEXT_WHITESPACE)
    if found is not None:
        index, char = found
        return (
            f"has {describe(char)} at character {index + 1}: prompt text holds printable "
            "characters, newlines and tabs only"
        )
    if len(text) > max_chars:
        return (
            f"{len(text)} characters, more than limits.prompt_chars ({max_chars}); the models "
            "read some 512 tokens (about 2,000 characters) of a prompt: shorten it, or raise "
            "limits.prompt_chars"
        )
    return None
