"""Reading a YAML file of conf/ or manifests/ safely: each problem with its file, line and column.

Hydra reads the project's files through the ``cosmos`` config source
(hydra_plugins/cosmos_workflow_searchpath), which calls :func:`check_config_text`
first. So a file that is too large, not UTF-8, holds a NUL byte, breaks the
YAML syntax, repeats a key, expands an alias bomb or (an experiment) lacks
its ``# @package _global_`` line is refused in one sentence before Hydra or
OmegaConf spend time or memory on it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from cosmos_workflow.errors import ValidationFailure

# YAML's own tags; anything else (!!python/object, !custom) is refused.
_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "merge", "timestamp")
)
# Characters YAML allows in a file (tab, newlines, printable); the others are named.
_FORBIDDEN = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\ud800-\udfff]"
)
_HEADER_LINE = re.compile(r"^\s*#\s*@")
_PACKAGE_LINE = re.compile(r"^\s*#\s*@\s*package\b(.*)$")
GLOBAL = "_global_"
# Manifests of this config group are laid over the whole config (their header says so).
EXPERIMENT_GROUP = "experiment"
# Deeper nesting is no manifest (and would exhaust Python's stack in the parsers).
MAX_DEPTH = 64
_UTF8_BOM = b"\xef\xbb\xbf"


class ConfigFileError(ValidationFailure):
    """A YAML file of the project cannot be used; the message names it and the place."""


@dataclass(frozen=True)
class YamlLimits:
    """How large one YAML file may be (limits.yaml_bytes and limits.yaml_nodes)."""

    max_bytes: int
    max_nodes: int


def project_yaml_limits(root: Path, env: Mapping[str, str] | None = None) -> YamlLimits:
    """limits.yaml_bytes and limits.yaml_nodes of a project's user config file and COSMOS_*.

    Read before conf/ is (conf/ cannot set them).
    """
    from cosmos_workflow.config.manager import ConfigManager
    from cosmos_workflow.config.project import ProjectPaths

    manager = ConfigManager(ProjectPaths(root), os.environ if env is None else env)
    limits = manager.settings().limits
    return YamlLimits(limits.yaml_bytes, limits.yaml_nodes)


def shown_path(path: Path, root: Path) -> str:
    """A file as errors name it: relative to the project when inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class _Where:
    """A file as shown to the user."""

    shown: str

    def at(self, line: int, column: int, message: str) -> ConfigFileError:
        return ConfigFileError(f"{self.shown}, line {line}, column {column}: {message}")

    def whole(self, message: str) -> ConfigFileError:
        return ConfigFileError(f"{self.shown}: {message}")


def read_config_file(path: Path, shown: str, limits: YamlLimits, group: str | None) -> str:
    """The text of a YAML config file, checked (see :func:`check_config_text`).

    Args:
        path: The file.
        shown: How the file is named in errors (relative to the project).
        limits: Its size limits.
        group: Its Hydra config group ("experiment", "prompts", "target", ... or None).

    Raises:
        ConfigFileError: the file cannot be read or used; names it and the place.
    """
    where = _Where(shown)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise where.whole("is not a regular file")
        if info.st_size > limits.max_bytes:
            raise where.whole(_too_many_bytes(info.st_size, limits))
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise where.whole(f"cannot be read: {exc.strerror or exc}") from exc
    if len(data) > limits.max_bytes:
        raise where.whole(_too_many_bytes(len(data), limits))
    return check_config_text(data, shown, limits, group)


def _too_many_bytes(size: int, limits: YamlLimits) -> str:
    return (
        f"{size} bytes, more than limits.yaml_bytes ({limits.max_bytes}); if the file is "
        "meant to be this large, raise limits.yaml_bytes in the user config file or with "
        "COSMOS_LIMITS__YAML_BYTES"
    )


def check_config_text(data: bytes, shown: str, limits: YamlLimits, group: str | None) -> str:
    """Decode and check a YAML config file's bytes; return its text (without a BOM).

    Raises:
        ConfigFileError: not UTF-8, a forbidden character, a YAML error, a
            repeated key, a tag other than YAML's own, too many values (aliases
            expanded), too deep, not a mapping, or an experiment without its
            ``# @package _global_`` first line.
    """
    where = _Where(shown)
    text = _decode(data.removeprefix(_UTF8_BOM), where)
    _check_characters(text, where)
    reader = _Reader(where, limits)
    reader.read(text)
    if group == EXPERIMENT_GROUP:
        _check_experiment_header(text, reader.empty, where)
    return text


def _decode(data: bytes, where: _Where) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_position(data, exc.start)
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise where.at(
            line,
            column,
            f"byte 0x{data[exc.start]:02X} is not UTF-8{hint}; save the file as UTF-8",
        ) from exc


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _check_characters(text: str, where: _Where) -> None:
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    char = found.group()
    name = f"the control character U+{ord(char):04X}"
    if char == "\0":
        name = "a NUL character (U+0000)"
    line, column = _position(text, found.start())
    raise where.at(
        line, column, f"{name} cannot be in a YAML file; write it as an escape in double quotes"
    )


def _syntax_error(exc: yaml.MarkedYAMLError, where: _Where, text: str) -> ConfigFileError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if "nesting depth" in problem:
        return where.at(mark.line + 1, 1, f"nested more than {MAX_DEPTH} levels deep")
    if "single document" in (exc.context or ""):
        return where.at(
            mark.line + 1 if mark else 1,
            mark.column + 1 if mark else 1,
            "a second YAML document ('---'): a config file holds one document",
        )
    if "'\\t'" in problem or (mark is not None and _char_at(text, mark) == "\t"):
        problem = f"{problem}: a tab cannot indent YAML, use spaces"
    context = ""
    if exc.context and exc.problem and exc.context_mark is not None:
        start = exc.context_mark
        context = f" ({exc.context} at line {start.line + 1}, column {start.column + 1})"
    message = f"YAML syntax error: {problem}{context}"
    if mark is None:
        return where.whole(message)
    return where.at(mark.line + 1, mark.column + 1, message)


def _char_at(text: str, mark: yaml.Mark) -> str:
    lines = text.splitlines()
    if mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""


@dataclass
class _Open:
    """A mapping or list being read: its size so far, and (a mapping) its keys."""

    event: yaml.Event
    size: int = 1
    keys: dict[str, yaml.Event] | None = None
    next_is_key: bool = True


class _Reader:
    """Reads a file's YAML events once, checking as it goes; stops at the first problem.

    Counts every value with each alias counted as what it repeats (an alias
    bomb is refused after limits.yaml_nodes values, in milliseconds), and
    checks keys, tags, nesting and that the file holds one mapping.
    """

    def __init__(self, where: _Where, limits: YamlLimits) -> None:
        self._where = where
        self._limits = limits
        self._anchors: dict[str, int] = {}
        self._stack: list[_Open] = []
        self._total = 0
        self._aliased = False
        self._documents = 0
        self.empty = True

    def read(self, text: str) -> None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            for event in yaml.parse(text, Loader=loader):
                self._event(event)
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(exc, self._where, text) from exc
        except yaml.YAMLError as exc:
            raise self._where.whole(f"YAML error: {exc}") from exc

    def _event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self._documents += 1
            if self._documents > 1:
                raise self._at(
                    event, "a second YAML document ('---'): a config file holds one document"
                )
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)
        elif isinstance(event, yaml.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._open(event)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            self._close()

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        self._check_tag(event)
        if not self._stack:
            if event.value in ("", "~", "null", "Null", "NULL") and event.implicit[0]:
                return  # an empty document
            raise self._where.whole(
                "holds a single value, not a mapping of keys (like 'name: ...' and 'model: ...')"
            )
        self._add(event, 1, event.value)

    def _alias(self, event: yaml.AliasEvent) -> None:
        size = self._anchors.get(event.anchor)
        if size is None:
            if any(item.event.anchor == event.anchor for item in self._stack):
                raise self._at(
                    event, f"the alias *{event.anchor} refers to the value that holds it"
                )
            raise self._at(event, f"the alias *{event.anchor} refers to no anchor &{event.anchor}")
        self._aliased = True
        self._add(event, size, None)

    def _open(self, event: yaml.CollectionStartEvent) -> None:
        self._check_tag(event)
        if not self._stack and isinstance(event, yaml.SequenceStartEvent):
            raise self._where.whole(
                "holds a list, not a mapping of keys (like 'name: ...' and 'model: ...')"
            )
        if len(self._stack) >= MAX_DEPTH:
            raise self._at(event, f"nested more than {MAX_DEPTH} levels deep")
        self.empty = False
        keys = {} if isinstance(event, yaml.MappingStartEvent) else None
        self._stack.append(_Open(event, keys=keys))
        self._count(event, 1)

    def _close(self) -> None:
        done = self._stack.pop()
        if done.event.anchor:
            self._anchors[done.event.anchor] = done.size
        if self._stack:
            self._place(done.event, done.size, None)

    def _add(self, event: yaml.Event, size: int, key: str | None) -> None:
        self._count(event, size)
        if getattr(event, "anchor", None) and not isinstance(event, yaml.AliasEvent):
            self._anchors[event.anchor] = size
        self._place(event, size, key)

    def _place(self, event: yaml.Event, size: int, key: str | None) -> None:
        """Add a finished value to the mapping or list that holds it."""
        parent = self._stack[-1]
        parent.size += size
        if parent.keys is None:
            return
        if parent.next_is_key and key is not None and key != "<<":
            first = parent.keys.get(key)
            if first is not None:
                line, column = first.start_mark.line + 1, first.start_mark.column + 1
                raise self._at(
                    event,
                    f"duplicate key {key!r} (first at line {line}, column {column}); "
                    "each key (each prompt name too) may appear once",
                )
            parent.keys[key] = event
        parent.next_is_key = not parent.next_is_key

    def _count(self, event: yaml.Event, size: int) -> None:
        self._total += size
        if self._total <= self._limits.max_nodes:
            return
        aliases = " once its aliases (*name) are expanded" if self._aliased else ""
        raise self._at(
            event,
            f"holds more than {self._limits.max_nodes} values{aliases}, more than "
            "limits.yaml_nodes; if that is meant, raise limits.yaml_nodes in the user config "
            "file or with COSMOS_LIMITS__YAML_NODES",
        )

    def _check_tag(self, event: yaml.NodeEvent) -> None:
        tag = getattr(event, "tag", None)
        if tag is None or tag == "!" or tag in _TAGS:
            return
        short = tag.replace("tag:yaml.org,2002:", "!!")
        raise self._at(event, f"the tag {short} is not allowed in a config file")

    def _at(self, event: yaml.Event, message: str) -> ConfigFileError:
        mark = event.start_mark
        return self._where.at(mark.line + 1, mark.column + 1, message)


def _check_experiment_header(text: str, empty: bool, where: _Where) -> None:
    """An experiment needs ``# @package _global_`` above everything else (Hydra's rule)."""
    if empty:
        raise where.whole(
            "is empty: a manifest starts with the line '# @package _global_' and sets name, "
            "prompts (or a defaults list with /prompts: SET) and model; see "
            "manifests/experiment/demo.yaml"
        )
    lines = text.splitlines()
    package, line_no = _header_package(lines, where)
    if package == GLOBAL:
        return
    if package is not None:
        raise where.at(
            line_no,
            1,
            f"'# @package {package}' puts the manifest under the key '{package}'; a manifest "
            f"of manifests/experiment/ needs '# @package {GLOBAL}'",
        )
    for number, line in enumerate(lines, start=1):
        if _PACKAGE_LINE.match(line):
            raise where.at(
                number,
                1,
                f"'# @package {GLOBAL}' must be the first line of the file (Hydra reads it "
                "only above every other line, comments included): move it to the first line",
            )
    raise where.whole(
        f"has no '# @package {GLOBAL}' first line: without it Hydra puts the whole file "
        f"under the key '{EXPERIMENT_GROUP}' and finds no manifest; add it as the first line"
    )


def _header_package(lines: list[str], where: _Where) -> tuple[str | None, int]:
    """The package of the file's header (Hydra's rules) and its line; (None, 0) if none."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not _HEADER_LINE.match(line):
            break
        found = _PACKAGE_LINE.match(line)
        if found is None:
            continue
        parts = found.group(1).split()
        if len(parts) != 1:
            raise where.at(
                number,
                1,
                f"a package line takes one package: write '# @package {GLOBAL}'",
            )
        return parts[0], number
    return None, 0
