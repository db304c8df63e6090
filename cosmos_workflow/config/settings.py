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


class TargetSettings(_Strict):
    """Where runs execute. The built-in ``local`` target runs on this machine."""

    name: str = Field(default="local", min_length=1)
    kind: Literal["local"] = "local"
    gpus: list[int] = Field(default_factory=lambda: [0], min_length=1)


class Settings(_Strict):
    """Every setting, after all layers were merged and validated."""

    project_dir: Path
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    target: TargetSettings = Field(default_factory=TargetSettings)
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
SETTINGS_KEYS = frozenset({"database", "paths", "simulator", "target", "log_level", "dry_run"})
# Settings that the user file and COSMOS_* variables may set.
LAYERED_SECTIONS = ("database", "paths", "simulator")
LAYERED_TOP_LEVEL = ("log_level",)
