"""GPUs of a host, as nvidia-smi reports them (through any command runner)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from cosmos_workflow.connection.local import CommandResult
from cosmos_workflow.errors import ExecutionFailure

logger = logging.getLogger(__name__)

NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.used,memory.total,utilization.gpu",
    "--format=csv,noheader,nounits",
]
NVIDIA_SMI_TIMEOUT_S = 30.0


class GpuQueryRunner(Protocol):
    """What the query needs of a local or remote command executor."""

    def run(self, argv: list[str], *, timeout: float | None = ...) -> CommandResult:
        """Run and collect."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: index, model name, memory in MiB and utilisation in percent."""

    index: int
    name: str
    memory_used_mib: int | None
    memory_total_mib: int | None
    utilization_pct: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _number(text: str) -> int | None:
    """nvidia-smi prints "[N/A]" or "[Not Supported]" for what it cannot measure."""
    text = text.strip()
    return int(float(text)) if text.replace(".", "", 1).isdigit() else None


def parse_gpus(text: str) -> list[GpuInfo]:
    """Parse the CSV lines of :data:`NVIDIA_SMI_QUERY`.

    Raises:
        ValueError: a line does not have the five expected fields.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 5 or not fields[0].isdigit():
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        index, name, used, total, utilization = fields
        gpus.append(GpuInfo(int(index), name, _number(used), _number(total), _number(utilization)))
    return gpus


def query_gpus(runner: GpuQueryRunner) -> list[GpuInfo] | None:
    """The host's GPUs, or None when nvidia-smi is absent, fails or says nothing usable.

    Raises:
        NetworkFailure: a remote host cannot be reached (from a remote runner).
    """
    try:
        done = runner.run(NVIDIA_SMI_QUERY, timeout=NVIDIA_SMI_TIMEOUT_S)
    except ExecutionFailure as exc:
        logger.debug("nvidia-smi did not run: %s", exc)
        return None
    if done.exit_code != 0:
        logger.debug("nvidia-smi exited %d: %s", done.exit_code, done.stderr.strip())
        return None
    try:
        return parse_gpus(done.stdout) or None
    except ValueError as exc:
        logger.debug("%s", exc)
        return None
