"""A corpus of malformed inputs, tried as a new user would: each one is refused the same way.

Every case exits 2 with one screen that names the file (or the command-line
override or option) and the key path (YAML errors: line and column), prints
no traceback, writes nothing (database rows, the outputs/ tree with its
multirun folders, the simulated model's ledger) and takes less than 5 s and
500 MB. The commands run in this process; the few cases where the process's
memory is itself the point (bombs) run as a process of their own under a
memory limit.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Project, copy_project

MAX_SECONDS = 5.0
MAX_BYTES = 500 * 1024 * 1024
# A process's address space is larger than what it uses: this only stops a runaway.
PROCESS_ADDRESS_SPACE = 3 * 1024 * 1024 * 1024
BAD = "manifests/experiment/bad.yaml"
BAD_PROMPTS = "manifests/prompts/bad_prompts.yaml"
HEADER = "# @package _global_\n"
# The demo's prompts need vars.style and a depth weight.
GOOD_BODY = "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
STREET = "inputs/demo/street"


def experiment(body: str = GOOD_BODY, prompts: str = "demo", header: str = HEADER) -> str:
    """An experiment manifest over a prompt set."""
    return f"{header}defaults:\n  - /prompts: {prompts}\nname: bad\n{body}"


def prompt_set(text: str = "A {{ style }} street", extra: str = "", name: str = "scene") -> str:
    """A prompt set of one prompt with the demo's street videos."""
    return (
        f"{name}:\n  text: {text}\n{extra}  inputs:\n    video: {STREET}/color.mp4\n"
        f"    controls:\n      depth: {STREET}/depth.mp4\n"
    )


def with_prompts(prompts: str, body: str = GOOD_BODY) -> dict[str, str | bytes]:
    """Files of an experiment over its own prompt set."""
    return {BAD_PROMPTS: prompts, BAD: experiment(body, prompts="bad_prompts")}


def video_at(path: str) -> dict[str, str | bytes]:
    """Files of an experiment whose one prompt's input video is ``path``."""
    text = prompt_set().replace(f"{STREET}/color.mp4", path)
    return with_prompts(text)


def numbers(count: int) -> str:
    return "[" + ", ".join(str(n) for n in range(count)) + "]"


def anchor_bomb(levels: int = 9) -> str:
    """A 'billion laughs': each level refers ten times to the one below."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class Case:
    """One malformed input.

    Attributes:
        args: The command's arguments ({prompt}: a stored prompt's id).
        expect: Fragments the error must hold (the file or override, the key).
        files: Files to write in the project for the case (removed after it).
        command: "batch" (cosmos-batch) or "cosmos".
        setup: Makes odd files (symlinks, pipes) in the project; returns them.
        process: Run as a process of its own under a memory limit (bombs).
    """

    args: tuple[str, ...]
    expect: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    command: str = "batch"
    setup: Callable[[Path], list[Path]] | None = None
    process: bool = False


def _loop(root: Path) -> list[Path]:
    odd = root / "inputs" / "odd"
    odd.mkdir(parents=True, exist_ok=True)
    (odd / "a.mp4").symlink_to("b.mp4")
    (odd / "b.mp4").symlink_to("a.mp4")
    return [odd / "a.mp4", odd / "b.mp4"]


def _dangling(root: Path) -> list[Path]:
    odd = root / "inputs" / "odd"
    odd.mkdir(parents=True, exist_ok=True)
    (odd / "gone.mp4").symlink_to("nowhere.mp4")
    return [odd / "gone.mp4"]


def _folder(root: Path) -> list[Path]:
    folder = root / "inputs" / "odd" / "folder.mp4"
    folder.mkdir(parents=True, exist_ok=True)
    return [folder]


def _fifo(root: Path) -> list[Path]:
    odd = root / "inputs" / "odd"
    odd.mkdir(parents=True, exist_ok=True)
    os.mkfifo(odd / "pipe.mp4")
    return [odd / "pipe.mp4"]


def _empty_video(root: Path) -> list[Path]:
    odd = root / "inputs" / "odd"
    odd.mkdir(parents=True, exist_ok=True)
    (odd / "empty.mp4").write_bytes(b"")
    return [odd / "empty.mp4"]


LONG_PATH = "inputs/" + "/".join(["d" * 200] * 25) + "/color.mp4"
LONG_NAME = "inputs/" + "n" * 300 + ".mp4"
TEN_THOUSAND = "x" * 10_000

CASES: dict[str, Case] = {
    # -- YAML syntax and encoding ---------------------------------------------------
    "a broken flow mapping": Case(
        ("+experiment=bad",),
        (BAD, "line 6", "column 1", "line 5, column 8"),
        {BAD: experiment("model: {seed: 1\n")},
    ),
    "a tab that indents": Case(
        ("+experiment=bad",),
        (BAD, "line 6", "tab"),
        {BAD: experiment("model:\n\tseed: 1\n")},
    ),
    "a duplicate key": Case(
        ("+experiment=bad",),
        (BAD, "line 6", "duplicate key", "model"),
        {BAD: experiment("model: {seed: 1}\nmodel: {seed: 2}\n")},
    ),
    "a duplicate prompt name": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "line 7", "duplicate key", "scene"),
        with_prompts(prompt_set() + prompt_set()),
    ),
    "a raw NUL byte": Case(
        ("+experiment=bad",),
        (BAD, "line 5", "column 15", "NUL"),
        {BAD: experiment("description: a\0b\n")},
    ),
    "a control character": Case(
        ("+experiment=bad",),
        (BAD, "line 5", "U+0007"),
        {BAD: experiment("description: ring\x07\n")},
    ),
    "latin-1 bytes": Case(
        ("+experiment=bad",),
        (BAD, "line 5", "column 17", "UTF-8"),
        {BAD: experiment("description: caf\xe9\n").encode("latin-1")},
    ),
    "UTF-16 text": Case(
        ("+experiment=bad",),
        (BAD, "UTF-8"),
        {BAD: experiment().encode("utf-16")},
    ),
    "non-UTF-8 bytes in a prompt set": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "line 2", "UTF-8"),
        {
            BAD_PROMPTS: prompt_set("caf\xe9").encode("latin-1"),
            BAD: experiment(prompts="bad_prompts"),
        },
    ),
    "an unclosed quote": Case(
        ("+experiment=bad",),
        (BAD, "line 5", "quoted"),
        {BAD: experiment('description: "never closed\nmodel: {seed: 1}\n')},
    ),
    "a key indented too far": Case(
        ("+experiment=bad",),
        (BAD, "line 7"),
        {BAD: experiment("model:\n  seed: 1\n   num_steps: 2\n")},
    ),
    "two YAML documents": Case(
        ("+experiment=bad",),
        (BAD, "line 5", "one document"),
        {BAD: experiment("---\nname: again\n")},
    ),
    "a Python object tag": Case(
        ("+experiment=bad",),
        (BAD, "line 5", "python/object"),
        {BAD: experiment("description: !!python/object:os.system {}\n")},
    ),
    "a list instead of a mapping": Case(
        ("+experiment=bad",),
        (BAD, "mapping"),
        {BAD: HEADER + "- name: bad\n- model: {}\n"},
    ),
    "a plain text file": Case(
        ("+experiment=bad",),
        (BAD, "mapping"),
        {BAD: HEADER + "just a sentence\n"},
    ),
    "YAML nested too deeply": Case(
        ("+experiment=bad",),
        (BAD, "nested", "levels"),
        {BAD: experiment(f"description: {nested(5000)}\n")},
    ),
    "a prompt set that does not exist": Case(
        ("+experiment=bad",),
        (BAD, "prompts/nope", "demo"),
        {BAD: experiment(prompts="nope")},
    ),
    # -- the package header --------------------------------------------------------
    "no package header": Case(
        ("+experiment=bad",),
        (BAD, "# @package _global_", "first line"),
        {BAD: experiment(header="")},
    ),
    "a comment above the package header": Case(
        ("+experiment=bad",),
        (BAD, "# @package _global_", "line 2", "first line"),
        {BAD: experiment(header="# My experiment\n" + HEADER)},
    ),
    "an empty file": Case(("+experiment=bad",), (BAD, "empty"), {BAD: ""}),
    "only comments": Case(
        ("+experiment=bad",), (BAD, "empty"), {BAD: HEADER + "# nothing yet\n\n"}
    ),
    "another package": Case(
        ("+experiment=bad",),
        (BAD, "_global_", "experiment"),
        {BAD: experiment(header="# @package experiment\n")},
    ),
    "a package line without a package": Case(
        ("+experiment=bad",),
        (BAD, "# @package _global_"),
        {BAD: experiment(header="# @package\n")},
    ),
    "a saved manifest without its header": Case(
        ("+experiment=bad",),
        (BAD, "# @package _global_", "first line"),
        {
            BAD: "name: saved\nprompts:\n"
            + "".join("  " + line + "\n" for line in prompt_set("a street").splitlines())
            + "model: {adapter: simulated, version: '1', weights: {depth: 0.5}}\n"
        },
    ),
    # -- interpolations -------------------------------------------------------------
    "the time in prompt text": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "${now:"),
        with_prompts(prompt_set("'A street at ${now:%H%M%S%f}'")),
    ),
    "an environment variable in prompt text": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "${oc.env:HOME}"),
        with_prompts(prompt_set("'A street in ${oc.env:HOME}'")),
    ),
    "an unset environment variable in prompt text": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "${oc.env:COSMOS_NO_SUCH_VARIABLE}"),
        with_prompts(prompt_set("'A ${oc.env:COSMOS_NO_SUCH_VARIABLE} street'")),
    ),
    "a node interpolation in prompt text": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "{{ "),
        with_prompts(prompt_set("'A ${vars.style} street'")),
    ),
    "a resolver in the negative prompt": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.negative", "${oc.decode:"),
        with_prompts(prompt_set(extra="  negative: '${oc.decode:\"1\"}'\n")),
    ),
    "a node interpolation in the negative prompt": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.negative", "{{ "),
        with_prompts(prompt_set(extra="  negative: 'blurry ${vars.style}'\n")),
    ),
    "an unclosed interpolation in a var": Case(
        ("+experiment=bad",),
        (BAD, "vars.label", "${x"),
        {BAD: experiment("vars: {style: x, label: 'a ${x'}\nmodel: {weights: {depth: 0.5}}\n")},
    ),
    "a dollar before a jinja2 variable in prompt text": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "\\${"),
        with_prompts(prompt_set("'A street for ${{ style }}'")),
    ),
    "the time in the sweep's name": Case(
        ("+experiment=bad",),
        (BAD, "name", "${now:"),
        {BAD: experiment(GOOD_BODY).replace("name: bad", "name: bad_${now:%H%M%S}")},
    ),
    "an environment variable as an input path": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "${oc.env:"),
        video_at("${oc.env:HOME}/color.mp4"),
    ),
    "an interpolation of a missing key": Case(
        ("+experiment=bad",),
        (BAD, "model.seed", "${nope}"),
        {
            BAD: experiment(GOOD_BODY + "description: x\n").replace(
                "{depth: 0.5}", "{depth: 0.5}, seed: '${nope}'"
            )
        },
    ),
    "the time in a command-line override": Case(
        ("+experiment=demo", "model.seed=${now:%S}"),
        ("command-line override 'model.seed=${now:%S}'", "model.seed"),
    ),
    # -- input files ----------------------------------------------------------------
    "a symlink loop as input video": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "symlink loop"),
        video_at("inputs/odd/a.mp4"),
        setup=_loop,
    ),
    "a dangling symlink as input video": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "inputs/odd/gone.mp4", "broken symlink"),
        video_at("inputs/odd/gone.mp4"),
        setup=_dangling,
    ),
    "a folder as input video": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "is a folder"),
        video_at("inputs/odd/folder.mp4"),
        setup=_folder,
    ),
    "/dev/zero as input video": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "/dev/zero", "character device"),
        video_at("/dev/zero"),
    ),
    "/dev/null as a control video": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.controls.depth", "/dev/null", "character device"),
        with_prompts(prompt_set().replace(f"{STREET}/depth.mp4", "/dev/null")),
    ),
    "a named pipe as input video": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "named pipe"),
        video_at("inputs/odd/pipe.mp4"),
        setup=_fifo,
    ),
    "a 5,000-character path": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "too long"),
        video_at(LONG_PATH),
    ),
    "a 300-character file name": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "too long"),
        video_at(LONG_NAME),
    ),
    "a NUL character in a path": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "NUL"),
        video_at('"inputs/demo/street/color\\0.mp4"'),
    ),
    "an empty input video": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.video", "not a readable video"),
        video_at("inputs/odd/empty.mp4"),
        setup=_empty_video,
    ),
    "/dev/zero as image context": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.inputs.image_context", "character device"),
        with_prompts(prompt_set() + "    image_context: /dev/zero\n"),
    ),
    # -- targets ----------------------------------------------------------------------
    "target=ssh with nothing set": Case(
        ("+experiment=demo", "target=ssh"),
        (
            "not set: target.host, target.user, target.work_dir, target.image",
            "conf/target/ssh.yaml",
        ),
    ),
    "target=ssh with a host only": Case(
        ("+experiment=demo", "target=ssh", "target.host=gpu1"),
        ("not set: target.user, target.work_dir, target.image",),
    ),
    "an ssh pool entry with nothing set": Case(
        ("+experiment=demo", "targets=[local,ssh]"),
        ("not set: targets[1].host", "conf/target/ssh.yaml"),
    ),
    "an unknown target": Case(
        ("+experiment=demo", "target=nope"),
        ("target=nope", "conf/target/nope.yaml", "local, slurm, ssh"),
    ),
    "an ssh port out of range": Case(
        (
            "+experiment=demo",
            "target=ssh",
            "target.host=gpu1",
            "target.user=me",
            "target.work_dir=/data",
            "target.image=cosmos:1",
            "target.port=99999",
        ),
        ("target.port", "command-line override"),
    ),
    # -- prompt names and text ---------------------------------------------------------
    "a newline in a prompt name": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts", "'sce\\nne'", "control character"),
        with_prompts(prompt_set(name='"sce\\nne"')),
    ),
    "an escape sequence in a prompt name": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts", "control character"),
        with_prompts(prompt_set(name='"\\e[31mred"')),
    ),
    "a NUL character in prompt text": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "NUL"),
        with_prompts(prompt_set('"A street\\0"')),
    ),
    "a terminal escape in prompt text": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "control character"),
        with_prompts(prompt_set('"A \\e[2J street"')),
    ),
    "a 10,000-character prompt": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "10000 characters", "limits.prompt_chars"),
        with_prompts(prompt_set(TEN_THOUSAND)),
    ),
    "a 10,000-character negative prompt": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.negative", "limits.prompt_chars"),
        with_prompts(prompt_set(extra=f"  negative: {TEN_THOUSAND}\n")),
    ),
    "a template that renders 10 MB": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "limits.prompt_chars"),
        with_prompts(prompt_set("\"{{ 'x' * 10**7 }}\"")),
    ),
    "a template that would render 10 GB": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "limits.prompt_chars"),
        with_prompts(prompt_set("\"{{ 'x' * 10**10 }}\"")),
    ),
    "a template with a huge power": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "too large"),
        with_prompts(prompt_set('"{{ 10 ** (10 ** 10) }}"')),
    ),
    "a template loop that renders 10 MB": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "limits.prompt_chars"),
        with_prompts(prompt_set("\"{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}\"")),
    ),
    "a template with nested loops that never end": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "steps"),
        with_prompts(
            prompt_set(
                '"{% for i in range(100000) %}{% for j in range(100000) %}'
                '{% endfor %}{% endfor %}x"'
            )
        ),
    ),
    "a template padding to a billion characters": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "limits.prompt_chars"),
        with_prompts(prompt_set("\"{{ '%0999999999d' % 1 }}\"")),
    ),
    "a template centering in a billion characters": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "limits.prompt_chars"),
        with_prompts(prompt_set("\"{{ 'x' | center(10**9) }}\"")),
    ),
    "a template formatting a billion characters": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "limits.prompt_chars"),
        with_prompts(prompt_set("\"{{ '{:>999999999}'.format(1) }}\"")),
    ),
    "a template that doubles a string": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "limits.prompt_chars"),
        with_prompts(prompt_set("\"{% set a = 'x' * 4000 %}{% set b = a ~ a %}{{ b | length }}\"")),
    ),
    "a template that recurses forever": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "recurs"),
        with_prompts(prompt_set('"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"')),
    ),
    "a template that calls itself exponentially": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.text", "steps"),
        with_prompts(
            prompt_set(
                '"{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}'
                '{% endmacro %}{{ f(60) }}x"'
            )
        ),
    ),
    # -- sizes and counts -------------------------------------------------------------
    "a 1,000,000-run grid": Case(
        ("+experiment=bad",),
        (BAD, "sweep", "1000000 runs", "confirm_runs=1000000", "limits.max_runs"),
        {
            BAD: experiment(
                GOOD_BODY
                + f"sweep:\n  grid:\n    model.seed: {numbers(1000)}\n"
                + f"    vars.n: {numbers(500)}\n"
            )
        },
        process=True,
    ),
    "a 2,000-run grid, dry run": Case(
        ("+experiment=bad", "dry_run=true"),
        (BAD, "sweep", "2000 runs", "confirm_runs=2000"),
        {BAD: experiment(GOOD_BODY + f"sweep: {{grid: {{model.seed: {numbers(1000)}}}}}\n")},
    ),
    "a 2,000-run grid confirmed as 1,500": Case(
        ("+experiment=bad", "confirm_runs=1500"),
        ("confirm_runs=1500", "2000 runs"),
        {BAD: experiment(GOOD_BODY + f"sweep: {{grid: {{model.seed: {numbers(1000)}}}}}\n")},
    ),
    "a YAML anchor bomb": Case(
        ("+experiment=bad",),
        (BAD, "aliases", "limits.yaml_nodes"),
        {BAD: experiment(GOOD_BODY + anchor_bomb())},
        process=True,
    ),
    "a YAML anchor bomb in a prompt set": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "aliases", "limits.yaml_nodes"),
        with_prompts(prompt_set() + anchor_bomb()),
    ),
    "a 300,000-value list": Case(
        ("+experiment=bad",),
        (BAD, "limits.yaml_nodes"),
        {BAD: experiment(GOOD_BODY + f"description: {numbers(300_000)}\n")},
    ),
    "a 5 MB manifest": Case(
        ("+experiment=bad",),
        (BAD, "bytes", "limits.yaml_bytes"),
        {BAD: experiment(GOOD_BODY + "description: " + "x" * 5_000_000 + "\n")},
    ),
    "a 5 MB prompt set": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "limits.yaml_bytes"),
        with_prompts(prompt_set("x" * 5_000_000)),
    ),
    # -- overrides ------------------------------------------------------------------------
    "a misspelt model key": Case(
        ("+experiment=demo", "model.num_step=3"),
        ("model.num_step=3", "did you mean model.num_steps"),
    ),
    "a misspelt key added with +": Case(
        ("+experiment=demo", "+model.num_step=3"),
        ("+model.num_step=3", "did you mean model.num_steps"),
    ),
    "a misspelt section": Case(
        ("+experiment=demo", "modle.seed=3"),
        ("modle.seed=3", "did you mean model.seed"),
    ),
    "a misspelt control weight": Case(
        ("+experiment=demo", "model.weights.dpeth=0.5"),
        ("model.weights.dpeth=0.5", "did you mean model.weights.depth"),
    ),
    "a misspelt setting": Case(
        ("+experiment=demo", "dryrun=true"), ("dryrun=true", "did you mean dry_run")
    ),
    "a misspelt target key": Case(
        ("+experiment=demo", "target.hots=gpu1"), ("target.hots=gpu1", "did you mean target.")
    ),
    "an override without a value": Case(
        ("+experiment=demo", "model.seed"), ("model.seed", "KEY=VALUE")
    ),
    "an override with a broken list": Case(
        ("+experiment=demo", "model.seed=[1,2"), ("model.seed=[1,2",)
    ),
    "a misspelt model choice": Case(
        ("+experiment=demo", "model=simulatd"),
        ("model=simulatd", "conf/model/simulatd.yaml", "did you mean model=simulated"),
    ),
    "experiment without +": Case(("experiment=demo",), ("experiment=demo", "+experiment=demo")),
    "two experiments": Case(
        ("+experiment=demo", "+experiment=demo_stages"), ("+experiment=demo_stages",)
    ),
    "a wrong type for a seed": Case(
        ("+experiment=demo", "model.seed=abc"),
        ("command-line override 'model.seed=abc'", "model.seed"),
    ),
    "a negative prompt limit": Case(
        ("+experiment=demo", "limits.prompt_chars=-1"), ("limits.prompt_chars",)
    ),
    "a word for confirm_runs": Case(("+experiment=demo", "confirm_runs=many"), ("confirm_runs",)),
    "a swept list replaced with a misspelt key": Case(
        ("+experiment=demo", "sweep.grid.model.sed=[1,3]"),
        ("sweep.grid.model.sed=[1,3]", "did you mean sweep.grid.model.seed"),
    ),
    "a swept list replaced by a word": Case(
        ("+experiment=demo", "sweep.grid.model.seed=abc"),
        ("sweep.grid.model.seed=abc", "list"),
    ),
    "a swept list with a wrong value": Case(
        ("+experiment=demo", "sweep.grid.model.seed=[1,x]"),
        ("command-line override 'sweep.grid.model.seed=[1,x]'", "sweep.grid.model.seed[1]"),
    ),
    # -- manifests: unknown keys --------------------------------------------------------
    "a misspelt manifest section": Case(
        ("+experiment=bad",),
        (BAD, "modle", "did you mean model"),
        {BAD: experiment(GOOD_BODY + "modle: {seed: 1}\n")},
    ),
    "a misspelt control weight in a manifest": Case(
        ("+experiment=bad",),
        (BAD, "model.weights.dpeth", "did you mean model.weights.depth"),
        {BAD: experiment("vars: {style: x}\nmodel: {weights: {depth: 0.5, dpeth: 1}}\n")},
    ),
    "a misspelt prompt key": Case(
        ("+experiment=bad",),
        (BAD_PROMPTS, "prompts.scene.txt", "did you mean prompts.scene.text"),
        with_prompts(prompt_set().replace("  text:", "  txt: a\n  text:")),
    ),
    "a misspelt swept key in a manifest": Case(
        ("+experiment=bad",),
        (BAD, "sweep.grid.model.num_step", "did you mean sweep.grid.model.num_steps"),
        {BAD: experiment(GOOD_BODY + "sweep: {grid: {model.num_step: [1, 2]}}\n")},
    ),
    # -- multirun: nothing written either -------------------------------------------
    "a multirun job with a bad value": Case(
        ("-m", "+experiment=demo", "model.seed=1,abc"), ("model.seed=abc", "model.seed")
    ),
    "a multirun with a misspelt key": Case(
        ("-m", "+experiment=demo", "model.num_step=1,2"), ("did you mean model.num_steps",)
    ),
    "a multirun over a bad manifest": Case(
        ("-m", "+experiment=bad", "model.seed=1,2"),
        (BAD, "line 6"),
        {BAD: experiment("model: {seed: 1\n")},
    ),
    "a multirun of 5,000 jobs": Case(
        ("-m", "+experiment=demo", "model.seed=range(0,5000)"),
        ("-m", "5000 jobs", "limits.max_runs", "confirm_runs"),
    ),
    "a multirun of 1,000,000 jobs": Case(
        ("-m", "+experiment=demo", "model.seed=range(0,1000)", "model.num_steps=range(1,1001)"),
        ("-m", "1000000 jobs", "limits.max_runs"),
    ),
    "the YAML size limit on the command line": Case(
        ("+experiment=demo", "limits.yaml_bytes=10000000"),
        ("limits.yaml_bytes=10000000", "COSMOS_LIMITS__YAML_BYTES"),
    ),
    # -- cosmos -----------------------------------------------------------------------------
    "cosmos: a misspelt --set": Case(
        ("inference", "{prompt}", "--set", "model.num_step=3"),
        ("model.num_step=3", "did you mean model.num_steps"),
        command="cosmos",
    ),
    "cosmos: target=ssh with nothing set": Case(
        ("inference", "{prompt}", "--weight", "depth=0.5", "--set", "target=ssh"),
        ("not set: target.host, target.user, target.work_dir, target.image",),
        command="cosmos",
    ),
    "cosmos: a newline in a prompt name": Case(
        ("create", "prompt", "A street", STREET, "--name", "two\nlines"),
        ("--name", "control character"),
        command="cosmos",
    ),
    "cosmos: a 10,000-character prompt": Case(
        ("create", "prompt", TEN_THOUSAND, STREET),
        ("TEXT", "10000 characters", "limits.prompt_chars"),
        command="cosmos",
    ),
    "cosmos: an escape sequence in prompt text": Case(
        ("create", "prompt", "A \x1b[2J street", STREET),
        ("TEXT", "control character"),
        command="cosmos",
    ),
    "cosmos: /dev/zero as a video folder": Case(
        ("create", "prompt", "A street", "/dev/zero"), ("/dev/zero", "folder"), command="cosmos"
    ),
    "cosmos: an alias bomb in a target file": Case(
        ("inference", "{prompt}", "--weight", "depth=0.5", "--set", "target=bomb"),
        ("conf/target/bomb.yaml", "limits.yaml_nodes"),
        {"conf/target/bomb.yaml": "name: bomb\nkind: local\n" + anchor_bomb()},
        command="cosmos",
    ),
    "an alias bomb in a pool's target file": Case(
        ("+experiment=demo", "targets=[local,bomb]"),
        ("conf/target/bomb.yaml", "limits.yaml_nodes"),
        {"conf/target/bomb.yaml": "name: bomb\nkind: local\n" + anchor_bomb()},
    ),
    "cosmos: a broken conf file": Case(
        ("inference", "{prompt}", "--weight", "depth=0.5", "--set", "target=broken"),
        ("conf/target/broken.yaml", "line 2"),
        {"conf/target/broken.yaml": "name: broken\nkind: {local\n"},
        command="cosmos",
    ),
}


# -- running a case -----------------------------------------------------------------


@pytest.fixture(scope="module")
def used_project(demo_template: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project with a database and outputs already (to prove bad input changes nothing)."""
    return copy_project(demo_template, tmp_path_factory.mktemp("corpus") / "proj")


def database_rows(database: Path) -> dict[str, list[tuple]]:
    """Every row of every table."""
    if not database.is_file():
        return {}
    uri = f"{database.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(map(repr, db.execute(f'SELECT * FROM "{t}"'))) for t in tables}


def tree(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime) and folder under ``root``."""
    if not root.exists():
        return {}
    found: dict[str, tuple[int, int] | None] = {}
    for path in sorted(root.rglob("*")):
        if path.name.endswith(("-wal", "-shm")):
            continue
        stat = path.lstat()
        found[str(path.relative_to(root))] = (
            None if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
        )
    return found


def state(proj: Project) -> tuple:
    return (
        database_rows(proj.outputs / "cosmos.db"),
        tree(proj.outputs),
        proj.ledger.read_bytes() if proj.ledger.exists() else None,
    )


def current_rss() -> int:
    """This process's resident memory now, in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def in_process(
    proj: Project, case: Case, args: list[str]
) -> tuple[subprocess.CompletedProcess, int]:
    """Run the case here; return what it printed and an upper bound of the memory it used."""
    before = current_rss()
    run = proj.batch if case.command == "batch" else proj.cosmos
    done = run(*args)
    return done, peak_rss() - before


def as_process(
    proj: Project, case: Case, args: list[str]
) -> tuple[subprocess.CompletedProcess, int]:
    """Run the case as a process of its own under a memory limit; return its peak memory too."""
    module = "cosmos_workflow.cli.batch" if case.command == "batch" else "cosmos_workflow.cli.main"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (PROCESS_ADDRESS_SPACE, PROCESS_ADDRESS_SPACE))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=proj.root,
            env=proj.env,
            stdout=out,
            stderr=err,
            preexec_fn=limit,
        )
        status, usage = _wait(process, timeout=60)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    done = subprocess.CompletedProcess(args, status, stdout, stderr)
    return done, usage.ru_maxrss * 1024


def _wait(process: subprocess.Popen, timeout: float) -> tuple[int, resource.struct_rusage]:
    """Wait for ``process`` (killed after ``timeout``); its exit code and its own resource usage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.02)


def prompt_id(proj: Project) -> str:
    with contextlib.closing(sqlite3.connect(proj.outputs / "cosmos.db")) as db:
        return db.execute("SELECT id FROM prompts ORDER BY id LIMIT 1").fetchone()[0]


def write_files(root: Path, files: dict[str, str | bytes]) -> list[Path]:
    written = []
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def remove(paths: list[Path]) -> None:
    for path in reversed(paths):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_alike(used_project: Project, name: str) -> None:
    case = CASES[name]
    proj = used_project
    made = write_files(proj.root, case.files) + (case.setup(proj.root) if case.setup else [])
    args = [arg.replace("{prompt}", prompt_id(proj)) for arg in case.args]
    before = state(proj)
    try:
        started = time.monotonic()
        run = as_process if case.process else in_process
        done, used = run(proj, case, args)
        seconds = time.monotonic() - started
    finally:
        remove(made)
    shown = (
        f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-4000:]}"
    )
    assert done.returncode == 2, shown
    for fragment in case.expect:
        assert fragment in done.stderr, f"{fragment!r} not in the error:\n{shown}"
    assert "Traceback" not in done.stderr, shown
    assert len(done.stderr.splitlines()) <= 24, f"the error does not fit one screen:\n{shown}"
    assert len(done.stderr) <= 24 * 200, f"the error does not fit one screen:\n{shown}"
    assert state(proj) == before, f"something was written:\n{shown}"
    assert seconds < MAX_SECONDS, f"took {seconds:.1f} s"
    assert used < MAX_BYTES, f"used {used / 2**20:.0f} MB"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
