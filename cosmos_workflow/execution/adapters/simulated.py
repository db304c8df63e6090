"""The ``simulated`` adapter: Transfer1's files, run by the simulated model."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from cosmos_workflow.config.settings import SimulatorSettings
from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters import transfer1_spec
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout, ModelAdapter, inputs_of
from cosmos_workflow.manifest.specs import RunSpec

SIMULATED_PROGRAM = Path(__file__).resolve().parent.parent / "simulated_model.py"
# The program travels with each job, so it runs the same way on every host.
PROGRAM_FILE = "simulated_model.py"


class SimulatedAdapter(ModelAdapter):
    """Renders Cosmos-Transfer1 specs and runs the simulated model on them.

    Args:
        settings: Simulator timing and fault injection.
        max_batch_size: Most runs one invocation may take.
    """

    name = "simulated"

    def __init__(self, settings: SimulatorSettings, max_batch_size: int = 8) -> None:
        self._settings = settings
        self._program = SIMULATED_PROGRAM.read_bytes()
        self.max_batch_size = max_batch_size

    def validate(self, run: RunSpec) -> list[Problem]:
        """The simulated model enforces Transfer1's rules."""
        return transfer1_spec.transfer1_problems(run)

    def batch_key(self, run: RunSpec) -> Hashable:
        """Same rule as Transfer1 (the simulated model follows its merge rule)."""
        return transfer1_spec.transfer1_batch_key(run)

    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """Render Transfer1 spec files and the simulated model's command."""
        files, flags, outputs, effective = transfer1_spec.render_transfer1(runs, layout)
        files[PROGRAM_FILE] = self._program
        program = layout.path(PROGRAM_FILE)
        argv = [layout.python, program, *flags, "--num_gpus", str(runs[0].model["num_gpus"])]
        argv += ["--model_load_s", str(self._settings.model_load_s)]
        argv += ["--per_video_s", str(self._settings.per_video_s)]
        if self._settings.ledger:
            argv += ["--ledger", self._settings.ledger]
        if self._settings.fail_on_seed is not None:
            argv += ["--fail_on_seed", str(self._settings.fail_on_seed)]
        return Invocation(
            job_id=job_id,
            argv=argv,
            files=files,
            inputs=inputs_of(runs),
            outputs=outputs,
            run_specs=effective,
        )
