"""Stand-in for Cosmos-Transfer1's prompt upsampler, placed where the real one lives.

Written from reading nvidia-cosmos/cosmos-transfer1 (facts only):
cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py,
cosmos_transfer1/auxiliary/upsampler/model/upsampler.py,
cosmos_transfer1/utils/misc.py and cosmos_transfer1/checkpoints.py.
It refuses what the real program refuses and reports like it:

- Started as a script, it reads ``RANK`` and then deletes each of the
  torchrun variables below from its environment: any one missing is a
  ``KeyError`` (exit 1). Plain ``python`` sets none of them; ``torchrun
  --nproc_per_node=1`` sets all but ``OMP_NUM_THREADS`` (torchrun sets that
  one only for more than one process). Only rank 0 does the work.
- It imports ``cosmos_transfer1`` from the checkout: run from the checkout's
  root with ``PYTHONPATH=.`` or it dies with ModuleNotFoundError (exit 1).
- argparse: ``--prompt`` (str, optional; none or empty asks the model to
  "describe the following images"), ``--input_video`` (str, required),
  ``--checkpoint_dir`` (str, default "checkpoints"),
  ``--offload_prompt_upsampler`` (flag). Bad arguments: exit 2.
- The model is ``CHECKPOINT_DIR/nvidia/Cosmos-UpsamplePrompt1-12B-Transfer``;
  without that folder loading fails (exit 1).
- The first two frames of the input video are written as ``frame_1.png`` and
  ``frame_2.png`` in ``tempfile.gettempdir()`` and read back. A video that
  cannot be read gives no frames and no error.
- The result is printed, not logged: ``print("Upsampled prompt:", text)`` with
  ``text`` stripped; it may span several lines. Library log records (vLLM's
  ``LEVEL MM-DD HH:MM:SS [file:line] message``) come before it and may follow.

Here no model runs: the text is made from the prompt and the frames'
bytes (the two halves of the video file), so a test can check it whole.
"""

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

# The real program imports its package at load time, before anything else:
# without the checkout on the path (PYTHONPATH=.) this fails first.
import cosmos_transfer1.auxiliary.upsampler.inference  # noqa: F401

CHECKPOINT = "nvidia/Cosmos-UpsamplePrompt1-12B-Transfer"
DEFAULT_PROMPT = "describe the following images"
TORCHRUN_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_NAME",
    "OMP_NUM_THREADS",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_RUN_ID",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING",
    "TORCHELASTIC_ERROR_FILE",
)


def log(level: str, message: str) -> None:
    """One log record in vLLM's format (its logger writes to stdout)."""
    stamp = time.strftime("%m-%d %H:%M:%S")
    print(f"{level} {stamp} [upsampler.py:1] {message}", flush=True)


def frames_of(video: str) -> list[Path]:
    """The video's first two "frames", written where the real program writes them."""
    try:
        data = Path(video).read_bytes()
    except OSError:
        return []  # cv2 reads nothing and says nothing
    if not data:
        return []
    half = (len(data) + 1) // 2
    paths = []
    for index, chunk in enumerate((data[:half], data[half:]), start=1):
        if chunk:
            path = Path(tempfile.gettempdir()) / f"frame_{index}.png"
            path.write_bytes(chunk)
            paths.append(path)
    return paths


def upsampled(prompt: str, frames: list[Path]) -> str:
    """The stand-in's multi-line "upsampled" prompt (stripped, like the real one)."""
    seen = b"".join(path.read_bytes() for path in frames)
    digest = hashlib.sha256(seen).hexdigest()[:12] if frames else "none"
    lines = [
        " ".join(prompt.split()).rstrip(".") + ".",
        "",
        f"Context: {len(frames)} frame(s) of the input video, sha256 {digest}.",
        "Camera: steady, at eye level; light: soft and even.",
    ]
    return "\n".join(lines).strip()


def parse_args() -> argparse.Namespace:
    """The real program's arguments, types and defaults."""
    parser = argparse.ArgumentParser(description="Prompt upsampler pipeline")
    parser.add_argument("--prompt", type=str, required=False)
    parser.add_argument("--input_video", type=str, required=True)
    parser.add_argument("--checkpoint_dir", type=str, default="checkpoints")
    parser.add_argument("--offload_prompt_upsampler", action="store_true")
    return parser.parse_args()


def main() -> None:
    """Load (check) the model, read the frames, print the result."""
    args = parse_args()
    model = Path(args.checkpoint_dir) / CHECKPOINT
    if not model.is_dir():
        raise OSError(f"{model} is not a local folder and not a model identifier")
    log("INFO", f"stand-in of the prompt upsampler: no model is loaded from {model}")
    frames = frames_of(args.input_video)
    text = upsampled(args.prompt or DEFAULT_PROMPT, frames)
    print("Upsampled prompt:", text)
    log("INFO", "stand-in of the prompt upsampler: done")


def leave_torchrun_environment() -> int:
    """This process's rank; the torchrun variables are removed (KeyError if one is missing)."""
    rank = int(os.environ["RANK"])
    for name in TORCHRUN_VARIABLES:
        os.environ.pop(name)
    return rank


if __name__ == "__main__":
    if leave_torchrun_environment() == 0:
        main()
