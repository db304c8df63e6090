"""Content hashing: file checksums, checksum files (sha256sum's format) and canonical ids."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

_CHUNK = 1024 * 1024
ID_HEX_LENGTH = 16
# A sha256 as every checksum file and host program writes it: 64 lowercase hex digits.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Built once: json.dumps with options builds a new encoder per call, which
# doubles the cost of hashing thousands of small run specs.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(data: Any) -> str:
    """Serialize ``data`` canonically: sorted keys, no spaces, UTF-8 kept.

    The result is the same on every machine and Python version for the JSON
    types (dict, list, str, int, float, bool, None); floats use Python's
    shortest round-trip representation.
    """
    return _CANONICAL.encode(data)


def content_id(prefix: str, data: Any) -> str:
    """Return ``prefix`` + the first hex digits of sha256(canonical_json(data))."""
    digest = hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
    return f"{prefix}_{digest[:ID_HEX_LENGTH]}"


# sha256sum(1) writes a name holding one of these escaped, and the line then
# starts with a backslash (GNU coreutils 9; `sha256sum -c` reads it back).
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}


def sums_line(digest: str, name: str) -> str:
    """One line of a checksum file as sha256sum writes it: ``<hex>  <name>``.

    A name with a backslash, newline or carriage return is escaped
    (``\\\\``, ``\\n``, ``\\r``) and the line starts with a backslash, so
    ``sha256sum -c`` checks files of any name.
    """
    if any(char in name for char in _ESCAPES):
        escaped = "".join(_ESCAPES.get(char, char) for char in name)
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def sums_text(entries: list[tuple[str, str]]) -> str:
    """A checksum file (sha256sum format) of (sha256, name) pairs, in the order given."""
    return "".join(sums_line(digest, name) for digest, name in entries)


def parse_sums(text: str) -> list[tuple[str, str]]:
    """The (sha256, name) pairs of a checksum file in sha256sum format, escaped names too.

    Raises:
        ValueError: a line that is not ``<64 lowercase hex>  <name>`` (or its
            escaped form); the message names the line.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [_parse_sums_line(line, number) for number, line in enumerate(lines, start=1)]


def _parse_sums_line(line: str, number: int) -> tuple[str, str]:
    escaped = line.startswith("\\")
    body = line[1:] if escaped else line
    digest, separator, name = body[:64], body[64:66], body[66:]
    if not SHA256_HEX.fullmatch(digest) or separator not in ("  ", " *") or not name:
        raise ValueError(f"line {number} is not '<sha256>  <name>': {line[:100]!r}")
    if not escaped:
        return digest, name
    chars: list[str] = []
    pending = False
    for char in name:
        if pending:
            if char not in _UNESCAPES:
                raise ValueError(f"line {number}: unknown escape \\{char} in {name[:100]!r}")
            chars.append(_UNESCAPES[char])
            pending = False
        elif char == "\\":
            pending = True
        else:
            chars.append(char)
    if pending:
        raise ValueError(f"line {number}: the name ends in a lone backslash: {name[:100]!r}")
    return digest, "".join(chars)
