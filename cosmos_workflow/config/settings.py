"""Settings models: where the database and outputs are, targets, simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Strict):
    """Database location; None means SQLite at ``<outputs>/cosmos.db``."""

    url: str | None = None


class PathSettings(_Strict):
    """Output tree location, relative to the project directory unless absolute."""

    outputs: str = "outputs"


class SimulatorSettings(_Strict):
    """Timing and fault injection of the built-in simulated model."""

    model_load_s: float = Field(default=0.2, ge=0)
    per_video_s: float = Field(default=0.05, ge=0)
    ledger: str | None = None
    fail_on_seed: int | None = None


class Transfer1Settings(_Strict):
    """How Cosmos-Transfer1 is laid out in its image (nothing here changes outputs)."""

    workspace: str = Field(default="/workspace", min_length=1)
    checkpoint_dir: str = Field(default="checkpoints", min_length=1)
    max_batch_size: int = Field(default=8, ge=1)
    extra_args: list[str] = Field(default_factory=list)


class Transfer25Settings(_Strict):
    """How Cosmos-Transfer2.5 is laid out in its image (nothing here changes outputs)."""

    workspace: str = Field(default="/workspace", min_length=1)
    max_batch_size: int = Field(default=8, ge=1)
    extra_args: list[str] = Field(default_factory=list)


class AdapterSettings(_Strict):
    """Set-up of each real model adapter: paths in the image, batch sizes, set-up flags."""

    transfer1: Transfer1Settings = Field(default_factory=Transfer1Settings)
    transfer2_5: Transfer25Settings = Field(default_factory=Transfer25Settings)


class TargetSettings(_Strict):
    """Where runs execute. The built-in ``local`` target runs on this machine."""

    name: str = Field(default="local", min_length=1)
    kind: Literal["local"] = "local"
    gpus: list[int] = Field(default_factory=lambda: [0], min_length=1)


class SSHTargetSettings(_Strict):
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
    gpus: list[int] = Field(default_factory=lambda: [0], min_length=1)
    runtime: Literal["docker", "podman"] = "docker"
    runtime_env: dict[str, str] = Field(default_factory=dict)
    image: str = Field(min_length=1)
    python: str = "python3"
    gpu_flags: bool = True
    mounts: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    shm_size: str | None = None
    ipc: str | None = None
    network: str | None = None
    connect_timeout: float = Field(default=15.0, gt=0)


class Settings(_Strict):
    """Every setting, after all layers were merged and validated."""

    project_dir: Path
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    adapters: AdapterSettings = Field(default_factory=AdapterSettings)
    target: TargetSettings | SSHTargetSettings = Field(
        default_factory=TargetSettings, discriminator="kind"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    dry_run: bool = False

    @property
    def outputs_dir(self) -> Path:
        """Absolute path of the output tree."""
        outputs = Path(self.paths.outputs).expanduser()
        return outputs if outputs.is_absolute() else self.project_dir / outputs

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in effect."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.outputs_dir / 'cosmos.db'}"


# Keys of the composed config that are settings; everything else is manifest.
SETTINGS_KEYS = frozenset(
    {"database", "paths", "simulator", "adapters", "target", "log_level", "dry_run"}
)
# Settings that the user file and COSMOS_* variables may set.
LAYERED_SECTIONS = ("database", "paths", "simulator")
LAYERED_TOP_LEVEL = ("log_level",)
