"""The prompt upsampler: a prompt and its input video in, a richer prompt out.

An enhancement run's main output is a text (``output.txt`` in its run
folder), not a video. NVIDIA's standalone upsampler prints its result only
(``Upsampled prompt: TEXT``, TEXT possibly several lines), so every
upsampler runs under prompt_capture.py, which writes TEXT whole to the job's
output file. docs/models.md has the facts about NVIDIA's program.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable

from cosmos_workflow.config.settings import SimulatorSettings, Transfer1Settings
from cosmos_workflow.errors import Problem
from cosmos_workflow.execution.adapters.base import (
    Invocation,
    JobLayout,
    ModelAdapter,
    RunOutputs,
    input_name,
    inputs_of,
)
from cosmos_workflow.execution.programs import PROGRAMS_DIR
from cosmos_workflow.manifest.specs import RunSpec

CAPTURE_FILE = "prompt_capture.py"
SIMULATED_FILE = "simulated_upsampler.py"
OUTPUT_FILE = "out/prompt.txt"
# Where the upsampled prompt is kept in the run folder.
STORED_AS = "output.txt"
PROGRAM = "cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py"
SETUP_FLAGS = frozenset({"--offload_prompt_upsampler"})
TORCHRUN = ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=1"]
# The program deletes OMP_NUM_THREADS among torchrun's variables, and torchrun
# sets it only for more than one process: we give the one process this value
# (torchrun's own choice for many; a target's env may set another).
OMP_THREADS = "1"
# The job's own temporary folder: the program writes the video's frames as
# frame_1.png and frame_2.png in the temporary folder, the same names for every job.
TEMP_DIR = "tmp"


def upsampler_problems(run: RunSpec) -> list[Problem]:
    """What an upsampler would refuse in ``run``."""
    problems = []
    if not run.prompt.text.strip():
        problems.append(Problem("prompt.text", "is empty"))
    if run.prompt.inputs.video is None:
        problems.append(
            Problem("inputs.video", "the prompt upsampler needs the input video as context")
        )
    return problems


class PromptUpsamplerAdapter(ModelAdapter):
    """One prompt per invocation; subclasses say which program makes the text."""

    max_batch_size = 1
    load_estimate_s = 60.0
    video_estimate_s = 20.0

    def __init__(self) -> None:
        self._capture = (PROGRAMS_DIR / CAPTURE_FILE).read_bytes()

    def validate(self, run: RunSpec) -> list[Problem]:
        """A prompt text and an input video are needed."""
        return upsampler_problems(run)

    def batch_key(self, run: RunSpec) -> Hashable:
        """Every prompt is upsampled by an invocation of its own."""
        return ("single", run.id)

    def render(self, job_id: str, runs: list[RunSpec], layout: JobLayout) -> Invocation:
        """The upsampler's command under prompt_capture.py."""
        (run,) = runs
        video = layout.path(input_name(run.prompt.inputs.video))  # type: ignore[arg-type]
        program, files, workdir, env = self.program(run, video, layout)
        argv = [layout.python, "-S", "-u", layout.path(CAPTURE_FILE)]
        argv += ["--out", layout.path(OUTPUT_FILE), "--", *program]
        return Invocation(
            job_id=job_id,
            argv=argv,
            files={CAPTURE_FILE: self._capture, **files},
            inputs=inputs_of(runs),
            outputs={run.id: RunOutputs(OUTPUT_FILE, stored_as=STORED_AS)},
            run_specs={run.id: {"prompt": run.prompt.text, "input_video": video}},
            workdir=workdir,
            env=env,
        )

    @abstractmethod
    def program(
        self, run: RunSpec, video: str, layout: JobLayout
    ) -> tuple[list[str], dict[str, bytes], str | None, dict[str, str]]:
        """(argv, files to ship, working folder, environment) of the upsampler itself."""


class SimulatedUpsamplerAdapter(PromptUpsamplerAdapter):
    """The simulated upsampler (no model; says so in the text it makes)."""

    name = "simulated_upsampler"

    def __init__(self, settings: SimulatorSettings) -> None:
        super().__init__()
        self._settings = settings
        self._program = (PROGRAMS_DIR / SIMULATED_FILE).read_bytes()

    def time_estimates(self) -> tuple[float, float]:
        """The simulator's load time; the text itself takes no time."""
        return self._settings.model_load_s + 0.05, 0.005

    def program(
        self, run: RunSpec, video: str, layout: JobLayout
    ) -> tuple[list[str], dict[str, bytes], str | None, dict[str, str]]:
        """``python3 -S -u simulated_upsampler.py --prompt ... --input_video ...``."""
        argv = [layout.python, "-S", "-u", layout.path(SIMULATED_FILE)]
        # --prompt=TEXT: a prompt that starts with "-" is not taken for a flag.
        argv += [f"--prompt={run.prompt.text}", f"--input_video={video}"]
        argv += ["--model_load_s", str(self._settings.model_load_s)]
        if self._settings.fail_on_prompt:
            argv.append(f"--fail_on_prompt={self._settings.fail_on_prompt}")
        return argv, {SIMULATED_FILE: self._program}, None, {}


class Transfer1UpsamplerAdapter(PromptUpsamplerAdapter):
    """NVIDIA's prompt upsampler of Cosmos-Transfer1 (upsampler_pipeline.py)."""

    name = "transfer1_upsampler"

    def __init__(self, settings: Transfer1Settings) -> None:
        super().__init__()
        self._settings = settings
        # transfer.py's set-up flags are not the upsampler's: only offloading carries over.
        self._flags = [arg for arg in settings.extra_args if arg.split("=", 1)[0] in SETUP_FLAGS]

    def program(
        self, run: RunSpec, video: str, layout: JobLayout
    ) -> tuple[list[str], dict[str, bytes], str | None, dict[str, str]]:
        """``torchrun ... upsampler_pipeline.py --prompt ... --input_video ...`` in the checkout.

        NVIDIA's README says ``PYTHONPATH=. python upsampler_pipeline.py``,
        but the program as written cannot start that way: when run as a
        script it reads ``RANK`` and deletes fifteen torchrun variables
        (``KeyError`` for any one missing), so it is launched the way
        Cosmos-Transfer1 documents launching its inference programs,
        ``torchrun --nproc_per_node=... --nnodes=1`` with ``PYTHONPATH=.``
        from the checkout (one process: the model uses one GPU), plus the
        one variable torchrun leaves out for a single process,
        ``OMP_NUM_THREADS``. ``TMPDIR`` is the job's own folder, so that
        jobs running side by side never read each other's frames.
        """
        argv = [*TORCHRUN, PROGRAM, f"--prompt={run.prompt.text}", f"--input_video={video}"]
        argv += ["--checkpoint_dir", self._settings.checkpoint_dir, *self._flags]
        env = {"PYTHONPATH": ".", "OMP_NUM_THREADS": OMP_THREADS, "TMPDIR": layout.path(TEMP_DIR)}
        # An empty file makes the folder: TMPDIR must exist to be used.
        return argv, {f"{TEMP_DIR}/.keep": b""}, self._settings.workspace, env
