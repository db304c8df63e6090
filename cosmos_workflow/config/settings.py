"""Settings models: where the database and outputs are, targets, simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from cosmos_workflow.config.target_kinds import (
    LocalTargetSettings,
    SlurmTargetSettings,
    SSHTargetSettings,
)
from cosmos_workflow.manifest.models import ControlKey


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
    # The simulated prompt upsampler fails on prompts that contain this text.
    fail_on_prompt: str | None = Field(default=None, min_length=1)
    # The simulated model's guardrail blocks prompts that contain this text.
    block_prompt: str | None = Field(default=None, min_length=1)


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


class RetrySettings(_Strict):
    """How often a job is tried again after a fault, and how long to wait between tries.

    Transient faults are a host that cannot be reached, a dropped connection
    and container runtime hiccups; deterministic ones are a model that exited
    non-zero or rejected its spec, and a missing or changed input.
    """

    transient: int = Field(default=3, ge=0)
    deterministic: int = Field(default=0, ge=0)
    backoff_s: float = Field(default=2.0, ge=0)
    max_backoff_s: float = Field(default=60.0, ge=0)


class CacheSettings(_Strict):
    """How a run made before is checked before it counts as cached.

    Attributes:
        verify: ``size``: each output has the size result.json recorded (cheap);
            ``sha256``: each output's content matches outputs.sha256 (reads every
            output; a changed byte makes the run execute again).
    """

    verify: Literal["size", "sha256"] = "size"


class SchedulerSettings(_Strict):
    """How runs are batched and spread over the targets' GPUs.

    Attributes:
        patience_s: How long a host that went silent while it runs a job is
            waited for (its container followed again as soon as it answers)
            before the job's runs may move to another target. A job whose
            runs cannot go anywhere else keeps waiting for its host.
    """

    batching: bool = True
    retries: RetrySettings = Field(default_factory=RetrySettings)
    heartbeat_s: float = Field(default=5.0, gt=0)
    runner_timeout_s: float = Field(default=60.0, gt=0)
    patience_s: float = Field(default=120.0, ge=0)


# A control weight: a finite number >= 0 (a boolean is not one).
_Weight = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]


class InferenceSettings(_Strict):
    """`cosmos inference`: the weight of a prompt's control that no --weight gives.

    Attributes:
        default_weight: Every control's weight (None: --weight is needed).
        weights: Per control, e.g. ``{"depth": 0.7}``; wins over ``default_weight``.
    """

    default_weight: _Weight | None = None
    weights: dict[ControlKey, _Weight | None] = Field(default_factory=dict)

    def weight_for(self, control: str) -> tuple[float | None, str]:
        """The default weight of ``control`` and the setting that gave it."""
        weight = self.weights.get(control)  # type: ignore[call-overload]
        if weight is not None:
            return weight, f"inference.weights.{control}"
        return self.default_weight, "inference.default_weight"


class LimitSettings(_Strict):
    """How much one manifest, prompt or sweep may hold before it is refused.

    Each limit guards against a mistake that would otherwise cost minutes,
    gigabytes or GPU days; raise it where the mistake is meant.

    Attributes:
        prompt_chars: Characters of a prompt's text or negative prompt, as
            rendered (a template stops rendering when it passes this).
        max_runs: Runs of one sweep; a larger sweep needs ``confirm_runs=N``.
        yaml_bytes: Bytes of one YAML file of conf/ or manifests/.
        yaml_nodes: Values of one YAML file, every alias counted as what it repeats.
    """

    prompt_chars: int = Field(default=4000, ge=1)
    max_runs: int = Field(default=1000, ge=1)
    yaml_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    yaml_nodes: int = Field(default=100_000, ge=1)


# Limits on reading the YAML files themselves, which are read before conf/ and
# the command line are composed: only the user config file and COSMOS_* set them.
EARLY_LIMITS = {
    "limits.yaml_bytes": "COSMOS_LIMITS__YAML_BYTES",
    "limits.yaml_nodes": "COSMOS_LIMITS__YAML_NODES",
}


def _with_kind(value: object) -> object:
    """A target given as a mapping: without a kind it is a local one; an unknown kind is named.

    Raises:
        PydanticCustomError: the kind is none of :data:`TARGET_KINDS`.
    """
    if not isinstance(value, dict):
        return value
    kind = value.get("kind", "local")
    if kind not in TARGET_KINDS:
        raise PydanticCustomError(
            "target_kind",
            "unknown target kind {kind}; the known kinds are {known}",
            {"kind": repr(kind), "known": ", ".join(TARGET_KINDS)},
        )
    return {**value, "kind": kind}


# The target kinds, one line each; a kind's executor is registered in
# cosmos_workflow/execution/targets/registry.py.
TargetKinds = LocalTargetSettings | SSHTargetSettings | SlurmTargetSettings
TARGET_KINDS: tuple[str, ...] = tuple(
    model.model_fields["kind"].default for model in get_args(TargetKinds)
)
# A target of any kind (chosen by its ``kind``): the one type every layer uses.
Target = Annotated[TargetKinds, Field(discriminator="kind"), BeforeValidator(_with_kind)]


class Settings(_Strict):
    """Every setting, after all layers were merged and validated."""

    project_dir: Path
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    adapters: AdapterSettings = Field(default_factory=AdapterSettings)
    target: Target = Field(default_factory=LocalTargetSettings)
    # The pool: several targets at once. None: the pool is ``target`` alone.
    targets: list[Target] | None = None
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    dry_run: bool = False
    # A sweep of more than limits.max_runs runs runs only with confirm_runs >= its runs.
    confirm_runs: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _unique_target_names(self) -> Settings:
        names = [target.name for target in self.pool]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"targets: each target needs its own name; repeated: {repeated}")
        return self

    @property
    def pool(self) -> list[Target]:
        """Every target runs may go to: ``targets`` if set, else ``target``."""
        return list(self.targets) if self.targets else [self.target]

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
    {
        "database",
        "paths",
        "simulator",
        "adapters",
        "target",
        "targets",
        "scheduler",
        "cache",
        "limits",
        "inference",
        "log_level",
        "dry_run",
        "confirm_runs",
    }
)
# Settings that the user file and COSMOS_* variables may set.
LAYERED_SECTIONS = ("database", "paths", "simulator", "limits", "cache")
LAYERED_TOP_LEVEL = ("log_level",)
