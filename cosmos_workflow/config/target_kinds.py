"""Settings models of the target kinds: what every target has, and what each kind adds.

A target kind is its settings model here (a subclass of :class:`TargetBase`
with its own ``kind`` literal), one line in the ``Target`` union of
config/settings.py, and its executor in execution/targets/ (registered in
execution/targets/registry.py). Nothing else branches on a kind.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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


# Extra sbatch flags a slurm target may pass (``sbatch_args``): resources and
# placement only. The flags the executor sets itself (--gres, --time,
# --job-name, --comment, --output, --error, --chdir, --partition, ...) and
# anything that changes what runs (--wrap, --array, --export) are refused.
SBATCH_ALLOWED = frozenset(
    {
        "--mem",
        "--mem-per-cpu",
        "--mem-per-gpu",
        "--cpus-per-task",
        "--cpus-per-gpu",
        "--exclusive",
        "--nodelist",
        "--exclude",
        "--reservation",
        "--licenses",
        "--tmp",
        "--nice",
        "--priority",
        "--mail-type",
        "--mail-user",
        "--clusters",
        "--wckey",
        "--gpu-bind",
        "--hint",
    }
)
# A Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.
_SLURM_TIME = r"^(\d+-)?\d+(:\d{1,2}){0,2}$"


class SlurmLogin(BaseModel):
    """The login node of a Slurm cluster, reached over SSH (the same keys as an ssh target)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    use_agent: bool = False
    jump: str | None = None
    connect_timeout: float = Field(default=15.0, gt=0)


class SlurmTargetSettings(TargetBase):
    """A Slurm cluster: each job is one sbatch job, the cluster a pool of ``max_gpus`` GPUs.

    ``gpus`` is not set by hand: it is the virtual slots ``0 .. max_gpus-1``
    (Slurm chooses the real GPUs), so the scheduler and the GPU leases see a
    pool of that capacity, shared by every runner that uses the cluster.
    """

    name: str = Field(default="slurm", min_length=1)
    kind: Literal["slurm"] = "slurm"
    login: SlurmLogin | Literal["local"]
    partition: str = Field(min_length=1)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gres: str = Field(default="gpu", pattern=r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")
    max_gpus: int = Field(ge=1, le=4096)
    time_limit: str = Field(default="60", pattern=_SLURM_TIME)
    sbatch_args: list[str] = Field(default_factory=list)
    work_dir: str = Field(min_length=2, pattern=r"^/")
    launcher: Literal["apptainer", "pyxis", "docker", "bare"] = "bare"
    image: str | None = None
    setup: str | None = None
    python: str = "python3"
    poll_s: float = Field(default=1.0, gt=0)

    @field_validator("time_limit", mode="before")
    @classmethod
    def _minutes(cls, value: object) -> object:
        # A number of minutes as YAML or an override gives it (60, not "60").
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("sbatch_args")
    @classmethod
    def _allowed_flags(cls, args: list[str]) -> list[str]:
        for index, arg in enumerate(args):
            flag = arg.split("=", 1)[0]
            if flag not in SBATCH_ALLOWED:
                allowed = ", ".join(sorted(SBATCH_ALLOWED))
                raise ValueError(
                    f"sbatch_args[{index}]: {arg!r} is not allowed; give flags as --flag=value, "
                    f"one of {allowed}"
                )
        return args

    @field_validator("env")
    @classmethod
    def _slurm_chooses_gpus(cls, env: dict[str, str]) -> dict[str, str]:
        if "CUDA_VISIBLE_DEVICES" in env:
            raise ValueError("CUDA_VISIBLE_DEVICES is set by Slurm in each job; remove it")
        return env

    @model_validator(mode="after")
    def _pool_of_slots(self) -> SlurmTargetSettings:
        if self.launcher != "bare" and not self.image:
            raise ValueError(f"launcher {self.launcher} needs an image (target.image)")
        self.gpus = list(range(self.max_gpus))
        return self

    @property
    def container_image(self) -> str | None:
        """The image the jobs run in (none for the ``bare`` launcher)."""
        return self.image if self.launcher != "bare" else None
