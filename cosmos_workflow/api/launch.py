"""Launch work in the background: the same `cosmos` command a user would type, detached.

The web app's actions (inference, upscale, enhance, run again with changes)
start `cosmos inference|upscale|enhance` as a process of its own session
(connection/local.py's detached start): stdin from /dev/null, stdout and
stderr to a log under ``outputs/launches/``. It outlives whatever started
it: stopping the web server never stops it, and what it runs shows like any
sweep or run started at a terminal.

Before starting, the work is planned here with the same settings, so that a
bad choice is refused with the CLI's message and the runs' ids are known;
after starting, the launch waits (a bounded time) until the process has
stored them, or reports the end of its log if it stopped first.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_workflow.connection.local import DetachedProcess
from cosmos_workflow.errors import ExecutionFailure, ValidationFailure
from cosmos_workflow.sweeps.workspace import Workspace
from cosmos_workflow.utils.tail import tail_lines

if TYPE_CHECKING:
    from cosmos_workflow.api.cosmos_api import CosmosAPI

logger = logging.getLogger(__name__)

# Where the logs of launched commands go, under the output tree.
LAUNCH_LOGS = "launches"
# How long a launch waits for its process to store its runs.
STORED_WAIT_S = 60.0
# How often it looks.
POLL_S = 0.1
# The numeric options of `cosmos inference` (option -> type), in its order.
INFERENCE_OPTIONS: dict[str, type] = {
    "seed": int,
    "num_steps": int,
    "guidance": float,
    "sigma_max": float,
    "fps": int,
    "num_gpus": int,
}
# The lines of a failed launch's log shown in its error.
ERROR_LINES = 15


@dataclass(frozen=True)
class Launched:
    """A command started in the background.

    Attributes:
        kind: inference, upscale or enhance.
        argv: The command.
        pid: Its process id (the leader of its own session).
        log: Where its output goes.
        run_ids: The runs it executes (stored when the launch returns).
        sweep_id: The sweep they make ("" for a single run).
    """

    kind: str
    argv: list[str]
    pid: int
    log: Path
    run_ids: list[str] = field(default_factory=list)
    sweep_id: str = ""


class Launcher:
    """Starts `cosmos` commands detached from the caller (see the module's docstring).

    Args:
        ws: The workspace of the API.
        api: The API (to plan what a launch will run, and check its choices).

    Attributes:
        environ: The environment of the commands started (COSMOS_* settings);
            None: this process's. Give the one the API was made with.
    """

    def __init__(self, ws: Workspace, api: CosmosAPI) -> None:
        self._ws = ws
        self._api = api
        self._started: list[DetachedProcess] = []
        self.environ: Mapping[str, str] | None = None

    def inference(self, prompts: list[str], options: dict[str, Any]) -> Launched:
        """`cosmos inference PROMPTS` with ``options`` (``seed`` ..., ``weights``: {mod: w}).

        Raises:
            ValidationFailure: no prompt, a bad option, or what the plan refuses.
        """
        if not prompts:
            raise ValidationFailure("choose at least one prompt")
        args, overrides = inference_args(options)
        from cosmos_workflow.api.cosmos_api import CosmosAPI

        project = self._ws.settings.project_dir
        with CosmosAPI.from_project(project, overrides, environ=self.environ) as planning:
            plan = planning.plan_inference(prompts, planning.composed["model"]).plan
        run_ids = [run.id for run in plan.runs]
        # "--": a prompt named like an option (e.g. --set=...) stays a prompt.
        return self._start("inference", [*args, "--", *prompts], run_ids, plan.sweep_id)

    def upscale(self, run_id: str, weight: float | None = None) -> Launched:
        """`cosmos upscale RUN_ID [--weight W]`.

        Raises:
            ValidationFailure: the run cannot be upscaled (not succeeded, no upscaler).
        """
        plan = self._api.plan_upscale(run_id, weight)
        args = [self._api.resolve_id(run_id, "rs")]
        if weight is not None:
            args += ["--weight", repr(float(weight))]
        return self._start("upscale", args, [run.id for run in plan.runs])

    def enhance(self, prompt_id: str) -> Launched:
        """`cosmos enhance PROMPT_ID` (its new prompt appears once the upsampler ran).

        Raises:
            ValidationFailure: the model has no upsampler, the prompt no input video.
        """
        full = self._api.resolve_id(prompt_id, "ps")
        plan = self._api.plan_enhance(full, self._api.composed.get("model") or {})
        return self._start("enhance", [full], [run.id for run in plan.runs])

    def _start(
        self, kind: str, args: list[str], run_ids: list[str], sweep_id: str = ""
    ) -> Launched:
        """Start ``cosmos KIND ARGS`` detached and wait until it stored ``run_ids``."""
        self._reap()
        folder = self._ws.store.root / LAUNCH_LOGS
        folder.mkdir(parents=True, exist_ok=True)
        stamp = self._ws.clock.now().strftime("%Y%m%dT%H%M%S")
        log = folder / f"{stamp}-{kind}-{secrets.token_hex(3)}.log"
        argv = [sys.executable, "-m", "cosmos_workflow.cli.main", kind, *args]
        project = self._ws.settings.project_dir
        env = {**(self.environ or {}), "COSMOS_PROJECT_DIR": str(project)}
        process = self._ws.commands.spawn_detached(argv, cwd=project, env=env, log=log)
        self._started.append(process)
        logger.info("Launched %s (pid %d), log %s", " ".join(argv[3:]), process.pid, log)
        launched = Launched(kind, argv, process.pid, log, run_ids, sweep_id)
        self._wait_stored(launched, process)
        return launched

    def _wait_stored(self, launched: Launched, process: DetachedProcess) -> None:
        """Wait until the runs are stored; raise if the process ended without storing them.

        Raises:
            ExecutionFailure: the process stopped first (the error quotes its log).
        """
        deadline = time.monotonic() + STORED_WAIT_S
        while time.monotonic() < deadline:
            if self._stored(launched.run_ids):
                return
            if not process.running() and not self._stored(launched.run_ids):
                lines: list[str] = []
                tail_lines(launched.log, lines.append)
                tail = "\n".join(lines[-ERROR_LINES:])
                raise ExecutionFailure(f"`cosmos {launched.kind}` stopped:\n{tail}")
            time.sleep(POLL_S)
        logger.warning("%s has not stored its runs after %.0fs", launched.kind, STORED_WAIT_S)

    def _stored(self, run_ids: list[str]) -> bool:
        """True once every run of ``run_ids`` is stored."""
        if not self._ws.database_exists():
            return False
        return self._ws.repository.stored_run_ids(run_ids) >= set(run_ids)

    def _reap(self) -> None:
        """Forget (and collect the exit status of) the processes that ended."""
        self._started = [process for process in self._started if process.running()]


def inference_args(options: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The `cosmos inference` options and the matching overrides of ``options``.

    Raises:
        ValidationFailure: an unknown option, or a value of the wrong type.
    """
    unknown = set(options) - {*INFERENCE_OPTIONS, "weights"}
    if unknown:
        raise ValidationFailure(f"unknown inference options: {', '.join(sorted(unknown))}")
    args: list[str] = []
    overrides: list[str] = []
    for key, kind in INFERENCE_OPTIONS.items():
        value = options.get(key)
        if value is None or value == "":
            continue
        try:
            number = kind(value)
        except (TypeError, ValueError) as exc:
            raise ValidationFailure(f"{key} must be a number, got {value!r}") from exc
        args += [f"--{key.replace('_', '-')}", str(number)]
        overrides.append(f"model.{key}={number}")
    for modality, weight in (options.get("weights") or {}).items():
        try:
            value = float(weight)
        except (TypeError, ValueError) as exc:
            raise ValidationFailure(f"weight of {modality} must be a number") from exc
        if not str(modality).isidentifier():
            raise ValidationFailure(f"not a control modality: {modality!r}")
        args += ["--weight", f"{modality}={value}"]
        overrides.append(f"model.weights.{modality}={value}")
    return args, overrides
