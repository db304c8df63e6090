"""Content hashing: file checksums and canonical ids."""

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
