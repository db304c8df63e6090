"""The target kinds: one Target type in the settings, one executor factory per kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from conftest import make_project
from pydantic import ValidationError

from cosmos_workflow.config.manager import ConfigManager, SettingsError
from cosmos_workflow.config.project import find_project
from cosmos_workflow.config.settings import TARGET_KINDS, Settings
from cosmos_workflow.config.target_kinds import LocalTargetSettings, SSHTargetSettings, TargetBase
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.errors import ValidationFailure
from cosmos_workflow.execution.targets.base import Executor
from cosmos_workflow.execution.targets.local import LocalExecutor, make_local_executor
from cosmos_workflow.execution.targets.registry import (
    EXECUTOR_FACTORIES,
    ExecutorContext,
    make_executor,
)
from cosmos_workflow.utils.clock import SystemClock

SSH = {
    "name": "gpu1",
    "kind": "ssh",
    "host": "gpu1.example.org",
    "user": "me",
    "work_dir": "/data/cosmos",
    "image": "cosmos:1",
}
LOOPBACK_SSH = {**SSH, "host": "127.0.0.1", "port": 9}


class FakeTargetSettings(TargetBase):
    """A kind the settings do not know: registered by a test to show how a kind plugs in."""

    kind: Literal["fake"] = "fake"


def make_fake_executor(target: FakeTargetSettings, context: ExecutorContext) -> Executor:
    """The fake kind's factory (found by the registry through its "module:function" name)."""
    return make_local_executor(LocalTargetSettings(name=target.name), context)


@pytest.fixture
def context(tmp_path: Path) -> ExecutorContext:
    return ExecutorContext(SystemClock(), LocalCommandExecutor(), tmp_path / "cache")


KNOWN = ", ".join(TARGET_KINDS)


def test_every_kind_of_the_settings_has_an_executor_and_no_other() -> None:
    assert set(TARGET_KINDS) == set(EXECUTOR_FACTORIES) >= {"local", "ssh"}


@pytest.mark.parametrize("where", ["target", "targets"])
def test_an_unknown_kind_is_refused_naming_it_and_the_known_kinds(where: str) -> None:
    entry = {"name": "cluster", "kind": "teleport"}
    data = {where: entry if where == "target" else [entry]}
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"project_dir": Path("/p"), **data})
    (error,) = caught.value.errors()
    assert error["msg"] == f"unknown target kind 'teleport'; the known kinds are {KNOWN}"


def test_an_unknown_kind_in_the_config_names_the_key_and_where_it_came_from(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "proj")
    manager = ConfigManager(find_project(project.root, {}), {}, user_file=tmp_path / "none.toml")
    with pytest.raises(SettingsError) as caught:
        manager.settings({"target": {"name": "cluster", "kind": "teleport"}})
    assert str(caught.value) == (
        "invalid settings:\n  target (from Hydra config): unknown target kind 'teleport'; "
        f"the known kinds are {KNOWN}"
    )


def test_a_pool_entry_without_a_kind_is_a_local_target() -> None:
    settings = Settings.model_validate(
        {"project_dir": Path("/p"), "targets": [{"name": "here", "gpus": [0, 1]}, SSH]}
    )
    assert [type(target) for target in settings.pool] == [LocalTargetSettings, SSHTargetSettings]


def test_only_a_container_target_has_a_container_image() -> None:
    assert LocalTargetSettings().container_image is None
    assert SSHTargetSettings.model_validate(SSH).container_image == "cosmos:1"


def test_a_registered_kind_builds_its_executor(context: ExecutorContext) -> None:
    local = make_executor(LocalTargetSettings(name="here"), context)
    assert isinstance(local, LocalExecutor) and local.target_name == "here"
    assert local.jobs_on_this_machine

    remote = make_executor(SSHTargetSettings.model_validate(SSH), context)
    try:
        assert type(remote).__name__ == "RemoteExecutor" and remote.target_name == "gpu1"
        assert not remote.jobs_on_this_machine
    finally:
        remote.close()


def test_a_kind_without_an_executor_is_refused_naming_it_and_the_known_kinds(
    context: ExecutorContext,
) -> None:
    with pytest.raises(ValidationFailure) as caught:
        make_executor(FakeTargetSettings(name="odd"), context)
    assert str(caught.value) == f"unknown target kind 'fake'; the known kinds are {KNOWN}"


def test_a_new_kind_is_one_registry_line(
    monkeypatch: pytest.MonkeyPatch, context: ExecutorContext
) -> None:
    monkeypatch.setitem(EXECUTOR_FACTORIES, "fake", f"{__name__}:make_fake_executor")
    executor = make_executor(FakeTargetSettings(name="odd"), context)
    assert executor.target_name == "odd"


def test_paramiko_is_imported_only_when_an_ssh_target_is_used(tmp_path: Path) -> None:
    """Settings, the registry, the engine and a local target's executor need no SSH library."""
    code = f"""
import sys
from pathlib import Path
from cosmos_workflow.config.settings import Settings
from cosmos_workflow.connection.local import LocalCommandExecutor
from cosmos_workflow.execution.targets.registry import ExecutorContext, make_executor
from cosmos_workflow.utils.clock import SystemClock
import cosmos_workflow.engine.dispatch

settings = Settings(project_dir=Path({str(tmp_path)!r}))
context = ExecutorContext(SystemClock(), LocalCommandExecutor(), Path({str(tmp_path)!r}))
make_executor(settings.target, context).describe()
loaded = sorted(name for name in ("paramiko", "cryptography") if name in sys.modules)
assert not loaded, loaded
# A closed port on loopback: connecting fails at once, and nothing leaves this machine.
ssh_target = Settings(project_dir=Path("."), target={LOOPBACK_SSH!r}).target
ssh = make_executor(ssh_target, context)
# The kind's module is imported when a target of it is used; paramiko itself
# only when that target connects.
assert type(ssh).__module__ == "cosmos_workflow.execution.targets.ssh", type(ssh)
assert "paramiko" not in sys.modules
ssh.describe()
assert "paramiko" in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
