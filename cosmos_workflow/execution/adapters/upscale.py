"""The 4K upscaler: Cosmos-Transfer1's ``transfer.py`` with only the upscale control.

An upscale run's input video is another run's output. Its spec holds the
prompt, the input video, the scalars and one control block,
``{"upscale": {"control_weight": W}}``; the program makes a 3840x2112 video of
a 1280x704 one. Transfer1 forces the batch size to 1 for it, so every upscale
run is a job of its own.
"""

from __future__ import annotations

from collections.abc import Hashable

from cosmos_workflow.config.settings import SimulatorSettings, Transfer1Settings
from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters.base import UPSCALE_CONTROL, active_controls
from cosmos_workflow.execution.adapters.simulated import SimulatedAdapter
from cosmos_workflow.execution.adapters.transfer1 import Transfer1Adapter
from cosmos_workflow.execution.adapters.transfer1_rules import weight_sum_problems
from cosmos_workflow.manifest.specs import RunSpec

# The upscaler's step count in NVIDIA's example.
UPSCALE_NUM_STEPS = 10
# The key of an upscale run's sweep params (stages.upscale) that names the run it upscales.
UPSCALE_OF = "upscale_of"


def upscale_problems(run: RunSpec) -> list[Problem]:
    """What the upscaler would refuse in ``run``."""
    problems = []
    controls = active_controls(run)
    if set(controls) != {UPSCALE_CONTROL}:
        others = ", ".join(sorted(set(controls) - {UPSCALE_CONTROL})) or "none"
        problems.append(
            Problem("model.weights", f"an upscale run has only the upscale control ({others})")
        )
    if run.prompt.inputs.video is None:
        problems.append(Problem("inputs.video", "an upscale run needs an input video"))
    if run.prompt.inputs.controls:
        problems.append(Problem("inputs.controls", "an upscale run takes no control videos"))
    # A weight above 1 runs as 1 (transfer.py divides weights by a sum above 1).
    return problems + weight_sum_problems(controls)


class SimulatedUpscalerAdapter(SimulatedAdapter):
    """The upscaler's spec, run by the simulated model (it draws a picture of its input)."""

    name = "simulated_upscaler"

    def __init__(self, settings: SimulatorSettings) -> None:
        super().__init__(settings, max_batch_size=1)

    def validate(self, run: RunSpec) -> list[Problem]:
        """Upscale rules only (Transfer1's need a modality control)."""
        return upscale_problems(run)

    def batch_key(self, run: RunSpec) -> Hashable:
        """Every upscale run runs alone."""
        return ("single", run.id)


class Transfer1UpscalerAdapter(Transfer1Adapter):
    """NVIDIA's 4K upscaler: transfer.py under torchrun with the upscale spec."""

    name = "transfer1_upscaler"

    def __init__(self, settings: Transfer1Settings) -> None:
        super().__init__(settings)
        self.max_batch_size = 1

    def validate(self, run: RunSpec) -> list[Problem]:
        """Upscale rules and the set-up flags."""
        return [*self._setting_problems, *upscale_problems(run)]

    def batch_key(self, run: RunSpec) -> Hashable:
        """Every upscale run runs alone (Transfer1 forces batch size 1)."""
        return ("single", run.id)
