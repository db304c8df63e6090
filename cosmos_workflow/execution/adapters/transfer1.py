"""The ``transfer1`` adapter: NVIDIA Cosmos-Transfer1's ``transfer.py`` under torchrun.

The spec JSON (and batch JSONL) carry every parameter that changes the output;
the command line carries only set-up flags. ``extra_args`` from the settings
may add set-up flags (offloading, say) but never a flag whose value the spec
already gives, so no value is silently shadowed.
"""

from __future__ import annotations

from collections.abc import Hashable

from cosmos_workflow.config.settings import Transfer1Settings
from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters import transfer1_spec
from cosmos_workflow.execution.adapters.base import Invocation, JobLayout, ModelAdapter
from cosmos_workflow.manifest.specs import RunSpec

PROGRAM = "cosmos_transfer1/diffusion/inference/transfer.py"
# Flags the adapter sets itself, and every parameter the spec JSON carries.
OWN_FLAGS = frozenset(
    {
        "checkpoint_dir",
        "num_gpus",
        "controlnet_specs",
        "video_save_folder",
        "video_save_name",
        "batch_input_path",
        "batch_size",
        "prompt",
        "negative_prompt",
        "input_video_path",
        *transfer1_spec.SCALAR_FIELDS,
    }
)


def flag_name(token: str) -> str | None:
    """``--seed=3`` or ``--seed`` -> ``seed``; a token that is not a flag -> None."""
    if not token.startswith("-"):
        return None
    return token.lstrip("-").split("=", 1)[0].replace("-", "_")


def shadowing_problems(extra_args: list[str], owned: frozenset[str], where: str) -> list[Problem]:
    """Set-up flags in ``extra_args`` that would shadow a value the adapter gives."""
    return [
        Problem(where, f"{token!r} is set by the adapter or the manifest; remove it")
        for token in extra_args
        if flag_name(token) in owned
    ]


class Transfer1Adapter(ModelAdapter):
    """Renders Cosmos-Transfer1 specs and the torchrun command that reads them.

    Args:
        settings: Where Transfer1 and its checkpoints are in the image.
    """

    name = "transfer1"

    def __init__(self, settings: Transfer1Settings) -> None:
        self._settings = settings
        self.max_batch_size = settings.max_batch_size
        self._setting_problems = shadowing_problems(
            settings.extra_args, OWN_FLAGS, "adapters.transfer1.extra_args"
        )

    def validate(self, run: RunSpec) -> list[Problem]:
        """What transfer.py would refuse, and set-up flags that would shadow the spec."""
        return [*self._setting_problems, *transfer1_spec.transfer1_problems(run)]

    def batch_key(self, run: RunSpec) -> Hashable:
        """Transfer1's merge rule: shared scalars and the same control set."""
        return transfer1_spec.transfer1_batch_key(run)

    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """Spec files plus ``torchrun ... transfer.py``, run from the Transfer1 checkout."""
        files, flags, outputs, effective = transfer1_spec.render_transfer1(runs, layout)
        gpus = str(runs[0].model["num_gpus"])
        argv = ["torchrun", "--standalone", "--nnodes=1", f"--nproc_per_node={gpus}", PROGRAM]
        argv += [*flags, "--checkpoint_dir", self._settings.checkpoint_dir, "--num_gpus", gpus]
        argv += self._settings.extra_args
        return Invocation(
            job_id=job_id,
            argv=argv,
            files=files,
            inputs=transfer1_spec.inputs_of(runs),
            outputs=outputs,
            run_specs=effective,
            workdir=self._settings.workspace,
            env={"PYTHONPATH": "."},
        )
