"""The ``simulated`` adapter: Transfer1's files, run by the simulated model."""

from __future__ import annotations

from cosmos_workflow.config.settings import SimulatorSettings
from cosmos_workflow.execution.adapters.base import JobLayout
from cosmos_workflow.execution.adapters.transfer1 import guardrail_reason
from cosmos_workflow.execution.adapters.transfer1_spec import Launch, Transfer1SpecAdapter
from cosmos_workflow.execution.programs import PROGRAMS_DIR
from cosmos_workflow.manifest.specs import RunSpec

# The program travels with each job, so it runs the same way on every host.
PROGRAM_FILE = "simulated_model.py"
# The program and the modules it imports (its pictures, its H.264 writer):
# they travel together and sit side by side wherever it runs.
PROGRAM_FILES = (PROGRAM_FILE, "sim_frames.py", "h264_pcm.py")


def simulated_model_files() -> dict[str, bytes]:
    """The simulated model's files by name: put them in one folder and run the first."""
    return {name: (PROGRAMS_DIR / name).read_bytes() for name in PROGRAM_FILES}


class SimulatedAdapter(Transfer1SpecAdapter):
    """Renders Cosmos-Transfer1 specs and runs the simulated model on them.

    Args:
        settings: Simulator timing and fault injection.
        max_batch_size: Most runs one invocation may take.
    """

    name = "simulated"

    def __init__(self, settings: SimulatorSettings, max_batch_size: int = 8) -> None:
        self._settings = settings
        self._files = simulated_model_files()
        self.max_batch_size = max_batch_size

    def time_estimates(self) -> tuple[float, float]:
        """The simulator's own timing settings (a tiny floor keeps batching worth it)."""
        return self._settings.model_load_s + 0.05, self._settings.per_video_s + 0.005

    def failure_reason(self, log: str) -> str | None:
        """A guardrail block, logged as transfer.py logs it."""
        return guardrail_reason(log)

    def launch(self, runs: list[RunSpec], layout: JobLayout, flags: list[str]) -> Launch:
        """The simulated model, shipped in the job folder, with its timing settings."""
        # -S: the standard library is all it needs (it starts faster without
        # site-packages); -u: its log lines arrive as they are written.
        argv = [layout.python, "-S", "-u", layout.path(PROGRAM_FILE), *flags]
        argv += ["--num_gpus", str(runs[0].model["num_gpus"])]
        argv += ["--model_load_s", str(self._settings.model_load_s)]
        argv += ["--per_video_s", str(self._settings.per_video_s)]
        if self._settings.ledger:
            argv += ["--ledger", self._settings.ledger]
        if self._settings.fail_on_seed is not None:
            argv += ["--fail_on_seed", str(self._settings.fail_on_seed)]
        if self._settings.block_prompt:
            argv += ["--block_prompt", self._settings.block_prompt]
        return Launch(argv=argv, files=dict(self._files))
