"""The ``transfer1`` adapter: NVIDIA Cosmos-Transfer1's ``transfer.py`` under torchrun.

The spec JSON (and batch JSONL) carry every parameter that changes the output;
the command line carries only paths, the GPU count and set-up flags from an
allowlist (offloading), so no value is ever given twice and nothing outside
the run id changes an output.
"""

from __future__ import annotations

import re

from cosmos_workflow.config.settings import Transfer1Settings
from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters.base import JobLayout, setup_flag_problems
from cosmos_workflow.execution.adapters.transfer1_spec import Launch, Transfer1SpecAdapter
from cosmos_workflow.manifest.specs import RunSpec

PROGRAM = "cosmos_transfer1/diffusion/inference/transfer.py"
# transfer.py flags that change memory use or timing, never an output.
SETUP_FLAGS = frozenset(
    {
        "--offload_diffusion_transformer",
        "--offload_text_encoder_model",
        "--offload_guardrail_models",
        "--offload_prompt_upsampler",
        "--benchmark",
    }
)

# What transfer.py logs when its guardrail blocks a video (batch size 1): the
# blocking safety model (GUARDRAIL BLOCKED: NAME: ...), which check failed, and
# that the batch was blocked; then it dies unpacking generate()'s None.
GUARDRAIL_MODEL = re.compile(r"GUARDRAIL BLOCKED: ([A-Za-z0-9_]+):")
GUARDRAIL_CHECKS = {
    "All prompts failed safety checks": "the prompt",
    "All generated videos failed safety checks": "the generated video",
}
BATCH_BLOCKED = "Guardrail blocked generation for entire batch."


def guardrail_reason(log: str) -> str | None:
    """Why transfer.py failed if its guardrail blocked a video ("blocked by the guardrail: ...")."""
    checks = [what for line, what in GUARDRAIL_CHECKS.items() if line in log]
    if not checks and BATCH_BLOCKED not in log:
        return None
    what = " and ".join(checks) or "a prompt or video"
    models = list(dict.fromkeys(GUARDRAIL_MODEL.findall(log)))
    by = f" ({', '.join(models)})" if models else ""
    return f"blocked by the guardrail: {what} was judged unsafe{by}"


class Transfer1Adapter(Transfer1SpecAdapter):
    """Renders Cosmos-Transfer1 specs and the torchrun command that reads them.

    Args:
        settings: Where Transfer1 and its checkpoints are in the image.
    """

    name = "transfer1"

    def __init__(self, settings: Transfer1Settings) -> None:
        self._settings = settings
        self.max_batch_size = settings.max_batch_size
        self._setting_problems = setup_flag_problems(
            settings.extra_args, SETUP_FLAGS, "adapters.transfer1.extra_args"
        )

    def validate(self, run: RunSpec) -> list[Problem]:
        """What transfer.py would refuse, and set-up flags that are not allowed."""
        return [*self._setting_problems, *super().validate(run)]

    def failure_reason(self, log: str) -> str | None:
        """A guardrail block, as transfer.py logs it."""
        return guardrail_reason(log)

    def launch(self, runs: list[RunSpec], layout: JobLayout, flags: list[str]) -> Launch:
        """``torchrun ... transfer.py``, run from the Transfer1 checkout."""
        gpus = str(runs[0].model["num_gpus"])
        argv = ["torchrun", "--standalone", "--nnodes=1", f"--nproc_per_node={gpus}", PROGRAM]
        argv += [*flags, "--checkpoint_dir", self._settings.checkpoint_dir, "--num_gpus", gpus]
        argv += self._settings.extra_args
        return Launch(argv=argv, workdir=self._settings.workspace, env={"PYTHONPATH": "."})
