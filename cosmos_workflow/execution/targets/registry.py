"""The target kinds: kind -> the factory of its executor, imported when a target of it is used.

A factory is named as ``"module:function"`` and imported only when a
target of its kind needs an executor, so the libraries of one kind (paramiko
and cryptography for ssh) are never imported by a project that does not use it.
A factory takes the target's settings and an :class:`ExecutorContext`, and
returns an :class:`~cosmos_workflow.execution.targets.base.Executor`.

Adding a kind: its settings model (config/target_kinds.py) and its line in
the ``Target`` union (config/settings.py), its executor module here in
execution/targets/, its line in :data:`EXECUTOR_FACTORIES`, and its entry in
tests/test_executor_contract.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cosmos_workflow.errors import ValidationFailure

if TYPE_CHECKING:
    from cosmos_workflow.config.settings import Target
    from cosmos_workflow.connection.local import LocalCommandExecutor
    from cosmos_workflow.execution.targets.base import Executor
    from cosmos_workflow.utils.clock import Clock

# kind -> "module:function" of the factory that builds its executor.
EXECUTOR_FACTORIES: dict[str, str] = {
    "local": "cosmos_workflow.execution.targets.local:make_local_executor",
    "ssh": "cosmos_workflow.execution.targets.ssh:make_remote_executor",
    "slurm": "cosmos_workflow.execution.targets.slurm:make_slurm_executor",
}


@dataclass(frozen=True)
class ExecutorContext:
    """What executor factories are given besides the target's settings.

    Attributes:
        clock: Time source (job start and end times).
        commands: Runs programs on this machine (local model processes, nvidia-smi).
        input_cache_dir: This machine's content-addressed cache of input files.
        patience_s: How long a host that went silent is waited for before a
            job followed there is given back (scheduler.patience_s).
    """

    clock: Clock
    commands: LocalCommandExecutor
    input_cache_dir: Path
    patience_s: float = 120.0


def executor_factory(kind: str) -> Callable[[Target, ExecutorContext], Executor]:
    """The factory of a kind's executors (its module is imported now).

    Raises:
        ValidationFailure: no executor is registered for ``kind``.
    """
    location = EXECUTOR_FACTORIES.get(kind)
    if location is None:
        known = ", ".join(EXECUTOR_FACTORIES)
        raise ValidationFailure(f"unknown target kind {kind!r}; the known kinds are {known}")
    module, _, name = location.partition(":")
    factory: Callable[[Target, ExecutorContext], Executor] = getattr(
        importlib.import_module(module), name
    )
    return factory


def make_executor(target: Target, context: ExecutorContext) -> Executor:
    """A new executor for ``target``, built by its kind's factory.

    Raises:
        ValidationFailure: the target's kind has no executor.
    """
    return executor_factory(target.kind)(target, context)
