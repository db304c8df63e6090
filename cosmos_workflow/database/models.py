"""SQLAlchemy 2.0 models: prompts, runs, sweeps and the sweep-run link."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Re-exported: the enums the models store (the repository imports TRANSITIONS from here).
from cosmos_workflow.database.states import TRANSITIONS as TRANSITIONS
from cosmos_workflow.database.states import RunStatus as RunStatus
from cosmos_workflow.database.states import SweepStage as SweepStage


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC; naive values are refused so no local time slips in."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes (PostgreSQL answers in the server's zone)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every table."""


def _value_enum(members: type[enum.Enum], name: str) -> Enum:
    """A column type that stores an enum's values (not its names) as short strings."""
    return Enum(
        members,
        name=name,
        native_enum=False,
        length=16,
        values_callable=lambda found: [m.value for m in found],
        validate_strings=True,
    )


_STATUS_ENUM = _value_enum(RunStatus, "run_status")


class Prompt(Base):
    """A prompt: text, negative text and its input videos (by checksum)."""

    __tablename__ = "prompts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The prompt this one was derived from (enhancement), and how it was made.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompts.id", ondelete="SET NULL"), nullable=True
    )
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The run it was made by or for (origin["run"]), to find it without reading JSON.
    origin_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    runs: Mapped[list[Run]] = relationship(back_populates="prompt")

    __table_args__ = (
        Index("ix_prompts_created_at", "created_at"),
        Index("ix_prompts_parent_id", "parent_id"),
        Index("ix_prompts_origin_run_id", "origin_run_id"),
    )


class Run(Base):
    """One inference run: a fully resolved spec and its execution state."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    adapter: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[RunStatus] = mapped_column(_STATUS_ENUM, default=RunStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_class: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    gpus: Mapped[str | None] = mapped_column(String(64), nullable=True)
    output_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The job (one model invocation) that executes or last executed the run.
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The runner (process) that executes or last executed the run.
    runner_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The run's place among the runs its job's program was given (outputs map by it).
    job_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The run whose output is this run's input (a 4K upscale of it).
    parent_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True
    )
    # The user's score of the output, 1-5 (None: not rated).
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)

    prompt: Mapped[Prompt] = relationship(back_populates="runs")
    sweep_links: Mapped[list[SweepRun]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_runs_status", "status"),
        Index("ix_runs_prompt_id", "prompt_id"),
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_job_id", "job_id"),
        Index("ix_runs_runner_id", "runner_id"),
        Index("ix_runs_parent_run_id", "parent_run_id"),
        Index("ix_runs_rating", "rating"),
    )


class Runner(Base):
    """A cosmos-batch (or cosmos inference) process executing runs, and its heartbeat."""

    __tablename__ = "runners"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class GpuLease(Base):
    """A GPU of one machine held by a runner's job (engine/gpu_leases.py).

    Free again once the job ends, or once its runner stopped or went silent.
    """

    __tablename__ = "gpu_leases"

    machine: Mapped[str] = mapped_column(String(300), primary_key=True)
    gpu: Mapped[int] = mapped_column(Integer, primary_key=True)
    runner_id: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str] = mapped_column(String(64))
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_gpu_leases_runner_id", "runner_id"),)


class Sweep(Base):
    """A sweep: one expansion of a manifest into a set of runs."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    overrides: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    output_dir: Mapped[str] = mapped_column(Text)

    run_links: Mapped[list[SweepRun]] = relationship(
        back_populates="sweep", cascade="all, delete-orphan", order_by="SweepRun.position"
    )

    __table_args__ = (Index("ix_sweeps_created_at", "created_at"),)


_STAGE_ENUM = _value_enum(SweepStage, "sweep_stage")


class SweepRun(Base):
    """Link between a sweep and a run; a run may belong to several sweeps.

    A sweep's own runs (its points) are ``main``; the runs of its stages
    (prompt enhancement first, 4K upscales after) are linked too, so that the
    sweep's progress, status and `cosmos kill --sweep` cover them.
    """

    __tablename__ = "sweep_runs"

    sweep_id: Mapped[str] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    stage: Mapped[SweepStage] = mapped_column(
        _STAGE_ENUM, default=SweepStage.MAIN, server_default=SweepStage.MAIN.value
    )

    sweep: Mapped[Sweep] = relationship(back_populates="run_links")
    run: Mapped[Run] = relationship(back_populates="sweep_links")

    __table_args__ = (Index("ix_sweep_runs_run_id", "run_id"),)
