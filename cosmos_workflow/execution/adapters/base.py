"""The model adapter interface and the shapes it exchanges with executors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from cosmos_workflow.errors import Problem
from cosmos_workflow.manifest.models import CONTROL_KEYS
from cosmos_workflow.manifest.specs import InputFile, RunSpec


@dataclass(frozen=True)
class JobLayout:
    """Paths of one job's folder as the model program sees them.

    Attributes:
        root: The job folder on the host or in the container (POSIX path).
        python: The Python interpreter there (for Python-script adapters).
    """

    root: str
    python: str = "python3"

    def path(self, relative: str) -> str:
        """Absolute program-side path of a file in the job folder."""
        return str(PurePosixPath(self.root) / relative)


def input_name(item: InputFile) -> str:
    """Relative name of an input in the job folder: content-addressed."""
    return f"inputs/{item.stored_name}"


def inputs_of(runs: list[RunSpec]) -> dict[str, InputFile]:
    """Every input file of ``runs`` by its job-folder name (deduplicated)."""
    found: dict[str, InputFile] = {}
    for run in runs:
        for item in run.prompt.inputs.files():
            found[input_name(item)] = item
    return found


# The 4K upscaler's control: only upscale runs have it (their model is built, not composed).
UPSCALE_CONTROL = "upscale"
SPEC_CONTROL_KEYS = (*CONTROL_KEYS, UPSCALE_CONTROL)


def active_controls(run: RunSpec) -> dict[str, float]:
    """The run's controls and weights, in canonical order."""
    weights = run.model["weights"]
    return {k: float(weights[k]) for k in SPEC_CONTROL_KEYS if weights.get(k) is not None}


def run_options(run: RunSpec) -> dict[str, Any]:
    """The run's adapter options that are set (null means the program's default)."""
    return {k: v for k, v in run.model.get("options", {}).items() if v is not None}


def control_settings(run: RunSpec, key: str) -> dict[str, Any]:
    """The settings of control ``key`` that are set (model.controls.KEY; null: the default)."""
    settings = (run.model.get("controls") or {}).get(key) or {}
    return {name: value for name, value in settings.items() if value is not None}


def option_problems(run: RunSpec, allowed: dict[str, type]) -> list[Problem]:
    """Options the run's adapter does not have, or of the wrong JSON type."""
    problems = []
    for key, value in run_options(run).items():
        where = f"model.options.{key}"
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            problems.append(Problem(where, f"is not an option of {run.adapter} (options: {known})"))
        elif type(value) is not allowed[key]:
            hint = " (quote it on the command line, e.g. '\"720\"')" if allowed[key] is str else ""
            problems.append(Problem(where, f"must be a {allowed[key].__name__}{hint}"))
    return problems


def setup_flag_problems(
    extra_args: list[str], allowed: frozenset[str], where: str
) -> list[Problem]:
    """Set-up flags that are not known to leave outputs unchanged.

    Anything that can change an output belongs in ``model:`` (and so in the
    run id); ``extra_args`` may only carry flags from the adapter's allowlist,
    spelled exactly as the program spells them (a value as ``--flag=value``).
    """
    known = ", ".join(sorted(allowed))
    return [
        Problem(where, f"{token!r} is not a set-up flag that leaves outputs unchanged ({known})")
        for token in extra_args
        if token.split("=", 1)[0] not in allowed
    ]


@dataclass(frozen=True)
class RunOutputs:
    """Where one run's results are, relative to the job folder.

    Attributes:
        video: The run's main output (a video; a text for the prompt upsampler).
        extras: Other outputs by role (``prompt``: the final prompt text).
        stored_as: The main output's name in the run folder.
        controls: Control videos the program computes itself, by control key
            (optional outputs: kept in the run folder when the program wrote them).
    """

    video: str
    extras: dict[str, str] = field(default_factory=dict)
    stored_as: str = "output.mp4"
    controls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Invocation:
    """One program execution that produces the outputs of one or more runs.

    Attributes:
        job_id: Unique id of this execution (container and folder names).
        argv: The command, as an argument list (never a shell string).
        files: Files to write into the job folder: relative path -> content.
        inputs: Input files to place into the job folder: relative path -> file.
        outputs: run id -> where its outputs will be, relative to the job folder.
        run_specs: run id -> the effective spec the program reads for that run.
        workdir: Working folder of the program (None: the job folder).
        env: Environment variables the program needs (e.g. PYTHONPATH).
    """

    job_id: str
    argv: list[str]
    files: dict[str, bytes]
    inputs: dict[str, InputFile]
    outputs: dict[str, RunOutputs]
    run_specs: dict[str, dict[str, Any]]
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)


class ModelAdapter(ABC):
    """Knows one Cosmos program: its spec files, command and outputs."""

    name: str
    max_batch_size: int = 1
    # Rough seconds to load the model and to make one video: the scheduler
    # packs jobs with them (only their ratio and the hosts' speeds matter).
    load_estimate_s: float = 120.0
    video_estimate_s: float = 300.0

    def time_estimates(self) -> tuple[float, float]:
        """Estimated seconds of one model load and of one video, at speed 1."""
        return self.load_estimate_s, self.video_estimate_s

    def validate(self, run: RunSpec) -> list[Problem]:
        """Problems that would make the program refuse ``run`` (key paths, no file)."""
        return []

    def failure_reason(self, log: str) -> str | None:
        """Why a failed job's program failed, read from (the end of) its log, for people.

        A reason means the failure comes from the runs' content (e.g. a prompt
        the guardrail blocked), so it is never retried, only isolated.

        Returns:
            None if the log does not say (the runner then gives the exit code).
        """
        return None

    def skipped_reason(self, log: str, run_id: str) -> str | None:
        """Why the program, which exited 0, made no outputs for ``run_id`` (read from its log).

        For programs that keep going past a sample they cannot make.

        Returns:
            None if the log does not say (the runner then names the missing files).
        """
        return None

    @abstractmethod
    def batch_key(self, run: RunSpec) -> Hashable:
        """Runs with equal keys may share one invocation."""

    @abstractmethod
    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """Render the spec files and command for ``runs`` (all with one batch key)."""
