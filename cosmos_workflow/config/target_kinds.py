"""Settings models of the target kinds: what every target has, and what each kind adds.

A target kind is its settings model here (a subclass of :class:`TargetBase`
with its own ``kind`` literal), one line in the ``Target`` union of
config/settings.py, and its executor in execution/targets/ (registered in
execution/targets/registry.py). Nothing else branches on a kind.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TargetBase(BaseModel):
    """What every target has, whatever its kind.

    Attributes:
        name: The target's name (runs record it; `cosmos logs` and `cosmos kill` find it by it).
        kind: Which kind of target it is (the executor that drives it).
        gpus: GPU indices the model may use there.
        speed: Relative throughput (2.0: twice as fast); the scheduler learns it as jobs finish.
        env: Environment of the model program there.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: str
    gpus: list[int] = Field(default_factory=lambda: [0], min_length=1)
    speed: float = Field(default=1.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)

    @property
    def container_image(self) -> str | None:
        """The container image the model runs in there; None where no container runs it.

        A run's image is part of its identity, so every target of a pool that
        runs containers must run the same one.
        """
        return None


class LocalTargetSettings(TargetBase):
    """The built-in ``local`` target: runs the model as a process on this machine."""

    name: str = Field(default="local", min_length=1)
    kind: Literal["local"] = "local"


class SSHTargetSettings(TargetBase):
    """A GPU host reached over SSH, running the model in Docker or Podman."""

    name: str = Field(default="ssh", min_length=1)
    kind: Literal["ssh"] = "ssh"
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    use_agent: bool = False
    jump_host: str | None = None
    work_dir: str = Field(min_length=2, pattern=r"^/")
    runtime: Literal["docker", "podman"] = "docker"
    runtime_env: dict[str, str] = Field(default_factory=dict)
    image: str = Field(min_length=1)
    python: str = "python3"
    gpu_flags: bool = True
    mounts: dict[str, str] = Field(default_factory=dict)
    shm_size: str | None = None
    ipc: str | None = None
    network: str | None = None
    connect_timeout: float = Field(default=15.0, gt=0)

    @property
    def container_image(self) -> str | None:
        """The image the model's containers run."""
        return self.image
